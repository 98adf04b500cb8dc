"""``flywheel lm serve``: the embedded model behind an OpenAI-compatible HTTP API.

Implements ``POST /v1/chat/completions`` (with ``response_format`` JSON schemas enforced by
grammar, and SSE streaming) and ``GET /v1/models``, so other processes — a second Flywheel,
a LangChain baseline in the benchmarks, any OpenAI client — can use the very same model.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flywheel.lm.grammar import compiled_grammar, grammar_for

if TYPE_CHECKING:
    from fastapi import FastAPI

    from flywheel.lm.embedded import LlamaCppEngine


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if isinstance(part, dict))
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = "smollm2-135m-instruct"
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0, le=32768)
    max_completion_tokens: int | None = Field(None, gt=0, le=32768)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    response_format: dict[str, Any] | None = None


def create_app(engine: LlamaCppEngine, *, model_name: str, default_max_tokens: int = 768) -> FastAPI:
    """The FastAPI app serving ``engine`` under ``model_name``."""
    # Lazy (start-up time): only this path needs FastAPI.
    from fastapi import FastAPI, HTTPException
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, StreamingResponse

    app = FastAPI(title="Flywheel embedded LM", version="1")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "flywheel"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatRequest) -> Any:
        max_tokens = body.max_tokens or body.max_completion_tokens or default_max_tokens
        try:
            gbnf = grammar_for(body.response_format, max_tokens)
            grammar = compiled_grammar(gbnf) if gbnf else None
        except (ValueError, RuntimeError) as exc:
            raise HTTPException(422, f"response_format cannot be enforced: {exc}") from exc
        kwargs: dict[str, Any] = {
            "messages": [
                {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages
            ],
            "max_tokens": max_tokens,
            "temperature": 0.0 if body.temperature is None else body.temperature,
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "stop": [body.stop] if isinstance(body.stop, str) else body.stop,
            "seed": body.seed,
            "grammar": grammar,
            "repeat_penalty": engine.repeat_penalty,
        }
        if body.stream:
            return StreamingResponse(_sse(engine, kwargs, model_name), media_type="text/event-stream")
        result = await run_in_threadpool(engine.chat, **kwargs)
        result["model"] = model_name
        return JSONResponse(result)

    return app


def _sse(engine: LlamaCppEngine, kwargs: dict[str, Any], model_name: str) -> Iterator[bytes]:
    """OpenAI-style server-sent events; Starlette iterates a sync generator in a thread."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    for chunk in engine.chat(stream=True, **kwargs):
        chunk.update(id=completion_id, created=created, model=model_name)
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def serve(engine: LlamaCppEngine, *, host: str, port: int, model_name: str, default_max_tokens: int) -> None:
    """Run the server in the foreground until interrupted."""
    # Lazy (start-up time): only this path needs uvicorn.
    import uvicorn

    app = create_app(engine, model_name=model_name, default_max_tokens=default_max_tokens)
    uvicorn.run(app, host=host, port=port, log_level="warning")
