"""The packaged MiniLM embedder: offline, normalised, and its token counter never truncates."""

from __future__ import annotations

import numpy as np

from flywheel.knowledge.chunk import chunk_document
from flywheel.knowledge.embed import LocalEmbedder
from flywheel.knowledge.parse import parse_document


def test_vectors_are_normalised_and_similar_texts_are_close() -> None:
    embedder = LocalEmbedder()
    a, b, c = embedder.embed(["check the engine oil level", "engine oil level check", "refund policy for delays"])
    assert np.allclose(np.linalg.norm([a, b, c], axis=1), 1.0, atol=1e-4)
    assert a @ b > a @ c


def test_token_count_is_not_capped_at_the_model_window() -> None:
    embedder = LocalEmbedder()
    long_text = " ".join(["propeller"] * 2000)
    assert embedder.count_tokens(long_text) >= 2000


def test_chunks_fit_the_model_window_with_the_real_tokenizer() -> None:
    embedder = LocalEmbedder()
    text = "\n\n".join(" ".join(f"word{i}x{j}" for j in range(300)) + "." for i in range(5))
    chunks = chunk_document(
        parse_document("long.txt", text.encode()), max_tokens=200, count_tokens=embedder.count_tokens
    )
    assert len(chunks) > 5
    assert all(embedder.count_tokens(c.text) <= 200 for c in chunks)
    embedder.embed([c.text for c in chunks])  # no chunk is longer than the model accepts


def test_openai_compatible_embeddings_endpoint_gives_the_same_vectors() -> None:
    """EndpointEmbedder against a real HTTP /v1/embeddings server on loopback (serving MiniLM)."""
    from fastapi import FastAPI

    from flywheel.config import EmbedderSettings
    from flywheel.knowledge.embed import EndpointEmbedder
    from tests.unit.serve_helpers import serving

    local = LocalEmbedder()
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: dict) -> dict:
        vectors = local.embed(body["input"])
        return {"data": [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)][::-1]}

    with serving(app) as url:
        remote = EndpointEmbedder(EmbedderSettings(provider="openai", api_base=f"{url}/v1", batch_size=2))
        texts = ["brake wear", "oil servicing", "refund policy", "tire pressure", "propeller"]
        assert remote.dimensions == 384
        assert np.allclose(remote.embed(texts), local.embed(texts), atol=1e-5)


def test_concurrent_queries_are_encoded_together_with_the_same_vectors() -> None:
    """Queries waiting while the model is busy share one forward pass, and each gets its own rows."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    embedder = LocalEmbedder()
    queries = [f"how often is the oil filter of engine {n} inspected" for n in range(8)] + ["refund policy"]
    alone = [embedder.embed([q])[0] for q in queries]
    calls: list[int] = []
    encode = embedder.engine.encode

    def counting_encode(texts: list[str], batch_size: int) -> np.ndarray:
        calls.append(len(texts))
        return encode(texts, batch_size)

    embedder.engine.encode = counting_encode  # type: ignore[method-assign]
    with embedder._lock:  # the model is busy: every query below has to wait
        pool = ThreadPoolExecutor(len(queries))
        futures = [pool.submit(embedder.embed, [q]) for q in queries]
        while len(embedder._waiting) < len(queries):
            threading.Event().wait(0.01)
    together = [f.result(timeout=60)[0] for f in futures]
    pool.shutdown()
    assert calls == [len(queries)]  # one forward pass for all nine
    assert np.allclose(together, alone, atol=1e-5)


def test_a_failed_forward_pass_reaches_every_waiting_caller() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import pytest

    embedder = LocalEmbedder()
    embedder.embed(["load the model"])

    def broken(texts: list[str], batch_size: int) -> np.ndarray:
        raise RuntimeError("out of memory")

    embedder.engine.encode = broken  # type: ignore[method-assign]
    with embedder._lock:
        pool = ThreadPoolExecutor(3)
        futures = [pool.submit(embedder.embed, [f"q{n}"]) for n in range(3)]
        while len(embedder._waiting) < 3:
            threading.Event().wait(0.01)
    for future in futures:
        with pytest.raises(RuntimeError, match="out of memory"):
            future.result(timeout=60)
    pool.shutdown()
    assert embedder._waiting == []
