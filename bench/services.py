"""Processes and fixtures shared by the serving benchmarks (bench.serve, bench.compare).

- :func:`pristine_home` imports the sample knowledge base (users, groups, 36 documents) once into a
  cached FLYWHEEL_HOME under the temp dir (rebuilt when ``samples/`` changes); every run works on a
  fresh copy (:func:`fresh_home`), so traces and keys never leak between runs.
- :class:`Server` starts a loopback server in its own process group, waits for its health route,
  reads the ``bench.instrument`` counters, and stops it (by its own process group id only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.report import REPO

PYTHON = sys.executable
BIN = Path(PYTHON).parent
SAMPLES = REPO / "samples"
QUESTIONS = SAMPLES / "datasets" / "rag_questions.jsonl"
CACHE = Path(tempfile.gettempdir()) / "flywheel-bench"


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that ``with Server(...)`` blocks stop their servers on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(home: Path, **settings: str) -> dict[str, str]:
    """This environment, minus other FLYWHEEL_* settings, plus ``home`` and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update(
        HF_HUB_OFFLINE="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(REPO),
        FLYWHEEL_HOME=str(home),
    )
    env.update({f"FLYWHEEL_{k.upper()}": v for k, v in settings.items()})
    return env


def service_env(home: Path, lm_base: str, model: str, **extra: str) -> dict[str, str]:
    """Settings for a service whose LM is the OpenAI-compatible server at ``lm_base`` (no DSPy cache)."""
    # Benchmarks measure throughput: the per-key rate and concurrency limits are off (they are tested apart).
    settings = {
        "LM__PROVIDER": "openai",
        "LM__API_BASE": lm_base,
        "LM__MODEL": model,
        "LM__CACHE": "false",
        "LM__MAX_RETRIES": "0",
        "LIMITS__RATE_PER_MINUTE": "0",
        "LIMITS__MAX_CONCURRENT": "0",
    }
    return base_env(home, **{**settings, **extra})


def _run(argv: list[str], env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return done.stdout


def flywheel(*args: str, env: dict[str, str], timeout: float = 600) -> str:
    return _run([str(BIN / "flywheel"), *args], env, timeout)


def pristine_home() -> Path:
    """A FLYWHEEL_HOME with the sample users and documents imported (cached by content of samples/)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in (SAMPLES / "knowledge").rglob("*") if p.is_file()):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update((SAMPLES / "users.yaml").read_bytes())
    home = CACHE / f"home-{digest.hexdigest()[:12]}"
    if (home / ".ready").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    env = base_env(home)
    print("bench: importing the sample knowledge base (once) …", file=sys.stderr, flush=True)
    flywheel("users", "import", str(SAMPLES / "users.yaml"), env=env)
    flywheel("docs", "import", str(SAMPLES / "knowledge" / "manifest.yaml"), "--as", "admin", env=env)
    (home / ".ready").write_text("ok\n")
    return home


def fresh_home() -> Path:
    """A private copy of the pristine home for one benchmark run (index + catalog only)."""
    source = pristine_home()
    target = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE))
    for item in source.iterdir():
        if item.name in ("lancedb", "catalog.db"):
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, target / item.name)
    return target


def create_keys(home: Path, users: list[str], **settings: str) -> dict[str, str]:
    """One API key per user (``flywheel keys create USER`` prints the key as its last line); ``settings``
    as for :func:`base_env` (e.g. ``KNOWLEDGE__CATALOG_URL`` of a PostgreSQL key store)."""
    env = base_env(home, **settings)
    return {user: flywheel("keys", "create", user, env=env).strip().splitlines()[-1].strip() for user in users}


def questions(limit: int | None = None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


class Server:
    """A loopback server process (optionally under bench.instrument, with a stats port)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        port: int,
        *,
        health: str = "/health",
        stats_port: int | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.health, self.stats_port = health, stats_port
        self.url = f"http://127.0.0.1:{port}"
        self.log = CACHE / "logs" / f"{name}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def instrumented(cls, name: str, command: list[str], env: dict[str, str], port: int, **kwargs: Any) -> Server:
        stats_port = free_port()
        argv = [PYTHON, "-m", "bench.instrument", "--stats-port", str(stats_port), "--", *command]
        return cls(name, argv, env, port, stats_port=stats_port, **kwargs)

    def start(self) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_ready(self, timeout_s: float = 180) -> float:
        """Seconds until the health route answered 200; raises with the log tail if the process died."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout_s:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(self.url + self.health, timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stats(self) -> dict[str, dict[str, float]]:
        url = f"http://127.0.0.1:{self.stats_port}/stats" if self.stats_port else self.url + "/stats"
        return httpx.get(url, timeout=10).json()

    def reset(self) -> None:
        url = f"http://127.0.0.1:{self.stats_port}/reset" if self.stats_port else self.url + "/stats/reset"
        httpx.post(url, timeout=10)

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds used so far by this server's process (all its threads) and by the processes it
        started (the trace export child); NaN where /proc cannot tell (not Linux, exited)."""
        if self.proc is None:
            return float("nan"), float("nan")
        own = _cpu_of(self.proc.pid)
        children = sum(_cpu_of(pid) for pid in _descendants(self.proc.pid))
        return own, children

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the process group is this child's own
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Server:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its threads included), NaN when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICK


def _descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def stub_lm(latency_ms: float) -> Server:
    port = free_port()
    argv = [PYTHON, "-m", "bench.stub_lm", "--port", str(port), "--latency-ms", str(latency_ms)]
    return Server(f"stub-lm-{latency_ms:g}ms", argv, base_env(CACHE), port)


def flywheel_service(env: dict[str, str], *extra: str) -> Server:
    port = free_port()
    command = ["flywheel", "serve", "--host", "127.0.0.1", "--port", str(port), *extra]
    return Server.instrumented("flywheel-serve", command, env, port)


def langchain_service(env: dict[str, str]) -> Server:
    port = free_port()
    command = [
        "uvicorn",
        "bench.langchain_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return Server.instrumented("langchain-serve", command, env, port)


def embedded_lm_server(home: Path) -> Server:
    """``flywheel lm serve`` (the embedded SmolLM2) under the instrument: its POST time = LM time."""
    port = free_port()
    command = ["flywheel", "lm", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return Server.instrumented("flywheel-lm", command, base_env(home), port)


SUMMARIES = CACHE / "summaries"


def save_summary(name: str, data: dict[str, object]) -> None:
    """Headline figures of one benchmark, read back by ``python -m bench`` for the closing note."""
    import json

    SUMMARIES.mkdir(parents=True, exist_ok=True)
    (SUMMARIES / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))


def load_summary(name: str) -> dict[str, object] | None:
    import json

    path = SUMMARIES / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
