"""The LangChain chatbot served over HTTP the way a LangChain user would: FastAPI + ``chain.ainvoke``.

    FLYWHEEL_HOME=... FLYWHEEL_LM__PROVIDER=openai FLYWHEEL_LM__API_BASE=http://127.0.0.1:8090/v1 \\
        uvicorn bench.langchain_app:app --port 8001

Routes: ``POST /chat`` (``{"question": ...}`` → ``{"answer", "citations", "found"}``), and
``POST /v1/chat/completions`` (the last user message is the question; OpenAI-shaped reply), both
behind ``Authorization: Bearer <key>``; ``GET /health``. It reads the same settings, index and
catalog as Flywheel and authenticates with the same API-key table (``flywheel keys create USER``),
resolving the caller's groups per request, so both services do the same work per request
besides the framework itself.
"""

from __future__ import annotations

import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from flywheel.access import Principal

bearer = HTTPBearer(auto_error=False)


class ChatIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000)


class Message(BaseModel):
    role: str
    content: str


class CompletionIn(BaseModel):
    model: str = "rag-langchain"
    messages: list[Message] = Field(min_length=1)


@asynccontextmanager
async def lifespan(app: FastAPI) -> Any:
    from bench.langchain_rag import build_from_settings
    from flywheel.config import load_settings
    from flywheel.knowledge.catalog import Catalog
    from flywheel.stores.keys import ApiKeyStore

    settings = load_settings()
    app.state.chain = build_from_settings(settings)
    app.state.keys = ApiKeyStore(settings.catalog_url)
    app.state.catalog = Catalog(settings.catalog_url)
    yield


app = FastAPI(title="LangChain RAG chatbot (Flywheel benchmark baseline)", lifespan=lifespan)


async def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    if credentials is None:
        raise HTTPException(401, "Send Authorization: Bearer <key>.")
    user = await run_in_threadpool(request.app.state.keys.authenticate, credentials.credentials)
    if user is None:
        raise HTTPException(401, "Unknown or revoked API key.")
    return await run_in_threadpool(request.app.state.catalog.principal, user)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/chat")
async def chat(body: ChatIn, request: Request, principal: Principal = Depends(caller)) -> dict[str, Any]:
    result = await request.app.state.chain.ainvoke({"question": body.question, "principal": principal})
    return {"answer": result["answer"], "citations": result["citations"], "found": result["found"]}


@app.post("/v1/chat/completions")
async def completions(body: CompletionIn, request: Request, principal: Principal = Depends(caller)) -> dict[str, Any]:
    question = next((m.content for m in reversed(body.messages) if m.role == "user"), "")
    if not question.strip():
        raise HTTPException(422, "The messages hold no user question.")
    result = await request.app.state.chain.ainvoke({"question": question, "principal": principal})
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": result["answer"]}}
        ],
        "citations": result["citations"],
    }
