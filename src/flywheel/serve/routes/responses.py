"""OpenAI Responses API: ``POST /v1/responses`` (JSON or typed SSE events), ``GET /v1/responses/{id}``.

``model`` picks the program as in ``/v1/chat/completions``. ``input`` is a string (the question) or a
list of messages (``{"role", "content"}`` with text or ``input_text``/``output_text`` parts; earlier
user→assistant pairs become the conversation history, the last message is the question).
``previous_response_id`` continues a stored conversation of the caller's (``store``, default true,
keeps each response for that, and for ``GET``). ``instructions`` is accepted and ignored: a program's
prompts are parameters tuned by the optimizers, not free text. Responses carry
``flywheel: {trace_id, citations, program}`` (also in ``response.completed`` when streaming) for
feedback. The program runs to completion before the first byte, so failures are proper JSON errors.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from flywheel.answers import stream_pieces
from flywheel.errors import InvalidInputError
from flywheel.serve.deps import Caller, ServiceDep
from flywheel.serve.routes.chat import ChatMessage, to_question_and_history

router = APIRouter(tags=["chat"])


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field("flywheel", max_length=200, description="Program to ask: rag, agent, rag@champion, flywheel.")
    input: str | list[dict[str, Any]] = Field(description="The question, or a list of messages ending with it.")
    previous_response_id: str | None = Field(None, max_length=64)
    instructions: str | None = Field(None, description="Accepted and ignored (programs are optimized, not prompted).")
    stream: bool = False
    store: bool = True
    metadata: dict[str, str] | None = None


def to_messages(items: str | list[dict[str, Any]]) -> list[ChatMessage]:
    """Responses ``input`` as chat messages (only message items carry text a program can answer)."""
    if isinstance(items, str):
        return [ChatMessage(role="user", content=items)]
    messages = []
    for i, item in enumerate(items):
        if item.get("type", "message") != "message" or "role" not in item:
            raise InvalidInputError(
                f"input[{i}] is a {item.get('type', 'item without a role')!r}; only messages are supported.",
                hint='Send {"role": "user", "content": "…"} items.',
            )
        messages.append(ChatMessage.model_validate(item))
    if not messages:
        raise InvalidInputError("`input` is empty.", hint="Send the question as a string or a list of messages.")
    return messages


def response_object(
    response_id: str,
    created: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    previous: str | None,
    metadata: dict[str, str] | None,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": output,
        "previous_response_id": previous,
        "metadata": metadata or {},
        "instructions": None,
        "error": None,
        "incomplete_details": None,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "temperature": None,
        "top_p": None,
        "text": {"format": {"type": "text"}},
        "usage": {
            "input_tokens": 0,
            "output_tokens": 0,
            "total_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
    if extra is not None:
        body["flywheel"] = extra
    return body


def message_item(item_id: str, text: str | None) -> dict[str, Any]:
    """The assistant's output message; ``text=None`` is the in-progress item with no content yet."""
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
    return {
        "type": "message",
        "id": item_id,
        "status": "in_progress" if text is None else "completed",
        "role": "assistant",
        "content": content,
    }


@router.post(
    "/v1/responses",
    response_model=None,
    responses={
        200: {"description": "A response object, or an SSE stream of response events"},
        404: {"description": "Unknown program or previous response"},
        502: {"description": "The LM failed"},
        504: {"description": "Timed out"},
    },
)
async def create_response(request: Request, service: ServiceDep, body: ResponsesRequest, caller: Caller) -> Any:
    """Ask a program as the caller, in the OpenAI Responses API format (SSE events with ``stream``)."""
    store = request.app.state.responses
    program = service.resolve_model(body.model)
    question, history = to_question_and_history(to_messages(body.input))
    if body.previous_response_id:
        earlier = await service.run(store.history, caller.user, body.previous_response_id, timeout=False)
        history = earlier + history
    reply = await service.run(service.answer, caller, program, question, history[-store.max_turns :])
    response_id, item_id, created = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}", int(time.time())
    extra = {"trace_id": reply.trace_id, "citations": reply.citations, "program": program}
    final = response_object(
        response_id,
        created,
        body.model,
        "completed",
        [message_item(item_id, reply.answer)],
        body.previous_response_id,
        body.metadata,
        extra,
    )
    if body.store:
        turns = [*history, {"question": question, "answer": reply.answer}]
        await service.run(store.save, caller.user, final, turns, timeout=False)
    headers = {"X-Flywheel-Trace-Id": reply.trace_id or ""}
    if body.stream:
        return StreamingResponse(
            _events(final, item_id, reply.answer),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    return JSONResponse(final, headers=headers)


@router.get("/v1/responses/{response_id}", response_model=None, responses={404: {"description": "Not found"}})
async def get_response(request: Request, service: ServiceDep, response_id: str, caller: Caller) -> dict[str, Any]:
    """One of the caller's stored responses."""
    return await service.run(request.app.state.responses.get, caller.user, response_id, timeout=False)


async def _events(final: dict[str, Any], item_id: str, answer: str) -> AsyncIterator[bytes]:
    """The Responses API's typed events for one text answer, in order, with sequence numbers."""
    sequence = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal sequence
        data = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

    started = {**final, "status": "in_progress", "output": []}
    started.pop("flywheel", None)
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": answer, "annotations": []}
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    yield event("response.output_item.added", output_index=0, item=message_item(item_id, None))
    yield event("response.content_part.added", **where, part={**part, "text": ""})
    for piece in stream_pieces(answer):
        yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
    yield event("response.output_text.done", **where, text=answer, logprobs=[])
    yield event("response.content_part.done", **where, part=part)
    yield event("response.output_item.done", output_index=0, item=message_item(item_id, answer))
    yield event("response.completed", response=final)
