"""Shared benchmark plumbing: machine description, timing helpers, and docs/benchmarks.md sections."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every figure here is written by a script in `bench/` (`python -m bench.<name>`), measured on the
machine described in its section, with the alternative measured in the same run (interleaved,
after a warm-up) and quoted as a ratio next to the absolute numbers. Tests never assert timings.
"""


def machine() -> str:
    """One line: CPU, cores, memory, Python and the key package versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(subprocess.check_output(["awk", "/MemTotal/ {print $2}", "/proc/meminfo"]).strip()) / 1024**2
        mem_text = f"{mem:.0f} GiB"
    except (OSError, ValueError, subprocess.CalledProcessError):
        mem_text = "? GiB"
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("dspy", "llama-cpp-python", "lancedb", "sentence-transformers", "torch")
        if _installed(name)
    )
    return f"{cpu}, {os.cpu_count()} cores, {mem_text}; Python {platform.python_version()}; {versions}"


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, body: str, command: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"{start}\n## {title}\n\n`{command}` — {stamp}\n\nMachine: {machine()}\n\n{body.strip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text)
