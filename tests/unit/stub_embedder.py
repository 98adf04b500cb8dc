"""A tiny deterministic embedder for unit tests of the classifier head: keyword counts, no model."""

from __future__ import annotations

import numpy as np

GROUPS = (
    ("late", "delayed", "lost", "rude", "cancelled", "worst"),
    ("love", "thanks", "great", "best"),
    ("?", "when", "which", "how"),
    ("bag", "luggage", "lost"),
    ("late", "delayed", "hours"),
)


class KeywordEmbedder:
    """Vectors of keyword-group counts plus a constant, L2-normalised; counts its calls and texts."""

    name = "keyword-stub"

    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0

    @property
    def dimensions(self) -> int:
        return len(GROUPS) + 1

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        rows = []
        for text in texts:
            lowered = text.lower()
            rows.append([sum(lowered.count(word) for word in group) for group in GROUPS] + [0.5])
        vectors = np.asarray(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def feedback_rows(n: int = 60) -> list[tuple[str, str, str | None]]:
    """(text, sentiment, reason) rows the keyword embedder separates."""
    rows = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            rows.append((f"@Air flight {i} delayed two hours, late again", "negative", "Late Flight"))
        elif kind == 1:
            rows.append((f"@Air they lost my bag {i}, luggage gone", "negative", "Lost Luggage"))
        elif kind == 2:
            rows.append((f"@Air love the crew on {i}, thanks, great", "positive", None))
        else:
            rows.append((f"@Air which gate for flight {i}? when", "neutral", None))
    return rows
