"""The REST service with TestClient + DummyLM: every route, auth, ACL, and clear 4xx/5xx JSON errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from flywheel.config import LMSettings
from flywheel.lm import build_lm
from tests.unit.serve_helpers import ANSWER, Env, make_env, make_settings


@pytest.fixture
def env() -> Iterator[Env]:
    app, settings, kb, keys = make_env()
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, settings, kb, keys, app.state.flywheel.lm)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) >= {"error"} and body["error"]["message"], body
    return body["error"]


def chat(env: Env, user: str, question: str, **extra) -> dict:
    body = {"model": "rag", "messages": [{"role": "user", "content": question}], **extra}
    return env.client.post("/v1/chat/completions", json=body, headers=env.auth(user))


# --- operations and auth --------------------------------------------------------------------------


def test_health_ready_and_the_page_answer_without_a_key(env: Env) -> None:
    assert env.client.get("/health").json() == {"status": "ok"}
    assert env.client.get("/ready").json() == {"status": "ready"}
    page = env.client.get("/")
    assert page.status_code == 200 and "Flywheel" in page.text
    assert env.client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/me"),
        ("get", "/metrics"),
        ("get", "/v1/models"),
        ("post", "/v1/chat/completions"),
        ("post", "/invocations"),
        ("get", "/documents"),
        ("post", "/documents"),
        ("get", "/documents/x"),
        ("delete", "/documents/x"),
        ("patch", "/documents/x/groups"),
        ("post", "/feedback"),
        ("get", "/feedback"),
    ],
)
def test_everything_else_needs_a_key(env: Env, method: str, path: str) -> None:
    response = getattr(env.client, method)(path)
    assert response.status_code == 401
    assert "API key" in error_of(response)["message"]
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = getattr(env.client, method)(path, headers={"Authorization": "Bearer fw_nope"})
    assert wrong.status_code == 401 and "unknown or has been revoked" in error_of(wrong)["message"]


def test_keys_work_as_bearer_or_header_and_revoked_keys_stop(env: Env) -> None:
    assert env.client.get("/me", headers={"X-API-Key": env.keys["alice"]}).json()["user"] == "alice"
    me = env.client.get("/me", headers=env.auth("root")).json()
    assert me["is_admin"] and "rag" in me["programs"]
    env.client.app.state.flywheel.keys.revoke(env.client.app.state.flywheel.keys.list("alice")[0]["id"])
    assert env.client.get("/me", headers=env.auth("alice")).status_code == 401


def test_metrics_are_prometheus_text(env: Env) -> None:
    chat(env, "alice", "When do I check the oil?")
    text = env.client.get("/metrics", headers=env.auth("alice")).text
    assert 'flywheel_http_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0' in text
    assert 'flywheel_program_calls_total{outcome="ok",program="rag"} 1.0' in text


# --- chat -------------------------------------------------------------------------------------------


def test_chat_answers_with_citations_and_a_trace_id_recorded_for_feedback(env: Env) -> None:
    response = chat(env, "alice", "When do I check the oil?")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == ANSWER["answer"]
    extra = body["flywheel"]
    assert extra["trace_id"] == response.headers["x-flywheel-trace-id"]
    assert [c["citation"] for c in extra["citations"]] == ["oil.md §Oil servicing"]
    assert "5 to 30 minutes" in extra["citations"][0]["text"]
    stored = env.client.app.state.flywheel.feedback.interaction(extra["trace_id"], "alice")
    assert stored["question"] == "When do I check the oil?" and stored["program"] == "rag"


def test_chat_retrieval_applies_the_callers_groups(env: Env) -> None:
    body = chat(env, "bob", "When do I check the oil?").json()  # bob reads only the pilots' fuel policy
    assert not any("oil.md" in c["citation"] for c in body["flywheel"]["citations"])
    # …and what he may read is found and cited (the check above passed vacuously when nothing was cited)
    citations = chat(env, "bob", "How much final reserve fuel?").json()["flywheel"]["citations"]
    assert citations and all("fuel.md" in c["citation"] for c in citations)


def test_chat_streams_server_sent_events(env: Env) -> None:
    with env.client.stream(
        "POST",
        "/v1/chat/completions",
        headers=env.auth("alice"),
        json={"model": "rag@champion", "stream": True, "messages": [{"role": "user", "content": "Oil?"}]},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == ANSWER["answer"] and len(chunks) > 4
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["flywheel"]["trace_id"]


def test_models_list_programs_and_unknown_programs_are_404(env: Env) -> None:
    ids = [m["id"] for m in env.client.get("/v1/models", headers=env.auth("alice")).json()["data"]]
    assert {"flywheel", "rag", "agent", "rag@champion"} <= set(ids)
    for model in ("nope", "rag@staging"):
        response = chat(env, "alice", "hi", model=model)
        assert response.status_code == 404 and error_of(response)["hint"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "rag"}, "messages"),
        ({"model": "rag", "messages": []}, "messages"),
        ({"model": "rag", "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"model": "rag", "messages": [{"role": "assistant", "content": "x"}]}, "last message"),
        ({"model": "rag", "messages": [{"role": "user", "content": "   "}]}, "empty"),
        ({"model": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ([1, 2], "schema"),
    ],
)
def test_chat_rejects_wrong_schemas_with_422(env: Env, body: object, needle: str) -> None:
    response = env.client.post("/v1/chat/completions", json=body, headers=env.auth("alice"))
    assert response.status_code == 422
    assert needle in json.dumps(error_of(response))


def test_malformed_json_is_a_422_json_error(env: Env) -> None:
    for path in ("/v1/chat/completions", "/invocations", "/feedback"):
        response = env.client.post(
            path, content=b"{not json", headers={**env.auth("alice"), "Content-Type": "application/json"}
        )
        assert response.status_code == 422, path
        assert "not valid JSON" in error_of(response)["message"]


def test_lm_failure_is_a_503_json_error(flywheel_home) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lm = build_lm(LMSettings(provider="openai", api_base=f"http://127.0.0.1:{port}/v1", max_retries=0, cache=False))
    app, _settings, _kb, keys = make_env(lm=lm)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {keys['alice']}"},
            json={"model": "broken", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 503
    assert "Cannot reach the LM endpoint" in error_of(response)["message"]


def test_slow_program_is_a_504(env: Env) -> None:
    response = chat(env, "alice", "hi", model="slow")
    assert response.status_code == 504 and "did not finish" in error_of(response)["message"]


# --- invocations (MLflow scoring protocol) ------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["question"], "data": [["Oil check?"], ["Oil again?"]]}},
        {"dataframe_records": [{"question": "Oil check?"}, {"question": "Oil again?"}]},
        {"inputs": {"question": ["Oil check?", "Oil again?"]}},
        {"inputs": [{"messages": [{"role": "user", "content": "Oil check?"}]}, {"question": "Oil again?"}]},
    ],
)
def test_invocations_accepts_the_mlflow_formats(env: Env, payload: dict) -> None:
    response = env.client.post(
        "/invocations", json={**payload, "params": {"program": "rag"}}, headers=env.auth("alice")
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    for row in predictions:
        assert row["answer"] == ANSWER["answer"] and not row["error"]
        assert json.loads(row["citations"])[0]["doc_id"]
        env.client.app.state.flywheel.feedback.interaction(row["trace_id"], "alice")


def test_invocations_accepts_csv(env: Env) -> None:
    response = env.client.post(
        "/invocations", content=b"question\nOil check?\n", headers={**env.auth("alice"), "Content-Type": "text/csv"}
    )
    assert response.status_code == 200 and response.json()["predictions"][0]["answer"]


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({}, 422),
        ({"dataframe_records": [{"question": "a"}], "inputs": []}, 422),
        ({"dataframe_split": {"columns": ["question"], "data": "nope"}}, 422),
        ({"dataframe_split": {"columns": ["question"], "data": [["a", "b"]]}}, 422),
        ({"dataframe_records": [{"prompt": "a"}]}, 422),
        ({"dataframe_records": []}, 422),
        ({"dataframe_records": [{"question": "a"}] * 101}, 422),
        ({"dataframe_records": [{"question": "a"}], "params": {"program": "nope"}}, 404),
        ({"dataframe_records": [{"question": "a", "user": "bob"}]}, 403),
        ([{"question": "a"}], 422),
    ],
)
def test_invocations_bad_input(env: Env, payload: object, status: int) -> None:
    response = env.client.post("/invocations", json=payload, headers=env.auth("alice"))
    assert response.status_code == status, response.text
    assert error_of(response)["hint"]


# --- documents ----------------------------------------------------------------------------------------


def test_documents_upload_list_regroup_delete(env: Env) -> None:
    response = env.client.post(
        "/documents",
        headers=env.auth("alice"),
        data={"groups": ["mechanics"]},
        files=[("files", ("brakes.md", b"# Brakes\n\nReplace pads at 2 mm.", "text/markdown"))],
    )
    assert response.status_code == 201, response.text
    result = response.json()["results"][0]
    assert result["status"] == "added" and result["chunks"] >= 1
    doc = response.json()["documents"][0]
    assert doc["status"] == "ready" and doc["groups"] == ["mechanics"] and doc["owner"] == "alice"

    alice_docs = {d["source"] for d in env.client.get("/documents", headers=env.auth("alice")).json()["documents"]}
    bob_docs = {d["source"] for d in env.client.get("/documents", headers=env.auth("bob")).json()["documents"]}
    assert alice_docs == {"oil.md", "brakes.md"} and bob_docs == {"fuel.md"}
    assert env.client.get(f"/documents/{doc['id']}", headers=env.auth("bob")).status_code == 404
    assert env.client.get(f"/documents/{doc['id']}", headers=env.auth("alice")).json()["id"] == doc["id"]

    regroup = env.client.patch(f"/documents/{doc['id']}/groups", json={"groups": ["pilots"]}, headers=env.auth("alice"))
    assert regroup.status_code == 403 and "not a member of pilots" in error_of(regroup)["message"]
    regroup = env.client.patch(
        f"/documents/{doc['id']}/groups", json={"groups": ["everyone"]}, headers=env.auth("alice")
    )
    assert regroup.status_code == 200 and regroup.json()["groups"] == ["everyone"]
    assert env.client.delete(f"/documents/{doc['id']}", headers=env.auth("bob")).status_code == 403
    assert env.client.delete(f"/documents/{doc['id']}", headers=env.auth("alice")).status_code == 200
    assert env.client.get(f"/documents/{doc['id']}", headers=env.auth("alice")).status_code == 404


@pytest.mark.parametrize(
    ("files", "groups", "status", "needle"),
    [
        ([("files", ("x.md", b"# X\n\ntext", "text/markdown"))], ["pilots"], 403, "not a member of pilots"),
        ([("files", ("x.md", b"# X\n\ntext", "text/markdown"))], ["ghosts"], 404, "Unknown group"),
        ([("files", ("x.md", b"# X\n\ntext", "text/markdown"))], [" , "], 422, "at least one group"),
        ([("files", ("x.exe", b"MZ", "application/octet-stream"))], ["mechanics"], 415, "unsupported file type"),
        ([("files", ("big.txt", b"a " * 700_000, "text/plain"))], ["mechanics"], 413, "upload limit"),
        ([("files", ("empty.txt", b"", "text/plain"))], ["mechanics"], 422, "Nothing was ingested"),
        ([("files", ("", b"x", "text/plain"))], ["mechanics"], 422, ""),
        ([], ["mechanics"], 422, "files"),
    ],
)
def test_bad_uploads_are_clear_4xx(flywheel_home, files: list, groups: list, status: int, needle: str) -> None:
    app, _settings, _kb, keys = make_env(make_settings(knowledge={"max_file_mb": 1}))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/documents",
            headers={"X-API-Key": keys["alice"]},
            data={"groups": groups},
            files=files or {"other": ("a", b"")},
        )
    assert response.status_code == status, response.text
    assert needle in json.dumps(error_of(response))


def test_patch_groups_schema_errors(env: Env) -> None:
    doc_id = env.client.get("/documents", headers=env.auth("alice")).json()["documents"][0]["id"]
    for body in ({}, {"groups": []}, {"groups": "mechanics"}):
        response = env.client.patch(f"/documents/{doc_id}/groups", json=body, headers=env.auth("alice"))
        assert response.status_code == 422
    assert (
        env.client.patch(
            "/documents/nope/groups", json={"groups": ["mechanics"]}, headers=env.auth("alice")
        ).status_code
        == 404
    )


# --- feedback -----------------------------------------------------------------------------------------


def test_feedback_is_stored_for_own_answers_only(env: Env) -> None:
    trace_id = chat(env, "alice", "When do I check the oil?").json()["flywheel"]["trace_id"]
    response = env.client.post(
        "/feedback", json={"trace_id": trace_id, "rating": "up", "comment": "clear"}, headers=env.auth("alice")
    )
    assert response.status_code == 201 and response.json()["rating"] == "up"
    assert (
        env.client.post("/feedback", json={"trace_id": trace_id, "rating": "down"}, headers=env.auth("bob")).status_code
        == 403
    )
    assert (
        env.client.post(
            "/feedback", json={"trace_id": "tr-none", "rating": "up"}, headers=env.auth("alice")
        ).status_code
        == 404
    )
    for body in (
        {"trace_id": trace_id},
        {"trace_id": trace_id, "rating": "meh"},
        {"rating": "up"},
        {"trace_id": trace_id, "rating": "up", "extra": 1},
    ):
        assert env.client.post("/feedback", json=body, headers=env.auth("alice")).status_code == 422, body
    assert env.client.get("/feedback", headers=env.auth("alice")).status_code == 403
    rows = env.client.get("/feedback", headers=env.auth("root")).json()["feedback"]
    assert [(r["trace_id"], r["user"], r["rating"], r["comment"]) for r in rows] == [(trace_id, "alice", "up", "clear")]


def test_unknown_routes_and_methods_are_json(env: Env) -> None:
    assert error_of(env.client.get("/nope"))["message"] == "Not Found"
    assert env.client.put("/feedback").status_code == 405


def test_new_champions_are_picked_up_without_a_restart(flywheel_home) -> None:
    import threading
    import time

    app, _settings, _kb, keys = make_env(make_settings(serve={"reload_interval_s": 0.05}))
    service = app.state.flywheel
    refreshed = threading.Event()
    service.assistant.refresh = lambda: refreshed.set() or ["rag"]
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {keys['alice']}"}
        time.sleep(0.1)
        reply = client.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": "rag", "messages": [{"role": "user", "content": "Oil?"}]},
        )
        assert reply.status_code == 200
    assert refreshed.wait(5)


def test_serve_with_deploy_registers_the_champion_once(flywheel_home) -> None:
    """`flywheel serve --deploy`: program on disk → registered MLflow champion → served, in one start."""
    import dspy
    from dspy.utils import DummyLM

    from flywheel.assistant import Assistant
    from flywheel.knowledge.base import KnowledgeBase
    from flywheel.registry.programs import ProgramRegistry
    from flywheel.serve.app import create_app
    from tests.unit.serve_helpers import HashEmbedder

    settings = make_settings()
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    registry = ProgramRegistry(settings)
    lm = DummyLM([ANSWER] * 20, adapter=dspy.JSONAdapter())
    for _ in range(2):  # the second start finds the champion and registers nothing
        assistant = Assistant(settings, knowledge=kb, registry=registry)
        app = create_app(settings, assistant=assistant, lm=lm, registry=registry, tracing=False, deploy=True)
        with TestClient(app) as client:
            assert client.get("/ready").status_code == 200
        assert assistant.loaded_versions.get("rag") == 1
    versions = registry.versions("rag")
    assert [(v.version, v.is_champion) for v in versions] == [(1, True)]
    assert registry.model_uri("rag") == "models:/flywheel-rag@champion"


def test_answers_leave_no_lm_call_history_in_the_service(env: Env) -> None:
    # DSPy keeps every LM call (prompt with the retrieved passages, response) in the LM and a global
    # list, up to 10,000 of them: a serving process reads none of it, and it only grew the heap.
    from dspy.clients import base_lm

    before = len(base_lm.GLOBAL_HISTORY)
    for _ in range(3):
        chat(env, "alice", "How often is the oil changed?")
    assert env.lm.history == []
    assert len(base_lm.GLOBAL_HISTORY) == before


def test_an_app_that_does_not_own_its_process_leaves_the_garbage_collector_alone(env: Env) -> None:
    import gc

    # The env's app has run its start-up (TestClient): embedded apps and tests must not freeze their host's heap.
    assert env.client.get("/ready").status_code == 200
    assert gc.get_freeze_count() == 0
