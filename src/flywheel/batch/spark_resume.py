"""Resumable Spark runs: the input is classified in chunks of rows, each written and then recorded.

Rows are numbered by ``monotonically_increasing_id`` over the input as read (partition index in
the high bits, position in the partition in the low bits: deterministic for the same files), and
cut into chunks of about ``chunk_rows`` consecutive rows. Each chunk is one Spark job writing its
own Parquet folder under ``OUT.partial/``; only after the job succeeded does ``manifest.json``
(replaced atomically) name the chunk as done. A run killed at any point leaves finished chunks
behind, and rerunning the same command classifies only the rest. When every chunk is done their
part files move into ``OUT/`` in input order (``part-<chunk>-<part>.parquet``) and the checkpoint
goes away. A manifest written for another input, model, text column or chunk size is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import InvalidInputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MANIFEST = "manifest.json"
Ranges = list[tuple[int, int]]  # [start, end) of row ids


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def plan_chunks(numbered: DataFrame, row_column: str, chunk_rows: int) -> tuple[list[Ranges], int]:
    """Row-id ranges of each chunk (in input order) and the number of rows; one pass over the input."""
    # Lazy (start-up time): only this path needs PySpark.
    from pyspark.sql import functions as F

    stats = (
        numbered.select(F.spark_partition_id().alias("p"), F.col(row_column))
        .groupBy("p")
        .agg(F.min(row_column).alias("lo"), F.count("*").alias("n"))
        .collect()
    )
    chunks: list[Ranges] = []
    current: Ranges = []
    filled = 0
    for row in sorted(stats, key=lambda r: int(r["lo"])):
        start, left = int(row["lo"]), int(row["n"])
        while left > 0:
            take = min(left, chunk_rows - filled)
            current.append((start, start + take))
            start, left, filled = start + take, left - take, filled + take
            if filled == chunk_rows:
                chunks.append(current)
                current, filled = [], 0
    if current:
        chunks.append(current)
    return chunks, sum(int(r["n"]) for r in stats)


def chunk_filter(row_column: str, ranges: Ranges) -> Any:
    # Lazy (start-up time): only this path needs PySpark.
    from pyspark.sql import functions as F

    condition = None
    for start, end in ranges:
        part = (F.col(row_column) >= start) & (F.col(row_column) < end)
        condition = part if condition is None else condition | part
    return condition


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    tmp = directory / f".{MANIFEST}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, directory / MANIFEST)


def run_in_chunks(
    numbered: DataFrame,
    row_column: str,
    classify: Callable[[DataFrame], DataFrame],
    out: Path,
    key: dict[str, Any],
    *,
    chunk_rows: int,
    restart: bool = False,
    overwrite: bool = False,
    on_rows: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Classify ``numbered`` chunk by chunk into the Parquet folder ``out``; returns what was done."""
    directory = partial_dir(out)
    if restart:
        shutil.rmtree(directory, ignore_errors=True)
    chunks, total = plan_chunks(numbered, row_column, chunk_rows)
    key = {**key, "chunk_rows": chunk_rows, "chunks": [[list(r) for r in c] for c in chunks]}
    manifest = {"version": 1, "key": key, "done": []}
    if (directory / MANIFEST).is_file():
        try:
            found = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(
                f"The checkpoint {directory} is unreadable ({exc}).",
                hint="Rerun with --restart to discard it and start over.",
            ) from None
        if found.get("key") != key:
            raise InvalidInputError(
                f"The checkpoint {directory} belongs to another run (a different input, model, "
                "text column or chunk size).",
                hint="Rerun with the same arguments to resume it, or with --restart to discard it.",
            )
        manifest = found
    directory.mkdir(parents=True, exist_ok=True)
    done = set(manifest["done"])
    sizes = [sum(end - start for start, end in ranges) for ranges in chunks]
    resumed = sum(sizes[i] for i in done)
    finished = resumed
    started = time.perf_counter()
    if on_rows is not None:
        on_rows(finished, total)
    for index, ranges in enumerate(chunks):
        if index in done:
            continue
        classify(numbered.filter(chunk_filter(row_column, ranges))).write.mode("overwrite").parquet(
            str(directory / f"chunk-{index:05d}")
        )
        manifest["done"] = sorted({*manifest["done"], index})
        _write_manifest(directory, manifest)
        finished += sizes[index]
        if on_rows is not None:
            on_rows(finished, total)
    seconds = time.perf_counter() - started
    if out.exists():
        if not overwrite:
            raise InvalidInputError(
                f"The output {out} already exists.", hint="Choose another --out, or pass --overwrite to replace it."
            )
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    staging = out.with_name(f".{out.name}.assembling")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for index in range(len(chunks)):
        for part, path in enumerate(sorted((directory / f"chunk-{index:05d}").glob("part-*.parquet"))):
            target = staging / f"part-{index:05d}-{part:05d}.parquet"
            try:
                os.link(path, target)
            except OSError:  # another file system
                shutil.copy2(path, target)
    (staging / "_SUCCESS").touch()
    os.replace(staging, out)
    shutil.rmtree(directory, ignore_errors=True)
    return {"rows": total, "resumed": resumed, "classified": total - resumed, "seconds": seconds, "chunks": len(chunks)}
