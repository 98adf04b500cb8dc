"""Abuse limits: per-key rate and concurrency (429 + Retry-After), body sizes (413), the upload quota."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flywheel.errors import RateLimitedError
from flywheel.serve.limits import KeyLimiter
from tests.unit.serve_helpers import Env, make_env, make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate_with_a_retry_after() -> None:
    clock = Clock()
    limiter = KeyLimiter(rate_per_minute=30, burst=2, max_concurrent=0, clock=clock)
    limiter.acquire("k")
    limiter.acquire("k")
    with pytest.raises(RateLimitedError) as refused:
        limiter.acquire("k")
    assert refused.value.status_code == 429 and refused.value.retry_after == 2  # one request per 2 s
    limiter.acquire("other")  # keys are limited separately
    clock.now += 2.0
    limiter.acquire("k")


def test_concurrency_is_per_key_and_released() -> None:
    limiter = KeyLimiter(rate_per_minute=0, burst=1, max_concurrent=2)
    limiter.acquire("k")
    limiter.acquire("k")
    with pytest.raises(RateLimitedError, match="in flight"):
        limiter.acquire("k")
    limiter.release("k")
    limiter.acquire("k")


@pytest.fixture
def limited(request: pytest.FixtureRequest) -> Iterator[Env]:
    limits = getattr(request, "param", {})
    app, settings, kb, keys = make_env(make_settings(limits=limits, serve={"request_timeout_s": 10.0}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, settings, kb, keys, None)


def error_of(response: Any) -> dict[str, str]:
    body = response.json()
    assert body["error"]["message"] and body["error"]["hint"], body
    return body["error"]


@pytest.mark.parametrize("limited", [{"rate_per_minute": 60, "burst": 3}], indirect=True)
def test_rate_limit_is_a_429_with_retry_after_per_key(limited: Env) -> None:
    for _ in range(3):
        assert limited.client.get("/me", headers=limited.auth("alice")).status_code == 200
    refused = limited.client.get("/me", headers=limited.auth("alice"))
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "Too many requests" in error_of(refused)["message"]
    assert limited.client.get("/me", headers=limited.auth("bob")).status_code == 200
    assert limited.client.get("/health").status_code == 200  # operations routes are not limited
    metrics = limited.client.get("/metrics", headers=limited.auth("root")).text
    assert 'flywheel_requests_refused_total{reason="rate"} 1.0' in metrics


@pytest.mark.parametrize("limited", [{"max_concurrent": 1}], indirect=True)
def test_one_request_in_flight_per_key(limited: Env) -> None:
    started = threading.Event()
    original = limited.client.app.state.flywheel.answer

    def slow_answer(*args: Any) -> Any:
        started.set()
        return original(*args)

    limited.client.app.state.flywheel.answer = slow_answer
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}
    first: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: first.update(
            r=limited.client.post("/v1/chat/completions", json=body, headers=limited.auth("alice"))
        )
    )
    worker.start()
    assert started.wait(10)
    second = limited.client.get("/me", headers=limited.auth("alice"))
    worker.join(20)
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert "in flight" in error_of(second)["message"]
    assert first["r"].status_code == 200
    assert limited.client.get("/me", headers=limited.auth("alice")).status_code == 200  # the slot was released


@pytest.mark.parametrize("limited", [{"max_body_mb": 0.01}], indirect=True)
def test_bodies_over_the_limit_are_413_with_or_without_a_length(limited: Env) -> None:
    big = {"model": "rag", "messages": [{"role": "user", "content": "x" * 20_000}]}
    response = limited.client.post("/v1/chat/completions", json=big, headers=limited.auth("alice"))
    assert response.status_code == 413 and "0.01 MB limit" in error_of(response)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model": "rag", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}]}'

    streamed = limited.client.post(
        "/v1/chat/completions", content=chunks(), headers={**limited.auth("alice"), "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and "limit" in streamed.json()["error"]["message"]


@pytest.mark.parametrize("limited", [{"upload_quota_mb": 0.0005, "max_question_chars": 20}], indirect=True)
def test_upload_quota_and_question_length(limited: Env) -> None:
    headers = limited.auth("alice")  # alice already owns oil.md (~90 bytes); the quota is 524 bytes
    ok = limited.client.post(
        "/documents",
        headers=headers,
        data={"groups": "mechanics"},
        files=[("files", ("a.md", b"# A\n\n" + b"word " * 60, "text/markdown"))],
    )
    assert ok.status_code == 201, ok.text
    over = limited.client.post(
        "/documents",
        headers=headers,
        data={"groups": "mechanics"},
        files=[("files", ("b.md", b"# B\n\n" + b"word " * 60, "text/markdown"))],
    )
    assert over.status_code == 413 and "quota" in error_of(over)["message"]
    again = limited.client.post(
        "/documents",
        headers=headers,
        data={"groups": "mechanics"},  # a replacement fits
        files=[("files", ("a.md", b"# A\n\n" + b"term " * 60, "text/markdown"))],
    )
    assert again.status_code == 201, again.text
    long = limited.client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "rag", "messages": [{"role": "user", "content": "why " * 10}]},
    )
    assert long.status_code == 422 and "longer than 20 characters" in error_of(long)["message"]
