"""The trace sink: one process that writes the serving processes' finished traces into the tracking store.

``flywheel serve`` (``serve.trace_export = "process"``, a local or SQL tracking store) starts it as a child
(:mod:`flywheel.serve.trace_export`), shared by all ``--workers``. The serving processes post the two writes
that store a trace — ``start_trace`` (its info) and ``log_spans`` (finished spans) — here, as JSON (MLflow's
own ``to_dict`` forms: recorded so by :mod:`flywheel.serve.trace_recorder` for served calls, or produced by
MLflow's own export path), instead of writing the store in the serving process (the GIL it would take from
requests) or through ``mlflow server`` (whose HTTP stack — uvicorn, the WSGI bridge, Flask, protobuf and
per-request handler checks — cost about twice the store's own work per trace: 19 ms of CPU per served trace
against 6–7 ms here). A serving process batches its writes (:class:`TraceSinkClient`): what queued while its
previous post was being stored goes in one post, whose spans are written in one store session.

The sink calls MLflow's own SQL store (``SqlAlchemyStore.start_trace`` / ``log_spans``), so what is
stored, and how it is read back (``mlflow.get_trace``, the MLflow UI), is exactly MLflow's. A post is
answered once its rows are committed: when a serving process's export queue is empty (its shutdown waits
for that), every trace it finished is in the store. Stopping (SIGTERM) finishes the posts in flight.

Endpoints (loopback only): ``GET /health``; ``POST /traces`` with ``{"infos": [TraceInfo dict, …],
"span_batches": [{"experiment_id": "…", "spans": [Span dict, …]}, …]}`` (:func:`batch_message`: a
serving process posts what its export queued while its previous post was being stored).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import signal
import sys
import threading
import urllib.parse
import weakref
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flywheel.serve.heap import settle_heap
from flywheel.stores.database import safe_url

log = logging.getLogger("flywheel.serve.trace_sink")
PATH = "/traces"
STORE_ENV = "_FLYWHEEL_TRACE_SINK_STORE"


class TraceSinkClient:
    """Posts trace writes to the sink: whole traces recorded by the serving path
    (:meth:`send_trace`, from :class:`~flywheel.serve.trace_recorder.TraceRecorder`), and, standing in for
    MLflow's ``TracingClient`` inside its span exporter (``/invocations``, which traces with MLflow's
    runtime), that exporter's two writes; everything else (prompt links, reads) goes to the tracking
    client it wraps.

    The writes are queued here and one sender thread posts them: whatever queued while a post was in
    flight (or within :attr:`linger_s` of the first write) goes in the next post. Under load one
    post then carries many traces, which the sink writes with one ``log_spans`` (MLflow's store takes
    the spans of many traces in one session) instead of a post and a store session per write.
    :meth:`flush` (the service's shutdown, after MLflow's own queue) waits until the queue is posted;
    a full queue makes MLflow's export thread wait, so MLflow's bounded queue applies as before."""

    max_queued = 2000  # writes waiting to be posted
    # A post waits this long for more writes (unless it has a full batch, or a flush waits for it): the
    # sink's cost is mostly per store session, and traces recorded without MLflow's batch processor
    # (trace_recorder.py) otherwise arrive one per post at low load.
    linger_s = 0.2
    batch_writes = 64

    def __init__(self, url: str, client: Any) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._client = client
        self._connection: http.client.HTTPConnection | None = None
        self._queue: list[dict[str, Any]] = []
        self._flushing = 0  # flushes waiting: post what is queued at once
        self._queued_total = 0  # writes queued since the start
        self._posted_total = 0  # of them, posted (stored, or reported lost)
        self._changed = threading.Condition()
        self._sender: threading.Thread | None = None
        _CLIENTS.add(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def start_trace(self, trace_info: Any) -> Any:
        self._enqueue({"info": trace_info.to_dict()})
        return trace_info

    def log_spans(self, experiment_id: str, spans: list[Any]) -> list[Any]:
        self._enqueue({"experiment_id": experiment_id, "spans": [span.to_dict() for span in spans]})
        return spans

    def send_trace(self, info: dict[str, Any], experiment_id: str, spans: list[dict[str, Any]]) -> None:
        """Queue a whole trace recorded as dicts (:class:`~flywheel.serve.trace_recorder.TraceRecorder`):
        its info and its spans go in the same post."""
        self._enqueue({"info": info}, {"experiment_id": experiment_id, "spans": spans})

    def flush(self, timeout_s: float = 120) -> bool:
        """Wait until every write queued so far is posted and stored (not those queued meanwhile, which a
        steady load would never let end); whether they all were in time."""
        with self._changed:
            self._flushing += 1
            self._changed.notify_all()
            target = self._queued_total
            try:
                return self._changed.wait_for(lambda: self._posted_total >= target, timeout_s)
            finally:
                self._flushing -= 1

    def _enqueue(self, *writes: dict[str, Any]) -> None:
        with self._changed:
            self._changed.wait_for(lambda: len(self._queue) < self.max_queued)
            self._queue.extend(writes)
            self._queued_total += len(writes)
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_forever, name="flywheel-trace-sink", daemon=True)
                self._sender.start()
            self._changed.notify_all()

    def _send_forever(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue))
                self._changed.wait_for(
                    lambda: len(self._queue) >= self.batch_writes or self._flushing > 0, self.linger_s
                )
                writes, self._queue = self._queue, []
                self._changed.notify_all()  # room in the queue again
            try:
                self._post(batch_message(writes))
            except Exception as exc:  # the sink is gone or refused: these traces are lost, said once
                log.warning("Could not send %d trace writes to the trace sink: %s", len(writes), exc)
            finally:
                with self._changed:
                    self._posted_total += len(writes)
                    self._changed.notify_all()

    def _post(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        for attempt in (1, 2):  # a kept-alive connection the sink closed: once more on a new one
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self._connection.request("POST", PATH, body, {"Content-Type": "application/json"})
                response = self._connection.getresponse()
                detail = response.read()
            except (OSError, http.client.HTTPException):
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
                continue
            if response.status != 200:
                raise RuntimeError(f"the trace sink answered {response.status}: {detail[:300]!r}")
            return


_CLIENTS: weakref.WeakSet[TraceSinkClient] = weakref.WeakSet()


def flush_clients(timeout_s: float = 120) -> bool:
    """Wait until every trace sink client of this process has posted its queue (after MLflow's export
    queue is flushed: that queue feeds them); whether all did in time."""
    return all([client.flush(timeout_s) for client in list(_CLIENTS)])


def batch_message(writes: list[dict[str, Any]]) -> dict[str, Any]:
    """One post for queued writes: the trace infos in order, then the spans per experiment. A trace's
    info is queued before its spans, so it is in this post or an earlier one: stored first either way."""
    span_batches: dict[str, list[dict[str, Any]]] = {}
    for write in writes:
        if "spans" in write:
            span_batches.setdefault(str(write["experiment_id"]), []).extend(write["spans"])
    return {
        "infos": [write["info"] for write in writes if "info" in write],
        "span_batches": [{"experiment_id": e, "spans": spans} for e, spans in span_batches.items()],
    }


class TraceSink:
    """Writes posted trace infos and spans with MLflow's SQL tracking store, one post at a time."""

    def __init__(self, tracking_uri: str, artifact_root: str) -> None:
        from flywheel.registry.tracking import TRACKING_SCHEMA_LOCK
        from flywheel.serve.trace_store import SinkTrackingStore
        from flywheel.stores.database import first_open_lock, use_write_ahead_log

        with first_open_lock(tracking_uri, TRACKING_SCHEMA_LOCK):  # the service may create the schema too
            use_write_ahead_log(tracking_uri)
            self.store = SinkTrackingStore(tracking_uri, artifact_root)
        self._lock = threading.Lock()
        self._posts = 0  # being read or written
        self._idle = threading.Condition()

    @contextlib.contextmanager
    def post(self) -> Iterator[None]:
        """Around the handling of one post, so that :meth:`wait_idle` can wait for it."""
        with self._idle:
            self._posts += 1
        try:
            yield
        finally:
            with self._idle:
                self._posts -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no post is being handled; whether none is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._posts == 0, timeout_s)

    def write(self, message: dict[str, Any]) -> None:
        """Store a post (:func:`batch_message`): its trace infos (one transaction for the new ones:
        :meth:`~flywheel.serve.trace_store.SinkTrackingStore.start_traces`), then one ``log_spans`` per
        experiment for the spans of all its traces (one store session for them all)."""
        from mlflow.entities import Span, TraceInfo

        infos = [TraceInfo.from_dict(info) for info in message.get("infos", [])]
        batches = [
            (str(batch["experiment_id"]), [Span.from_dict(span) for span in batch["spans"]])
            for batch in message.get("span_batches", [])
        ]
        with self._lock:  # one writer: SQLite has one anyway, and a trace's info precedes its spans
            self.store.start_traces(infos)
            for experiment_id, spans in batches:
                if spans:
                    self.store.log_spans(experiment_id, spans)


