"""OpenAI-compatible chat: ``POST /v1/chat/completions`` (JSON or SSE stream) and ``GET /v1/models``.

The model name selects the program: ``rag``, ``agent``, a custom program, ``rag@champion`` (the
served alias), or ``flywheel`` for the default program. Earlier user/assistant messages become the
program's conversation history; the last message must be the user's question. Besides the usual
fields, responses carry ``flywheel: {trace_id, citations, program}`` (in the last chunk when
streaming), so a client can show sources and send feedback.

The program runs to completion before the first byte is sent, so a failure is still a proper
4xx/5xx JSON error; the answer is then streamed in small pieces.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from flywheel.answers import question_and_history, stream_pieces
from flywheel.serve.deps import Caller, ServiceDep

router = APIRouter(tags=["chat"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if isinstance(part, dict))
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field("flywheel", max_length=200, description="Program to ask: rag, agent, rag@champion, flywheel.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "flywheel"
    version: int | None = Field(None, description="The registered version this service answers with (once loaded).")


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


def to_question_and_history(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The last user message, and the earlier user→assistant exchanges as {question, answer} turns."""
    return question_and_history((m.role, m.text()) for m in messages)


@router.get("/v1/models", response_model=ModelList)
async def list_models(service: ServiceDep, _caller: Caller) -> dict[str, Any]:
    """The programs this service answers with, plain and with the served alias."""
    alias = service.settings.serve.alias
    ids = ["flywheel"] + [n for name in service.program_names() for n in (name, f"{name}@{alias}")]
    created = int(service.started)
    loaded = getattr(service.assistant, "loaded_versions", {})
    return {
        "object": "list",
        "data": [
            {
                "id": i,
                "object": "model",
                "created": created,
                "owned_by": "flywheel",
                "version": loaded.get(i.split("@")[0]),
            }
            for i in ids
        ],
    }


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses={
        200: {"description": "A chat.completion object, or an SSE stream of chunks"},
        404: {"description": "Unknown program"},
        502: {"description": "The LM failed"},
        503: {"description": "The LM is unreachable"},
        504: {"description": "Timed out"},
    },
)
async def chat_completions(request: Request, service: ServiceDep, body: ChatRequest, caller: Caller) -> Any:
    """Ask a program as the caller; OpenAI request and response format, with SSE when ``stream`` is true."""
    program = service.resolve_model(body.model)
    question, history = to_question_and_history(body.messages)
    reply = await service.run(service.answer, caller, program, question, history)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    extra = {
        "trace_id": reply.trace_id,
        "citations": reply.citations,
        "program": program,
        "version": reply.program_version,
    }
    headers = {"X-Flywheel-Trace-Id": reply.trace_id or ""}
    if body.stream:
        return StreamingResponse(
            _stream(completion_id, created, body.model, reply.answer, extra),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply.answer}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "flywheel": extra,
        },
        headers=headers,
    )


async def _stream(
    completion_id: str, created: int, model: str, answer: str, extra: dict[str, Any]
) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **more,
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    for piece in stream_pieces(answer):
        yield chunk({"content": piece})
    yield chunk({}, "stop", flywheel=extra)
    yield b"data: [DONE]\n\n"
