"""Run a server command with timers on what a serving benchmark subtracts from latency.

    python -m bench.instrument --stats-port 9101 -- flywheel serve --port 8000
    python -m bench.instrument --stats-port 9102 -- uvicorn bench.langchain_app:app --port 8001

The command is a console script of this environment, run in this process, after three patches:

- every uvicorn app is wrapped in an ASGI timer: ``http`` = time from a POST's arrival to its last
  response byte, as the server sees it (for an LM server this is the LM time per call, queueing
  at the LM included);
- ``LocalEmbedder.embed`` and ``ChunkIndex.search`` are timed: ``retrieval`` = query embedding +
  LanceDB search, the work both chatbots share;
- a tiny stats server on ``--stats-port``: ``GET /stats`` → ``{"http": {"count", "busy_s"},
  "retrieval": {...}}``, ``POST /reset`` zeroes the counters.

Nothing in the service's own code changes; the timers cost a few microseconds per call.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any


class Counters:
    """Thread-safe call counts and total seconds per name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, list[float]] = {}

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            entry = self._data.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {name: {"count": int(c), "busy_s": s} for name, (c, s) in self._data.items()}

    def reset(self) -> None:
        with self._lock:
            self._data.clear()


COUNTERS = Counters()
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class TimingASGI:
    """Times POST requests from arrival to the last body chunk sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                COUNTERS.add("http", time.perf_counter() - started)

        await self.app(scope, receive, timed_send)


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            COUNTERS.add(name, time.perf_counter() - started)

    return wrapper


def install() -> None:
    import uvicorn.config

    original_load = uvicorn.config.Config.load

    def load(self: Any) -> None:
        original_load(self)
        if not isinstance(self.loaded_app, TimingASGI):
            self.loaded_app = TimingASGI(self.loaded_app)

    uvicorn.config.Config.load = load  # type: ignore[method-assign]
    try:
        from flywheel.knowledge.embed import LocalEmbedder
        from flywheel.knowledge.index import ChunkIndex
    except ImportError:
        return
    LocalEmbedder.embed = timed("retrieval", LocalEmbedder.embed)  # type: ignore[method-assign]
    ChunkIndex.search = timed("retrieval", ChunkIndex.search)  # type: ignore[method-assign]


class _StatsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._reply(COUNTERS.snapshot())

    def do_POST(self) -> None:
        COUNTERS.reset()
        self._reply({})

    def _reply(self, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def start_stats_server(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _StatsHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="bench-stats").start()


def run_console_script(argv: list[str]) -> Any:
    """Run the console script ``argv[0]`` of this environment in-process with ``argv[1:]``."""
    name = argv[0]
    matches = [e for e in metadata.entry_points(group="console_scripts") if e.name == name]
    if not matches:
        raise SystemExit(f"bench.instrument: no console script named {name!r} in this environment")
    sys.argv = argv
    return matches[0].load()()


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 4 or args[0] != "--stats-port" or args[2] != "--":
        raise SystemExit("usage: python -m bench.instrument --stats-port PORT -- COMMAND [ARGS...]")
    install()
    start_stats_server(int(args[1]))
    sys.exit(run_console_script(args[3:]))


if __name__ == "__main__":
    main()
