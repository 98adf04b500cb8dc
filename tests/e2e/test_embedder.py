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
    chunks = chunk_document(parse_document("long.txt", text.encode()), max_tokens=200,
                            count_tokens=embedder.count_tokens)
    assert len(chunks) > 5
    assert all(embedder.count_tokens(c.text) <= 200 for c in chunks)
    embedder.embed([c.text for c in chunks])  # no chunk is longer than the model accepts
