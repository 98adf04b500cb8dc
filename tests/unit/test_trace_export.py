"""Trace writing out of the serving process (serve/trace_export.py), against a real child trace sink
over a SQLite store in a temp FLYWHEEL_HOME: every trace of a concurrent load reaches the store whole
through it, a graceful stop of the service loses none of them (the app flushes, then stops the child),
feedback still lands on the trace, and inline mode / a remote tracking URI start no child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from flywheel.config import load_settings
from flywheel.registry.assessments import RATING
from flywheel.serve.trace_export import TraceServer, serving_settings, wants_child, with_trace_sink
from flywheel.serve.tracing import Tracer
from tests.unit.test_serve_tracing import (  # noqa: F401  (autouse: a fresh exporter per test)
    CALLS,
    SPANS,
    isolated_export,
    run_concurrently,
    stored_traces,
)


def test_traces_of_a_concurrent_load_reach_the_store_through_the_export_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    settings = load_settings()
    server = TraceServer.start(settings)
    written_here: list[str] = []
    for method in ("start_trace", "log_spans"):
        monkeypatch.setattr(SqlAlchemyStore, method, lambda *args, m=method, **kw: written_here.append(m))
    try:
        tracer = Tracer(with_trace_sink(settings, server.uri))
        assert tracer.enabled and mlflow.get_tracking_uri() == settings.tracking_uri
        ids = run_concurrently(tracer)
        tracer.flush()  # returns once the sink has stored every post
        assert written_here == []  # the child wrote them all
    finally:
        server.stop()
        monkeypatch.undo()
    assert server.process.returncode is not None  # stopped, with its whole process group
    stored = stored_traces(settings)  # read from the SQLite file itself, not through the server
    assert len(set(ids)) == CALLS and set(ids) == set(stored)
    assert all(names == SPANS for names in stored.values())
    spans = MlflowClient(tracking_uri=settings.tracking_uri).get_trace(ids[5]).data.spans
    root = next(s for s in spans if s.name == "flywheel.rag")
    assert root.inputs == {"question": "q5", "user": "alice"} and root.outputs["answer"] == "answer 5"


def test_writes_queued_behind_a_slow_post_go_in_one_post_and_all_are_stored() -> None:
    """While the sink stores one post, the serving process queues what its export thread hands it;
    the next post carries all of it (the sink writes their spans in one store session). Nothing is
    lost, and flush returns once everything queued is stored."""
    from flywheel.serve.trace_sink import TraceSink, serve

    settings = load_settings()
    sink = TraceSink(settings.tracking_uri, settings.artifact_root)
    posts: list[int] = []
    write = sink.write

    def counting(message: dict) -> None:
        posts.append(len(message["infos"]))
        write(message)

    sink.write = counting  # type: ignore[method-assign]
    server = serve(sink, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tracer = Tracer(with_trace_sink(settings, f"http://127.0.0.1:{server.server_address[1]}"))
        with sink._lock:  # the sink is busy: every write of the load below waits in the client's queue
            ids = run_concurrently(tracer)
            time.sleep(0.5)
        tracer.flush()
    finally:
        server.shutdown()
        server.server_close()
    assert sum(posts) == CALLS and len(posts) < CALLS // 2  # infos of many traces per post
    stored = stored_traces(settings)
    assert set(ids) == set(stored) and all(names == SPANS for names in stored.values())


class RecordingSink(BaseHTTPRequestHandler):
    """A stand-in trace sink that answers every post at once and counts the traces in it."""

    infos: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        RecordingSink.infos.append(len(message["infos"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recording_sink() -> Iterator[str]:
    RecordingSink.infos = []
    RecordingSink.protocol_version = "HTTP/1.1"
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_traces_sent_one_at_a_time_go_in_few_posts_and_flush_ends_under_a_steady_load(recording_sink: str) -> None:
    """At low load a post waits briefly for more traces (the sink's cost is per post), a flush does not
    wait for that, and a flush under a load that never stops returns once what was queued before it is
    posted."""
    from flywheel.serve.trace_sink import TraceSinkClient

    client = TraceSinkClient(recording_sink, client=None)
    info = {"trace_id": "tr-1"}
    for _ in range(10):
        client.send_trace(info, "1", [])
        time.sleep(0.01)
    started = time.monotonic()
    assert client.flush(10) and time.monotonic() - started < client.linger_s  # no waiting for a batch
    assert sum(RecordingSink.infos) == 10 and len(RecordingSink.infos) <= 3

    stop = threading.Event()

    def steady_load() -> None:
        while not stop.is_set():
            client.send_trace(info, "1", [])
            time.sleep(0.001)

    load = threading.Thread(target=steady_load)
    load.start()
    try:
        time.sleep(0.3)
        assert client.flush(10)
    finally:
        stop.set()
        load.join()
    assert client.flush(10) and sum(RecordingSink.infos) == client._queued_total // 2


def test_a_served_app_starts_the_child_and_its_shutdown_loses_no_trace_nor_feedback() -> None:
    from flywheel.assistant import Assistant
    from tests.unit.serve_helpers import make_env, make_settings

    app, settings, kb, keys = make_env(make_settings(serve={"request_timeout_s": 30}))
    from flywheel.serve.app import create_app

    traced = create_app(settings, assistant=Assistant(settings, knowledge=kb), lm=app.state.flywheel.lm)
    service = traced.state.flywheel
    assert service.settings.serve.trace_sink.startswith("http://127.0.0.1:")  # traces go to the child
    assert service.settings.tracking_uri == settings.tracking_uri  # the rest of MLflow to the store

    def ask(client: TestClient) -> str:
        response = client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {keys['alice']}"},
            json={"model": "rag", "messages": [{"role": "user", "content": "When do I check oil?"}]},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["flywheel"]["trace_id"])

    with TestClient(traced) as client:
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: ask(client), range(24)))
        feedback = client.post(
            "/feedback",
            headers={"Authorization": f"Bearer {keys['alice']}"},
            json={"trace_id": ids[0], "rating": "up"},
        )
        assert feedback.status_code == 201, feedback.text
    # The TestClient's exit ran the app's shutdown: traces flushed, feedback written, child stopped.
    stored = stored_traces(settings)
    assert set(ids) <= set(stored) and len(set(ids)) == 24
    trace = MlflowClient(tracking_uri=settings.tracking_uri).get_trace(ids[0])
    assert [(a.name, a.feedback.value) for a in trace.info.assessments] == [(RATING, True)]
    kinds = {span.span_type for span in trace.data.spans}
    assert {"CHAIN", "CHAT_MODEL"} <= kinds or {"CHAIN", "LLM"} <= kinds  # root/modules and the LM call
    assert "PARSER" not in kinds  # the adapter's format/parse spans repeat the LM span: not served


@pytest.mark.parametrize(
    ("overrides", "tracing"),
    [
        ({"serve": {"trace_export": "inline"}}, True),
        ({"tracking": {"uri": "http://tracking.example:5000"}}, True),
        ({}, False),
    ],
)
def test_inline_mode_a_remote_store_and_no_tracing_start_no_child(overrides: dict, tracing: bool) -> None:
    settings = load_settings(**overrides)
    assert not wants_child(settings, tracing=tracing)
    assert serving_settings(settings, tracing=tracing) == (settings, None)


@pytest.fixture
def health_server() -> Iterator[str]:
    """A loopback HTTP server that answers ``/health`` as the trace sink does."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_workers_share_the_parents_child(monkeypatch: pytest.MonkeyPatch, health_server: str) -> None:
    from flywheel.serve.trace_export import SERVER_ENV

    monkeypatch.setenv(SERVER_ENV, health_server)
    settings, server = serving_settings(load_settings(), tracing=True)
    assert server is None and settings.serve.trace_sink == health_server


def test_a_worker_whose_shared_child_never_answers_writes_traces_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.serve.trace_export import SERVER_ENV, begin_trace_export

    monkeypatch.setenv(SERVER_ENV, "http://127.0.0.1:9")  # nothing listens there
    settings = load_settings()
    export = begin_trace_export(settings, tracing=True)
    assert export.pending
    assert export.result(timeout_s=0.5) == (settings, None)


def test_a_worker_stops_waiting_when_the_shared_child_has_exited(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's child died at start: a worker falls back to inline traces at once, not after the timeout."""
    from flywheel.serve import trace_export

    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    while trace_export.process_running(zombie.pid):  # exited, not reaped: a zombie, as the parent leaves it
        time.sleep(0.05)
    assert trace_export.process_running(os.getpid())
    probes: list[str] = []
    monkeypatch.setattr(trace_export, "_answers", lambda uri: probes.append(uri) or False)
    settings = load_settings()
    for pid in (exited.pid, zombie.pid):
        monkeypatch.setenv(trace_export.SERVER_ENV, "http://127.0.0.1:9")
        monkeypatch.setenv(trace_export.SERVER_PID_ENV, str(pid))
        assert trace_export.begin_trace_export(settings, tracing=True).result(timeout_s=5) == (settings, None)
    assert probes == []  # never probed: the process was already gone
    zombie.wait()


def test_the_export_process_is_started_without_waiting_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """begin_trace_export returns at once (the caller imports meanwhile); result() is what waits."""
    from flywheel.serve.trace_export import begin_trace_export

    events: list[str] = []

    class Child:
        uri = "http://127.0.0.1:5999"

        def wait_healthy(self, timeout_s: float) -> None:
            events.append("waited")

    monkeypatch.setattr(TraceServer, "spawn", classmethod(lambda cls, settings: events.append("spawned") or Child()))
    export = begin_trace_export(load_settings(), tracing=True)
    assert events == ["spawned"] and export.pending
    settings, server = export.result()
    assert events == ["spawned", "waited"]
    assert isinstance(server, Child) and settings.serve.trace_sink == Child.uri


def test_create_app_imports_the_serving_path_while_the_child_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.serve import app as app_module
    from tests.unit.serve_helpers import make_env, make_settings

    base, settings, _kb, _keys = make_env(make_settings())
    events: list[str] = []

    class Export:
        pending = True

        def result(self) -> tuple[object, None]:
            events.append("waited")
            return settings, None

    monkeypatch.setattr(app_module, "begin_trace_export", lambda s, tracing: events.append("spawned") or Export())
    monkeypatch.setattr(app_module, "import_serving_path", lambda *_: events.append("imported"))
    app_module.create_app(settings, assistant=base.state.flywheel.assistant, lm=base.state.flywheel.lm, tracing=False)
    assert events == ["spawned", "imported", "waited"]


def test_the_child_does_not_outlive_a_killed_service(flywheel_home: Path) -> None:
    """`flywheel serve` SIGKILLed (no shutdown ran): the watchdog stops the trace sink's group."""
    script = (
        "import time\n"
        "from flywheel.config import load_settings\n"
        "from flywheel.serve.trace_export import TraceServer\n"
        "server = TraceServer.start(load_settings())\n"
        "print(server.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    service = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        group = int(service.stdout.readline())
        assert group_alive(group)
    finally:
        service.kill()
        service.wait()
    deadline = time.monotonic() + 30
    while group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(group)


def group_alive(pgid: int) -> bool:
    """Any live (not zombie) process in the group."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False
