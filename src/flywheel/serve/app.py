"""The FastAPI app: ``create_app(settings)`` wires the assistant, stores, auth, routes and the web page.

Every error is JSON ``{"error": {"error": <type>, "message": …, "hint": …}}`` with a 4xx/5xx status:
Flywheel errors carry their own status, invalid requests are 422, unknown routes 404, and
anything unexpected is a 500 whose details go to the log only.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from flywheel.config import Settings
from flywheel.errors import FlywheelError
from flywheel.lm import configure_dspy
from flywheel.registry.programs import ProgramRegistry, deploy_program
from flywheel.serve.heap import settle_heap
from flywheel.serve.limits import LimitsMiddleware
from flywheel.serve.metrics import Metrics
from flywheel.serve.routes import chat, documents, feedback, health, invocations, responses
from flywheel.serve.trace_export import TraceServer, begin_trace_export
from flywheel.serve.tracing import Tracer
from flywheel.storage import database_failure
from flywheel.stores.feedback import FeedbackStore
from flywheel.stores.keys import ApiKeyStore
from flywheel.stores.responses import ResponseStore

if TYPE_CHECKING:
    from flywheel.serve.runtime import Service

log = logging.getLogger("flywheel.serve")
STATIC = Path(__file__).parent / "static"


def error_body(kind: str, message: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": kind, "message": message}
    if hint:
        body["hint"] = hint
    return {"error": {**body, **extra}}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for item in exc.errors()[:20]:
        where = ".".join(str(p) for p in item.get("loc", ()))
        details.append({"field": where, "problem": str(item.get("msg", ""))[:300], "type": str(item.get("type", ""))})
    return details


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FlywheelError)
    async def flywheel_error(_request: Request, exc: FlywheelError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if getattr(exc, "retry_after", None):
            headers = {"Retry-After": str(exc.retry_after)}  # type: ignore[attr-defined]
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            body = error_body(
                "InvalidInputError",
                "The request body is not valid JSON.",
                "Send a JSON object with Content-Type: application/json.",
                details=details,
            )
        else:
            fields = ", ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
            body = error_body(
                "InvalidInputError",
                f"The request does not match the API schema ({fields}).",
                "See /docs for the expected request format.",
                details=details,
            )
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        hint = "See /docs for the API." if exc.status_code in (404, 405) else None
        return JSONResponse(
            error_body("HTTPError", str(exc.detail), hint),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(SQLAlchemyError)
    async def database_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        error = database_failure(exc)
        log.warning("Database error while handling a request: %s", exc)
        retry = getattr(error, "retry_after", None)
        return JSONResponse(
            {"error": error.to_dict()},
            status_code=error.status_code,
            headers={"Retry-After": str(retry)} if retry else None,
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unexpected error while handling a request")
        return JSONResponse(
            error_body(
                "InternalError",
                f"Unexpected server error ({type(exc).__name__}).",
                "This is a bug: check the service log and report it.",
            ),
            status_code=500,
        )


def _install_metrics_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Any:
        metrics = request.app.state.flywheel.metrics
        started = time.perf_counter()
        metrics.in_flight.inc()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            metrics.in_flight.dec()
            route = request.scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            metrics.requests.labels(request.method, path, str(status)).inc()
            metrics.latency.labels(request.method, path).observe(time.perf_counter() - started)


def _build_assistant(settings: Settings, registry: Any) -> Any:
    # Lazy (start-up time): only this path needs the assistant (DSPy and every program).
    from flywheel.assistant import Assistant

    if registry is not None and "registry" in inspect.signature(Assistant.__init__).parameters:
        return Assistant(settings, registry=registry)
    return Assistant(settings)


def _default_registry(settings: Settings) -> Any:
    try:
        return ProgramRegistry(settings)
    except FlywheelError as exc:
        log.warning("Serving the programs as built, without the registry: %s", exc)
        return None


def _load_retrieval(assistant: Any) -> None:
    """Load the embedder's weights and open the index now rather than on the first question."""
    knowledge = getattr(assistant, "knowledge", None)
    if knowledge is not None and hasattr(knowledge, "embedder"):
        knowledge.embedder.embed(["warm-up"])
        warm = getattr(knowledge.index, "warm", None)
        if warm is not None:
            warm()  # the ANN index's partitions into the cache: no slow first searches


SERVING_IMPORTS = ("dspy", "mlflow", "mlflow.dspy", "flywheel.registry.pyfunc", "lancedb")
EMBEDDER_IMPORTS = {"onnx": ("onnxruntime", "tokenizers"), "torch": ("sentence_transformers",)}


def import_serving_path(runtime: str = "onnx") -> None:
    """Import the modules a service loads before its first answer (DSPy, MLflow's DSPy flavour and
    pyfunc, LanceDB, the embedder's engine for ``embedder.runtime``): done while the trace export
    process starts, they no longer follow its start (about a third of ``flywheel serve``'s start-up on
    2 cores). The ONNX engine needs no torch, whose import alone took seconds."""
    import importlib

    for module in (*SERVING_IMPORTS, *EMBEDDER_IMPORTS.get(runtime, ())):
        with contextlib.suppress(ImportError):  # optional ones (an endpoint embedder needs no torch)
            importlib.import_module(module)


