"""Shared pieces of the service's unit tests: a hashing embedder, test programs, an app factory,
``serving(app)`` (the app under uvicorn on loopback, for real HTTP clients) and ``stub_lm_base()``
(bench/stub_lm.py on loopback, as an LM endpoint for another process)."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
import numpy as np
from dspy.utils import DummyLM
from fastapi.testclient import TestClient

from flywheel.access import Principal
from flywheel.assistant import Assistant
from flywheel.config import Settings, load_settings
from flywheel.knowledge.base import KnowledgeBase
from flywheel.serve.app import create_app

OIL = b"# Oil servicing\n\nCheck the engine oil level 5 to 30 minutes after engine shutdown.\n"
FUEL = b"# Fuel policy\n\nCarry 45 minutes of final reserve fuel on every IFR flight.\n"
ANSWER = {"reasoning": "r", "answer": "Check it 5 to 30 minutes after shutdown.", "citations": [1], "found": True}


class HashEmbedder:
    """Deterministic bag-of-words vectors: fast, offline, good enough to rank a few test chunks."""

    name = "hash"
    dimensions = 64

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimensions] += 1.0
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


class SlowProgram(dspy.Module):
    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        time.sleep(1.5)
        return dspy.Prediction(answer="late", citations=[])


class BrokenProgram(dspy.Module):
    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        return dspy.Predict("question -> answer")(question=question)


@dataclass
class Env:
    client: TestClient
    settings: Settings
    kb: KnowledgeBase
    keys: dict[str, str]
    lm: Any

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[user]}"}


def make_settings(**overrides: Any) -> Settings:
    custom = {"slow": "tests.unit.serve_helpers:SlowProgram", "broken": "tests.unit.serve_helpers:BrokenProgram"}
    serve = {"reload_interval_s": 0, "request_timeout_s": 1.0, **overrides.pop("serve", {})}
    # The stub LM's answer is what these tests check: generate it rather than quote a passage.
    return load_settings(programs={"custom": custom, "answer_style": "generate"}, serve=serve, **overrides)


def alice_and_frank(home: Path, documents: dict[str, list[tuple[str, bytes]]]) -> KnowledgeBase:
    """A knowledge base under ``home`` (hashed vectors) with alice (mechanics) and frank (no group),
    holding ``documents`` ingested by alice: group -> files."""
    kb = KnowledgeBase(load_settings(home=home), embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.catalog.add_user("frank", [])
    for group, files in documents.items():
        kb.ingest_files(kb.principal("alice"), files, groups=[group])
    return kb


def make_env(settings: Settings | None = None, lm: Any = None) -> tuple[Any, Settings, KnowledgeBase, dict[str, str]]:
    settings = settings or make_settings()
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.catalog.add_user("bob", ["pilots"])
    kb.catalog.add_user("root", [], is_admin=True)
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL)], groups=["mechanics"])
    kb.ingest_files(kb.principal("bob"), [("fuel.md", FUEL)], groups=["pilots"])
    lm = lm or DummyLM([ANSWER] * 200, adapter=dspy.JSONAdapter())
    app = create_app(settings, assistant=Assistant(settings, knowledge=kb), lm=lm, tracing=False)
    store = app.state.flywheel.keys
    keys = {user: store.create(user)[1] for user in ("alice", "bob", "root")}
    return app, settings, kb, keys


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yields its base URL once it has started
    (its lifespan, warm-up included, has run), and stops it afterwards."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stub_lm_base() -> str:
    """Start bench/stub_lm.py (no latency) on a free loopback port in a daemon thread; its OpenAI api_base."""
    import asyncio

    from bench.stub_lm import serve

    port = free_port()
    threading.Thread(target=lambda: asyncio.run(serve("127.0.0.1", port, 0.0)), daemon=True).start()
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return f"http://127.0.0.1:{port}/v1"
