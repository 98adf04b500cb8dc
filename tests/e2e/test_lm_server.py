"""`flywheel lm serve` is a real OpenAI-compatible server; remote LMs fail clearly and in time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Literal

import dspy
import httpx
import pytest

from flywheel.config import LMSettings
from flywheel.errors import EndpointUnreachableError
from flywheel.lm import build_lm, lm_failure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lm_server() -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_LM")}
    process = subprocess.Popen(
        [sys.executable, "-m", "flywheel", "lm", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(120):
            if process.poll() is not None:
                pytest.fail(f"lm serve exited: {process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("lm serve did not come up within 60 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


class Route(dspy.Signature):
    """Which team should handle this message?"""

    message: str = dspy.InputField()
    team: Literal["mechanics", "pilots", "customer-support"] = dspy.OutputField()


def test_dspy_lm_pointed_at_lm_serve_answers(lm_server: str) -> None:
    lm = build_lm(LMSettings(provider="openai", api_base=lm_server, cache=False, timeout_s=60))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        for message in ("The left brake is worn to the pin.", "My refund is late.", "Fuel policy for IFR?"):
            assert dspy.Predict(Route)(message=message).team in {"mechanics", "pilots", "customer-support"}
        answer = dspy.ChainOfThought("question -> answer")(question="What is the capital of France?")
    assert answer.answer.strip()
    assert lm.history[-1]["usage"]["completion_tokens"] > 0


def test_openai_client_streams_from_lm_serve(lm_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=lm_server, api_key="unused")
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Say hello in three words."}],
        max_tokens=20,
        stream=True,
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) > 2
    assert "".join(pieces).strip()


def test_lm_serve_enforces_a_json_schema(lm_server: str) -> None:
    schema = {
        "type": "object",
        "properties": {"tail": {"type": "string"}, "ok": {"type": "boolean"}},
        "required": ["tail", "ok"],
    }
    reply = httpx.post(
        f"{lm_server}/chat/completions",
        json={
            "messages": [{"role": "user", "content": "Aircraft N401SK passed inspection. Report it."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
            "max_tokens": 60,
        },
        timeout=60,
    )
    import json

    data = json.loads(reply.json()["choices"][0]["message"]["content"])
    assert set(data) == {"tail", "ok"} and isinstance(data["ok"], bool)


def test_lm_serve_rejects_malformed_requests(lm_server: str) -> None:
    reply = httpx.post(f"{lm_server}/chat/completions", json={"messages": []}, timeout=10)
    assert reply.status_code == 422


def test_closed_port_gives_a_clear_error() -> None:
    settings = LMSettings(provider="openai", api_base=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    with pytest.raises(Exception) as info, dspy.context(lm=build_lm(settings), adapter=dspy.JSONAdapter()):
        dspy.Predict("question -> answer")(question="hi")
    error = lm_failure(info.value, settings)
    assert isinstance(error, EndpointUnreachableError)
    assert "Cannot reach" in error.message


@pytest.mark.timeout(60)
def test_silent_endpoint_times_out_with_a_clear_error() -> None:
    """A server that accepts connections but never answers: the call ends by its own timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    settings = LMSettings(provider="openai", api_base=f"http://127.0.0.1:{port}/v1", timeout_s=2, max_retries=0)
    try:
        with pytest.raises(Exception) as info, dspy.context(lm=build_lm(settings), adapter=dspy.JSONAdapter()):
            dspy.Predict("question -> answer")(question="hi")
    finally:
        stop.set()
        for conn in held:
            conn.close()
        listener.close()
    error = lm_failure(info.value, settings)
    assert isinstance(error, EndpointUnreachableError)
    assert "did not answer within 2 s" in error.message
