"""A champion promoted while the service answers concurrent requests: no request fails, every answer
says which version gave it (and that version's state gave it), and the new version serves afterwards."""

from __future__ import annotations

import threading
import time
from typing import Any

import dspy
import httpx

from flywheel.access import Principal
from flywheel.assistant import Assistant
from flywheel.config import load_settings
from flywheel.registry.programs import ProgramRegistry
from flywheel.serve.app import create_app
from tests.unit.serve_helpers import make_env, serving
from tests.unit.test_serve_tracing import isolated_export  # noqa: F401  (autouse: a fresh exporter per test)


class Marked(dspy.Module):
    """Answers with its own state (the demo it carries), without calling an LM."""

    def __init__(self) -> None:
        super().__init__()
        self.step = dspy.Predict("question -> answer")

    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        time.sleep(0.01)
        return dspy.Prediction(answer=self.step.demos[0]["answer"] if self.step.demos else "none", citations=[])


def marked(label: str) -> Marked:
    program = Marked()
    program.step.demos = [dspy.Example(question="q", answer=label)]
    return program


def marked_service(champion: int, *, tracing: bool, **serve: float) -> tuple[Any, ProgramRegistry, str, Any]:
    """An app serving the registered program ``marked`` (v1, v2; ``champion`` promoted), its registry,
    alice's API key and the settings."""
    settings = load_settings(programs={"custom": {"marked": "tests.unit.test_hot_swap:Marked"}}, serve=serve)
    _, _, kb, _ = make_env(settings)
    registry = ProgramRegistry(settings)
    registry.register("marked", marked("v1"))
    registry.register("marked", marked("v2"))
    registry.promote("marked", champion)
    assistant = Assistant(settings, knowledge=kb, registry=registry)
    app = create_app(settings, assistant=assistant, lm=None, registry=registry, tracing=tracing)
    return app, registry, app.state.flywheel.keys.create("alice")[1], settings


def test_promotion_under_concurrent_load_fails_no_request_and_serves_the_new_version() -> None:
    app, registry, key, _ = marked_service(1, tracing=False, reload_interval_s=0.2, request_timeout_s=30.0)
    replies: list[tuple[int, Any, str]] = []
    stop = threading.Event()

    def client(url: str) -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                reply = http.post(
                    f"{url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "marked", "messages": [{"role": "user", "content": "which?"}]},
                )
                body = reply.json() if reply.status_code == 200 else {}
                content = body["choices"][0]["message"]["content"] if body else reply.text
                replies.append((reply.status_code, (body.get("flywheel") or {}).get("version"), content))

    with serving(app) as url:
        threads = [threading.Thread(target=client, args=(url,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 60
            while len(replies) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            registry.promote("marked", 2, reason="test")
            while not any(version == 2 for _, version, _ in replies) and time.monotonic() < deadline:
                time.sleep(0.05)
            seen = len(replies)
            while len(replies) < seen + 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

    assert replies and all(status == 200 for status, _, _ in replies), {s for s, _, _ in replies}
    assert {(version, answer) for _, version, answer in replies} == {(1, "v1"), (2, "v2")}
    assert [version for _, version, _ in replies[-8:]] == [2] * 8


def test_a_served_answers_trace_says_which_registered_version_gave_it() -> None:
    import mlflow
    from fastapi.testclient import TestClient

    app, _, key, settings = marked_service(2, tracing=True)
    with TestClient(app) as client:
        reply = client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "marked", "messages": [{"role": "user", "content": "which?"}]},
        ).json()["flywheel"]
        app.state.flywheel.tracer.flush()
    assert reply["version"] == 2
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    assert client.get_trace(reply["trace_id"]).info.tags["flywheel.program_version"] == "2"
    experiment = client.get_experiment_by_name(settings.tracking.experiment)
    found = client.search_traces(
        locations=[experiment.experiment_id], filter_string="tags.`flywheel.program_version` = '2'"
    )
    assert [t.info.trace_id for t in found] == [reply["trace_id"]]


def test_feedback_says_which_registered_version_it_is_about() -> None:
    from fastapi.testclient import TestClient

    app, registry, key, _ = marked_service(1, tracing=False)
    store = app.state.flywheel.feedback
    admin_key = app.state.flywheel.keys.create("root")[1]  # make_env made root an admin
    with TestClient(app) as client:

        def ask_and_rate(rating: str) -> str:
            reply = client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "marked", "messages": [{"role": "user", "content": "which?"}]},
            ).json()["flywheel"]
            given = client.post(
                "/feedback",
                headers={"Authorization": f"Bearer {key}"},
                json={"trace_id": reply["trace_id"], "rating": rating},
            )
            assert given.status_code == 201
            return reply["trace_id"]

        on_v1 = ask_and_rate("down")
        registry.promote("marked", 2)
        app.state.flywheel.assistant.refresh()
        on_v2 = ask_and_rate("up")
        listed = client.get("/feedback", params={"version": "2"}, headers={"Authorization": f"Bearer {admin_key}"})
    assert [(row["trace_id"], row["program_version"]) for row in store.list_feedback(program="marked")] == [
        (on_v1, "1"),
        (on_v2, "2"),
    ]
    assert [row["trace_id"] for row in store.list_feedback(program="marked", program_version="1")] == [on_v1]
    assert listed.status_code == 200 and [row["trace_id"] for row in listed.json()["feedback"]] == [on_v2]
    assert listed.json()["feedback"][0]["program_version"] == "2"
