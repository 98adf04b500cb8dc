"""Trace export out of the serving process: a child process writes the traces into the tracking store.

With ``serve.trace_export = "process"`` (the default) and a local tracking store (``sqlite:///…``, or any
SQLAlchemy URL), ``flywheel serve`` starts one trace sink child (:mod:`flywheel.serve.trace_sink`) on a
free loopback port; the serving processes' trace writer thread only serializes trace infos and batches
of finished spans and posts them there (``serve.trace_sink``); the SQLAlchemy work of storing them runs
in the child, which does not take the GIL from request threads. Everything else MLflow does in a serving
process (registry lookups, feedback assessments) still goes to the tracking store itself. One child
serves all ``--workers`` processes (its URL reaches them in :data:`SERVER_ENV`). Stopping: the serving
processes flush their queues first (the app's shutdown; a post is answered once stored), then the child
gets SIGTERM (it finishes the posts in flight) — so no queued trace is lost.

A remote ``tracking.uri`` (http/https/databricks) already writes over HTTP: no child. ``"inline"``
keeps the older in-process writer.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from flywheel.config import Settings
from flywheel.errors import StorageError
from flywheel.serve.trace_sink import STORE_ENV
from flywheel.stores.database import safe_url

log = logging.getLogger("flywheel.serve")
SERVER_ENV = "_FLYWHEEL_TRACE_SERVER"  # the child's URL, for `--workers N` processes started by the parent
SERVER_PID_ENV = "_FLYWHEEL_TRACE_SERVER_PID"  # and its pid: a worker stops waiting for a child that exited
REMOTE_SCHEMES = ("http://", "https://", "databricks")


def wants_child(settings: Settings, *, tracing: bool) -> bool:
    """Whether a service with these settings writes its traces through a child tracking server."""
    return tracing and settings.serve.trace_export == "process" and not settings.tracking_uri.startswith(REMOTE_SCHEMES)


def with_trace_sink(settings: Settings, url: str) -> Settings:
    """The same settings with traces posted to the trace sink at ``url``."""
    return settings.model_copy(update={"serve": settings.serve.model_copy(update={"trace_sink": url})})


def serving_settings(settings: Settings, *, tracing: bool) -> tuple[Settings, TraceServer | None]:
    """The settings a serving process runs on, and the child it started (``None``: no child, or one
    started by the parent of ``--workers`` processes): :func:`begin_trace_export`, then its result."""
    return begin_trace_export(settings, tracing=tracing).result()


def begin_trace_export(settings: Settings, *, tracing: bool) -> TraceExport:
    """Start the trace export process without waiting for it: the caller loads what does not need the
    tracking store meanwhile (the child's start is seconds of its own imports and schema checks), then
    takes :meth:`TraceExport.result`. A ``--workers`` process uses the parent's child instead."""
    if not wants_child(settings, tracing=tracing):
        return TraceExport(settings)
    shared = os.environ.get(SERVER_ENV)
    if shared:
        pid = os.environ.get(SERVER_PID_ENV, "")
        return TraceExport(settings, uri=shared, pid=int(pid) if pid.isdigit() else None)
    try:
        server = TraceServer.spawn(settings)
    except StorageError as exc:
        log.warning("Traces are written inline: %s", exc)
        return TraceExport(settings)
    return TraceExport(settings, uri=server.uri, server=server)


class TraceExport:
    """Trace export being set up: the tracking URI to serve on once the export process answers."""

    def __init__(
        self, settings: Settings, *, uri: str | None = None, server: TraceServer | None = None, pid: int | None = None
    ) -> None:
        self.settings = settings
        self.uri = uri
        self.server = server
        self.pid = pid  # a shared child's process, when known

    @property
    def pending(self) -> bool:
        """Whether a child is (or may still be) starting, so that waiting for it has a cost."""
        return self.uri is not None

    def result(self, timeout_s: float = 120.0) -> tuple[Settings, TraceServer | None]:
        """Wait until the export process answers; its settings and the child this process started.
        A child that does not start leaves the traces inline, with a warning: tracing is never a
        reason to refuse requests."""
        if self.uri is None:
            return self.settings, None
        try:
            if self.server is not None:
                self.server.wait_healthy(timeout_s)
            elif not wait_healthy(self.uri, timeout_s, alive=lambda: self.pid is None or process_running(self.pid)):
                raise StorageError(
                    f"The trace export process at {self.uri} exited or did not answer in {timeout_s:.0f} s."
                )
        except StorageError as exc:
            log.warning("Traces are written inline: %s", exc)
            return self.settings, None
        return with_trace_sink(self.settings, self.uri), self.server


def wait_healthy(uri: str, timeout_s: float, *, alive: Callable[[], bool] = lambda: True) -> bool:
    """Whether the trace sink at ``uri`` answers ``/health`` within ``timeout_s`` (while ``alive()``)."""
    deadline = time.monotonic() + timeout_s
    while alive():
        if _answers(uri):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return False


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie not yet reaped by its parent has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: whether it exists at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class TraceServer:
    """A child trace sink (:mod:`flywheel.serve.trace_sink`) over the settings' tracking store, on a free
    loopback port."""

    def __init__(self, process: subprocess.Popen[bytes], uri: str, log_path: Path) -> None:
        self.process = process
        self.uri = uri
        self.log_path = log_path
        self.tracking_uri = ""  # the store it serves (for messages)
        atexit.register(self.stop)  # also when the app that started it never ran its shutdown

    @classmethod
    def start(cls, settings: Settings, *, timeout_s: float = 120.0) -> TraceServer:
        """Start the child and wait until it answers ``/health``."""
        server = cls.spawn(settings)
        server.wait_healthy(timeout_s)
        return server

    @classmethod
    def spawn(cls, settings: Settings) -> TraceServer:
        """Start the child; it answers once :meth:`wait_healthy` returns."""
        settings.ensure_dirs()  # the sink puts a SQLite store in WAL mode itself (TraceSink)
        port = _free_port()
        uri = f"http://127.0.0.1:{port}"
        log_path = settings.home / "trace-sink.log"
        command = [
            # A watchdog first: it stops the sink's process group when this process dies without
            # stopping it (SIGKILL, a crash), so no orphaned sink outlives the service.
            sys.executable, "-m", "flywheel.serve.trace_export", str(os.getpid()), "--",
            sys.executable, "-m", "flywheel.serve.trace_sink",
            "--artifact-root", settings.artifact_root, "--port", str(port),
        ]  # fmt: skip
        env = {**os.environ, STORE_ENV: settings.tracking_uri}  # not in argv: it may hold a password
        env.pop(SERVER_ENV, None)
        env.pop(SERVER_PID_ENV, None)
        try:
            with log_path.open("ab") as out:
                # Its own process group: stopping it reaches the sink behind the watchdog.
                process = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
        except OSError as exc:
            raise StorageError(f"Cannot start the trace export process: {exc}") from exc
        server = cls(process, uri, log_path)
        server.tracking_uri = settings.tracking_uri
        return server

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        """Return once the child answers ``/health``; stop it and raise :class:`StorageError` when it
        exits or does not answer within ``timeout_s``."""
        if not wait_healthy(self.uri, timeout_s, alive=lambda: self.process.poll() is None):
            self.stop()
            raise StorageError(
                f"The trace export process (trace sink over {safe_url(self.tracking_uri)}) did not start: "
                f"{_tail(self.log_path)}",
                hint="See that log; or write traces in the serving process with serve.trace_export = "
                "'inline' (FLYWHEEL_SERVE__TRACE_EXPORT=inline), or point tracking.uri at a running "
                "MLflow server.",
            )
        log.info("Traces are written by a trace sink process at %s (pid %s)", self.uri, self.process.pid)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the child's process group (posts in flight are stored), SIGKILL after ``timeout_s``."""
        atexit.unregister(self.stop)
        if not _group_alive(self.process.pid):
            self.process.poll()
            return
        _signal_group(self.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            self.process.poll()  # reap the direct child so the group can empty
            time.sleep(0.05)
        if _group_alive(self.process.pid):
            log.warning("The trace export process did not stop in %.0f s: killed", timeout_s)
            _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=timeout_s)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(no output)"
    except OSError:
        return "(no log)"


def _watch(parent: int, command: list[str]) -> int:
    """Run ``command`` in this process group; stop the group when ``parent`` is gone (then our parent changes)."""
    server = subprocess.Popen(command)
    while server.poll() is None:
        if os.getppid() != parent:
            os.killpg(os.getpgrp(), signal.SIGTERM)
        time.sleep(0.5)
    return server.returncode or 0


if __name__ == "__main__":  # python -m flywheel.serve.trace_export PARENT_PID -- COMMAND…
    sys.exit(_watch(int(sys.argv[1]), sys.argv[3:]))
