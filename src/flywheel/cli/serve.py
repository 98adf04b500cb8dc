"""``flywheel serve``: the REST service and web chat page (FastAPI + uvicorn)."""

from __future__ import annotations

import typer

from flywheel.cli.common import console, settings


def serve(
    host: str | None = typer.Option(None, help="Interface to listen on (default serve.host, loopback)."),
    port: int | None = typer.Option(None, help="TCP port (default serve.port, 8000)."),
    tracing: bool = typer.Option(True, "--tracing/--no-tracing", help="Record every request as an MLflow trace."),
    deploy: bool = typer.Option(
        False,
        "--deploy",
        help="First log and register the default program as the champion "
        "MLflow model if it has none (as `flywheel deploy` does).",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="Server processes sharing the port and the stores (serve.workers is the program-call threads of each).",
    ),
) -> None:
    """Serve the champion programs: /v1/chat/completions, /invocations, documents, feedback and the web page."""
    import uvicorn

    from flywheel.serve.app import create_app

    config = settings()
    host = host or config.serve.host
    port = port or config.serve.port
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if workers > 1:
        if deploy:  # once, before the processes start; each then loads the champion
            from flywheel.assistant import Assistant
            from flywheel.registry.programs import ProgramRegistry, deploy_program

            with console.status("Deploying the default program…"):
                registry = ProgramRegistry(config)
                deploy_program(registry, Assistant(config, registry=registry), config.programs.default)
        from flywheel.serve.workers import run_workers

        console.print(f"Flywheel is serving on http://{shown}:{port}/ with {workers} processes (Ctrl-C to stop)")
        run_workers(config, host, port, workers, tracing=tracing, log_level=config.log_level.lower())
        return
    with console.status("Loading the programs…"):
        app = create_app(config, tracing=tracing, deploy=deploy, owns_process=True)
    console.print(f"Flywheel is serving on http://{shown}:{port}/  (web chat page; API docs at /docs; Ctrl-C to stop)")
    console.print("Sign in with an API key: flywheel keys create USER", style="dim")
    uvicorn.run(app, host=host, port=port, log_level=config.log_level.lower(), timeout_graceful_shutdown=10)
