"""The service against a misbehaving LM endpoint (bench.fault_lm on loopback): every fault gets a clear
JSON error or a bounded retry, no worker is held past its request, and a circuit breaker (state in
/metrics) fails fast while the endpoint is down and closes again when it recovers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from bench.fault_lm import FaultLM, running
from fastapi.testclient import TestClient

from flywheel.lm import build_lm
from tests.unit.serve_helpers import Env, make_env, make_settings

QUESTION = "When do I check the oil?"


@pytest.fixture(scope="module")
def fault_lm() -> Iterator[FaultLM]:
    with running(FaultLM()) as server:
        yield server


@contextmanager
def service_env(server: FaultLM, *, lm: dict[str, Any] | None = None, **serve: Any) -> Iterator[Env]:
    lm_settings = {
        "provider": "openai",
        "api_base": server.api_base,
        "model": "stub",
        "cache": False,
        "timeout_s": 0.5,
        "max_retries": 1,
        "max_retry_wait_s": 2.0,
        **(lm or {}),
    }
    settings = make_settings(
        lm=lm_settings, serve={"request_timeout_s": 10.0, "breaker_failures": 3, "breaker_open_s": 0.5, **serve}
    )
    server.set_fault("none")
    app, settings, kb, keys = make_env(settings, lm=build_lm(settings.lm))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, settings, kb, keys, app.state.flywheel.lm)
    server.set_fault("none")


@pytest.fixture
def env(fault_lm: FaultLM) -> Iterator[Env]:
    with service_env(fault_lm) as env:
        yield env


def ask(env: Env, stream: bool = False) -> Any:
    body = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}], "stream": stream}
    return env.client.post("/v1/chat/completions", json=body, headers=env.auth("alice"))


def error_of(response: Any) -> dict[str, str]:
    body = response.json()
    assert body["error"]["message"] and body["error"]["hint"], body
    return body["error"]


def metric(env: Env, name: str) -> float:
    for line in env.client.get("/metrics", headers=env.auth("root")).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.parametrize(
    ("mode", "status", "needle", "attempts"),
    [
        ("error500", 502, "server error", 2),  # retried once, then a clear 502
        ("malformed", 502, "is not JSON", 1),  # not retried: the reply is not an answer
        ("truncated", 502, "not in the expected format", 1),
        ("drop", 503, "closed the connection mid-answer", 2),
        ("slow", 503, "did not answer within 0.5 s", 2),
    ],
)
def test_each_fault_is_a_clear_json_error(
    env: Env, fault_lm: FaultLM, mode: str, status: int, needle: str, attempts: int
) -> None:
    before = fault_lm.counts[mode]
    fault_lm.set_fault(mode, slow_s=3.0)
    response = ask(env)
    assert response.status_code == status, response.text
    assert needle in error_of(response)["message"]
    assert fault_lm.counts[mode] - before == attempts
    fault_lm.set_fault("none")
    assert ask(env).status_code == 200  # and the next request is answered


def test_a_stream_cut_mid_answer_is_an_error_before_the_first_byte(env: Env, fault_lm: FaultLM) -> None:
    fault_lm.set_fault("drop")
    response = ask(env, stream=True)
    assert response.status_code == 503 and response.headers["content-type"].startswith("application/json")


def test_a_429_is_retried_after_its_retry_after(env: Env, fault_lm: FaultLM) -> None:
    before = fault_lm.counts["ratelimit"]
    fault_lm.set_fault("ratelimit", times=1, retry_after=1)
    response = ask(env)
    assert response.status_code == 200, response.text
    assert fault_lm.counts["ratelimit"] - before == 1


def test_a_429_asking_for_a_long_pause_fails_at_once_with_retry_after(env: Env, fault_lm: FaultLM) -> None:
    fault_lm.set_fault("ratelimit", retry_after=30)
    response = ask(env)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert "rate-limiting" in error_of(response)["message"]


def test_a_timed_out_request_frees_its_worker_thread(fault_lm: FaultLM, monkeypatch: pytest.MonkeyPatch) -> None:
    """504 at the request timeout; the worker's LM call ends at its own HTTP timeout and starts no retry."""
    with service_env(fault_lm, lm={"timeout_s": 1.5, "max_retries": 3}, request_timeout_s=0.5) as env:
        service = env.client.app.state.flywheel
        finished = threading.Event()
        original = service.answer

        def answer(*args: Any) -> Any:
            try:
                return original(*args)
            finally:
                finished.set()

        monkeypatch.setattr(service, "answer", answer)
        before = fault_lm.counts["slow"]
        fault_lm.set_fault("slow", slow_s=20.0)
        response = ask(env)
        assert response.status_code == 504 and "did not finish" in error_of(response)["message"]
        assert finished.wait(15), "the worker thread kept running after its request timed out"
        assert fault_lm.counts["slow"] - before == 1  # no retry started after the deadline


def test_the_breaker_opens_fails_fast_and_closes_when_the_endpoint_recovers(env: Env, fault_lm: FaultLM) -> None:
    fault_lm.set_fault("error500")
    for _ in range(3):
        assert ask(env).status_code == 502
    assert metric(env, "flywheel_lm_circuit_state") == 2
    reached = fault_lm.requests + fault_lm.counts["error500"]
    refused = ask(env)
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert "circuit breaker open" in error_of(refused)["message"]
    assert fault_lm.requests + fault_lm.counts["error500"] == reached  # refused without calling the LM
    assert metric(env, "flywheel_lm_circuit_refused_total") == 1
    fault_lm.set_fault("none")
    deadline = time.monotonic() + 10
    while (response := ask(env)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)  # until breaker_open_s has passed and the trial call goes through
    assert response.status_code == 200, response.text
    assert metric(env, "flywheel_lm_circuit_state") == 0
    assert metric(env, "flywheel_lm_circuit_opened_total") == 1


def test_retry_pauses_are_bounded_tighter_for_served_requests() -> None:
    from dspy.utils.exceptions import LMAuthError, LMRateLimitError, LMServerError

    from flywheel.lm.bounded import BoundedLM, deadline

    lm = BoundedLM("openai/stub", api_base="http://127.0.0.1:9/v1", api_key="x", max_retries=2, max_retry_wait_s=10)
    assert lm.num_retries == 0  # DSPy's own retries are off: these are the only ones
    assert lm.retry_delay(LMServerError("boom"), 0) == 0.5 and lm.retry_delay(LMServerError("boom"), 1) == 1.0
    assert lm.retry_delay(LMServerError("boom"), 2) is None  # max_retries reached
    assert lm.retry_delay(LMAuthError("no"), 0) is None  # not worth retrying
    slow = LMRateLimitError("wait", retry_after=30)
    assert lm.retry_delay(slow, 0) == 30  # a batch job may wait for it
    with deadline(60):
        assert lm.retry_delay(slow, 0) is None  # a served request may not
        assert lm.retry_delay(LMRateLimitError("wait", retry_after=2), 0) == 2
    with deadline(1):
        assert lm.retry_delay(LMRateLimitError("wait", retry_after=2), 0) is None  # past the deadline