def build_service(
    settings: Settings,
    *,
    assistant: Any = None,
    lm: Any = None,
    registry: Any = None,
    tracing: bool = True,
    use_registry: bool = True,
) -> Any:
    """The :class:`~flywheel.serve.runtime.Service` an app (or ``flywheel mcp``) runs on; defaults as in create_app."""
    # Lazy (start-up time): only this path needs DSPy and the stores.
    from flywheel.serve.runtime import Service

    settings.ensure_dirs()
    if lm is None:
        lm = configure_dspy(settings)
    if assistant is None:
        if registry is None and use_registry:
            registry = _default_registry(settings)
        assistant = _build_assistant(settings, registry)
    return Service(
        settings,
        assistant=assistant,
        keys=ApiKeyStore(settings.catalog_url),
        feedback=FeedbackStore(settings.catalog_url),
        lm=lm,
        tracer=Tracer(settings, enabled=tracing),
        metrics=Metrics(),
        registry=registry,
    )


def _warm_up(service: Service, *, deploy: bool) -> None:
    """Before the first request: the default program (deployed first with ``deploy``), the pyfunc row
    logic, and the retrieval path (embedder weights, index) loaded alongside."""
    settings = service.settings
    with ThreadPoolExecutor(2) as pool:
        retrieval = pool.submit(_load_retrieval, service.assistant)
        import flywheel.registry.pyfunc  # noqa: F401  (MLflow + pandas: seconds to import)

        if deploy and service.registry is not None:
            version, registered = deploy_program(service.registry, service.assistant, settings.programs.default)
            log.info(
                "Deployed %s version %s%s",
                settings.programs.default,
                version.version,
                "" if registered else " (already the champion)",
            )
            service.assistant.refresh()
        elif deploy:
            log.warning("Not deployed: no program registry (MLflow unavailable); serving the program as built.")
        service.assistant.program(None)
        retrieval.result()


def _lifespan(
    service: Service, mcp: Any, *, deploy: bool, trace_server: TraceServer | None = None, owns_process: bool = False
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Warm up before serving (a failed warm-up leaves the service up but not ready; an app that owns
    its process then settles its heap: :func:`~flywheel.serve.heap.settle_heap`), run the MCP
    session manager while serving, and flush queued traces at shutdown (then stop the trace export
    process this app started, which stores what it was sent before it exits)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await anyio.to_thread.run_sync(lambda: _warm_up(service, deploy=deploy))
            if owns_process:
                settle_heap()
            service.ready = True
        except Exception as exc:
            log.warning("The service started, but is not ready: %s", exc)
        async with mcp.run():
            yield
        await anyio.to_thread.run_sync(service.tracer.flush)  # traces still queued for export
        if trace_server is not None:
            await anyio.to_thread.run_sync(trace_server.stop)

    return lifespan


def create_app(
    settings: Settings,
    *,
    assistant: Any = None,
    lm: Any = None,
    registry: Any = None,
    tracing: bool = True,
    use_registry: bool = True,
    deploy: bool = False,
    owns_process: bool = False,
) -> FastAPI:
    """The Flywheel service.

    ``assistant`` defaults to one over the configured knowledge base (with the registry's champion
    programs when the registry is available); ``lm`` defaults to the configured LM (made DSPy's
    default). Tests pass a DummyLM and ``tracing=False``. With ``deploy``, the default program is
    logged and registered as the champion MLflow model at start-up when it has none (what
    ``flywheel deploy`` does), so one command goes from a program on disk to a live endpoint.
    ``owns_process`` (``flywheel serve`` and its ``--workers``; not an app embedded in another program
    or a test) freezes the start-up heap out of the garbage collector's way once warm.
    """
    # Lazy (start-up time): only this path needs the MCP SDK.
    from flywheel.serve.mcp.http import PATH as MCP_PATH
    from flywheel.serve.mcp.http import McpEndpoint

    export = begin_trace_export(settings, tracing=tracing)  # trace writing out of this process
    if export.pending:
        # while the export process starts: seconds of imports on either side
        import_serving_path(settings.embedder.runtime)
    settings, trace_server = export.result()
    service = build_service(
        settings, assistant=assistant, lm=lm, registry=registry, tracing=tracing, use_registry=use_registry
    )
    mcp = McpEndpoint(service)
    app = FastAPI(
        title="Flywheel",
        version="1",
        summary="Self-improving DSPy pipelines: chat, MLflow-compatible invocations, documents and feedback.",
        lifespan=_lifespan(service, mcp, deploy=deploy, trace_server=trace_server, owns_process=owns_process),
    )
    app.state.flywheel = service
    app.state.responses = ResponseStore(settings.catalog_url)  # what previous_response_id continues from
    _install_error_handlers(app)

    # Added before the metrics middleware, so that requests refused by the limits are counted too.
    app.add_middleware(
        LimitsMiddleware,
        settings=settings.limits,
        on_refusal=lambda reason: service.metrics.refused.labels(reason).inc(),
    )
    _install_metrics_middleware(app)
    for module in (health, invocations, chat, responses, documents, feedback):
        app.include_router(module.router)
    app.add_route(MCP_PATH, mcp.app, include_in_schema=False)  # MCP (streamable HTTP), as the key's user

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
