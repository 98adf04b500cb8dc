"""Feedback given through the API lands on the answer's MLflow trace as assessments (source: the user),
while Flywheel's feedback store keeps the same feedback for datasets."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest
from fastapi.testclient import TestClient

from flywheel.registry.assessments import CORRECTION, RATING
from tests.unit.serve_helpers import make_env, make_settings
from tests.unit.test_serve_tracing import isolated_export  # noqa: F401  (autouse: a fresh exporter per test)


@pytest.fixture
def traced() -> Iterator[tuple[TestClient, dict[str, str], object]]:
    from flywheel.assistant import Assistant
    from flywheel.serve.app import create_app

    # make_env's app traces nothing; a traced app over the same knowledge base, LM and key store
    app, settings, kb, keys = make_env(make_settings(serve={"request_timeout_s": 30}))
    traced_app = create_app(
        settings, assistant=Assistant(settings, knowledge=kb), lm=app.state.flywheel.lm, tracing=True
    )
    with TestClient(traced_app) as client:
        yield client, keys, traced_app


def ask(client: TestClient, key: str) -> str:
    response = client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "rag", "messages": [{"role": "user", "content": "When do I check oil?"}]},
    )
    assert response.status_code == 200, response.text
    return response.json()["flywheel"]["trace_id"]


Traced = tuple[TestClient, dict[str, str], object]


def test_thumbs_and_corrections_become_assessments_by_the_user(traced: Traced) -> None:
    client, keys, app = traced
    trace_id = ask(client, keys["alice"])
    auth = {"Authorization": f"Bearer {keys['alice']}"}
    assert (
        client.post(
            "/feedback", headers=auth, json={"trace_id": trace_id, "rating": "down", "comment": "too vague"}
        ).status_code
        == 201
    )
    fix = "5 to 30 minutes after shutdown."
    assert (
        client.post(
            "/feedback", headers=auth, json={"trace_id": trace_id, "rating": "up", "correction": fix}
        ).status_code
        == 201
    )

    app.state.flywheel.tracer.flush()  # the mirror is written in the background, off the request path
    assessments = mlflow.get_trace(trace_id, flush=True).info.assessments
    by_name = {a.name: a for a in assessments}
    assert sorted(a.name for a in assessments) == [CORRECTION, RATING]  # the second rating updated the first
    assert by_name[RATING].feedback.value is True and by_name[RATING].rationale == "too vague"
    assert by_name[CORRECTION].expectation.value == fix
    for assessment in assessments:
        assert assessment.source.source_type == "HUMAN" and assessment.source.source_id == "alice"
    stored = app.state.flywheel.feedback.list_feedback()  # the source of truth has the same feedback
    assert [(r["trace_id"], r["rating"], r["correction"]) for r in stored] == [(trace_id, "up", fix)]


def test_feedback_on_an_untraced_answer_still_counts(traced: Traced) -> None:
    client, keys, app = traced
    app.state.flywheel.tracer.sample = 0.0  # this answer is not sampled: no MLflow trace to attach to
    trace_id = ask(client, keys["alice"])
    response = client.post(
        "/feedback", headers={"Authorization": f"Bearer {keys['alice']}"}, json={"trace_id": trace_id, "rating": "up"}
    )
    assert response.status_code == 201
    assert mlflow.get_trace(trace_id, silent=True) is None
    assert app.state.flywheel.feedback.list_feedback()[0]["rating"] == "up"


def test_a_served_trace_is_judged_against_the_passages_it_recorded(traced: Traced) -> None:
    import dspy
    from dspy.utils import DummyLM

    from flywheel.config import load_settings
    from flywheel.registry.scorers import judge_scorers

    client, keys, app = traced
    trace_id = ask(client, keys["alice"])
    app.state.flywheel.tracer.flush()  # traces are written off the request path
    trace = mlflow.get_trace(trace_id)
    judge_lm = DummyLM([{"verdict": "supported"}], adapter=dspy.JSONAdapter())
    (faithfulness,) = judge_scorers(load_settings(), judge_lm=judge_lm, names=["faithfulness"])
    judged = faithfulness(inputs=trace.data.spans[0].inputs, outputs=trace.data.spans[0].outputs, trace=trace)
    assert judged.value == 1.0
    prompt = "\n".join(str(m.get("content")) for m in judge_lm.history[-1]["messages"])
    assert "Check the engine oil level 5 to 30 minutes after engine shutdown." in prompt  # oil.md's passage
