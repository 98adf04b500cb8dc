"""``flywheel serve --workers N``: N server processes on one port (uvicorn's workers, one app each).

Each process builds its own app from the same settings (environment and flywheel.toml), so they share
what those name: the LanceDB location, the catalog / feedback / API-key / conversation databases and
the MLflow tracking store. SQLite stores are opened in WAL mode with a busy timeout (``flywheel.storage``),
so several processes may read and write them at once; a promoted champion reaches every process by the
same registry poll (``serve.reload_interval_s``). Requests are spread by the kernel over the processes'
shared listening socket. Traces go to one child MLflow tracking server started here (serve/trace_export.py).
"""

from __future__ import annotations

import os
from typing import Any

from flywheel.config import Settings
from flywheel.serve.trace_export import SERVER_ENV, SERVER_PID_ENV, begin_trace_export

TRACING_ENV = "_FLYWHEEL_SERVE_TRACING"  # the parent's --tracing/--no-tracing, for the worker processes


def app_factory() -> Any:
    """One worker's app (uvicorn calls this in each process)."""
    from flywheel.config import load_settings
    from flywheel.serve.app import create_app

    return create_app(load_settings(), tracing=os.environ.get(TRACING_ENV, "1") == "1", owns_process=True)


def run_workers(settings: Settings, host: str, port: int, workers: int, *, tracing: bool, log_level: str) -> None:
    """Serve with ``workers`` processes until interrupted; with trace export in a process, one child
    tracking server for all of them, stopped after every worker has flushed its traces and exited."""
    import uvicorn

    os.environ[TRACING_ENV] = "1" if tracing else "0"
    # Not waited for here: each worker waits for it after its own imports (serve/app.py).
    trace_server = begin_trace_export(settings, tracing=tracing).server
    if trace_server is not None:
        os.environ[SERVER_ENV] = trace_server.uri
        os.environ[SERVER_PID_ENV] = str(trace_server.process.pid)
    try:
        uvicorn.run(
            "flywheel.serve.workers:app_factory",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=log_level,
            timeout_graceful_shutdown=10,
        )
    finally:
        if trace_server is not None:
            os.environ.pop(SERVER_ENV, None)
            os.environ.pop(SERVER_PID_ENV, None)
            trace_server.stop()
