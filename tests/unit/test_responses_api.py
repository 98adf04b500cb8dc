"""``/v1/responses`` with the official ``openai`` client: text and message input, previous_response_id
multi-turn (per user), typed SSE events, stored responses, and clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dspy
import pytest
from dspy.utils import DummyLM
from fastapi.testclient import TestClient
from openai import NotFoundError, OpenAI, UnprocessableEntityError

from tests.unit.serve_helpers import ANSWER, make_env


class RecordingLM(DummyLM):
    """A DummyLM that keeps the prompts it was sent, to see which history reached the program."""

    def __init__(self) -> None:
        # also a search query, for the follow-up rewrite step that runs when there is history
        super().__init__([{**ANSWER, "query": "engine oil check"}] * 50, adapter=dspy.JSONAdapter())
        self.prompts: list[str] = []

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.get("content")) for m in messages or []))
        return super().forward(prompt=prompt, messages=messages, **kwargs)


@pytest.fixture
def env() -> Iterator[tuple[TestClient, dict[str, str], RecordingLM]]:
    lm = RecordingLM()
    app, _settings, _kb, keys = make_env(lm=lm)
    with TestClient(app) as client:
        yield client, keys, lm


def openai_client(http: TestClient, key: str) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)


def test_text_input_and_multi_turn_with_previous_response_id(env: Any) -> None:
    http, keys, lm = env
    client = openai_client(http, keys["alice"])
    first = client.responses.create(model="rag", input="When do I check the engine oil?")
    assert first.status == "completed" and first.id.startswith("resp_")
    assert first.output_text == ANSWER["answer"]
    assert first.model_extra["flywheel"]["trace_id"]
    assert first.model_extra["flywheel"]["citations"][0]["citation"].startswith("oil.md")

    lm.prompts.clear()
    second = client.responses.create(model="rag", input="And how long after shutdown?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert any("When do I check the engine oil?" in p for p in lm.prompts)  # the earlier turn is the history
    assert client.responses.retrieve(second.id).output_text == ANSWER["answer"]

    bob = openai_client(http, keys["bob"])
    with pytest.raises(NotFoundError):  # another user's conversation does not exist for bob
        bob.responses.create(model="rag", input="Continue", previous_response_id=first.id)
    with pytest.raises(NotFoundError):
        bob.responses.retrieve(first.id)


def test_message_list_input_becomes_question_and_history(env: Any) -> None:
    http, keys, lm = env
    client = openai_client(http, keys["alice"])
    response = client.responses.create(
        model="flywheel",
        input=[
            {"role": "user", "content": "Tell me about oil servicing."},
            {"role": "assistant", "content": [{"type": "output_text", "text": "It is in the oil manual."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "When exactly?"}]},
        ],
        store=False,
    )
    assert response.output_text == ANSWER["answer"]
    assert any("It is in the oil manual." in p for p in lm.prompts)
    with pytest.raises(NotFoundError):  # store=false keeps nothing to continue from
        client.responses.retrieve(response.id)


def test_streaming_events_in_order(env: Any) -> None:
    http, keys, _lm = env
    client = openai_client(http, keys["alice"])
    events = list(client.responses.create(model="rag", input="When do I check the oil?", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == ANSWER["answer"] == events[-1].response.output_text


def test_errors_are_clear(env: Any) -> None:
    http, keys, _lm = env
    client = openai_client(http, keys["alice"])
    with pytest.raises(NotFoundError, match="Unknown program"):
        client.responses.create(model="nope", input="hi")
    with pytest.raises(UnprocessableEntityError, match="only messages"):
        client.responses.create(model="rag", input=[{"type": "function_call_output", "call_id": "x", "output": "1"}])
    unauthenticated = http.post("/v1/responses", json={"input": "hi"})
    assert unauthenticated.status_code == 401