def serve(sink: TraceSink, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``sink`` on ``127.0.0.1:port`` (not yet serving)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per serving process

        def do_GET(self) -> None:
            self._answer(200 if self.path == "/health" else 404, b"OK" if self.path == "/health" else b"")

        def do_POST(self) -> None:
            if self.path != PATH:
                self._answer(404, b"")
                return
            try:
                with sink.post():
                    sink.write(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            except Exception as exc:  # reported to the exporter, which logs it; the sink goes on
                log.warning("Could not store a trace export: %s", exc)
                self._answer(500, str(exc).encode(errors="replace"))
                return
            self._answer(200, b"")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a line per trace would be the log; failures are logged above

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # A serving process keeps its connection open between posts: stopping does not wait for those
    # threads (they wait for a next request), only for the posts being handled (TraceSink.wait_idle).
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """``python -m flywheel.serve.trace_sink --port P``, the store's URL in ``$STORE_ENV`` (not in the
    command line, which every user of the machine can read) and the artifact root in ``--artifact-root``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-root", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    tracking_uri = os.environ.pop(STORE_ENV, "")
    if not tracking_uri:
        parser.error(f"${STORE_ENV} names no tracking store")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sink = TraceSink(tracking_uri, args.artifact_root)
    server = serve(sink, args.port)
    settle_heap()  # the start-up heap (MLflow, SQLAlchemy) out of the garbage collector's way

    def stop(*_: object) -> None:  # shutdown() waits for serve_forever: not from its own thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    log.info("Trace sink for %s on 127.0.0.1:%d", safe_url(tracking_uri), args.port)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
    if not sink.wait_idle(60):  # posts in flight are stored before the process ends
        log.warning("Trace sink stopped with posts still being written")
    log.info("Trace sink stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
