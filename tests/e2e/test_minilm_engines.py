"""The embedder's two engines (ONNX Runtime, torch) on the packaged MiniLM weights: same tokens, same
vectors, one export shared by concurrent loaders, and a service path that never imports torch."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from flywheel.config import EmbedderSettings
from flywheel.knowledge import minilm
from flywheel.knowledge.embed import LocalEmbedder, build_embedder, packaged_embedder_dir

TEXTS = [
    "check the engine oil level",
    "x",
    "",
    "Turbine blade inspection: borescope every 500 hours, or after a bird strike (see 4-12).",
    "エンジンオイルの点検 — Öl prüfen, vérifier l'huile",
    " ".join(["propeller"] * 600),  # past the 256-token window: truncated by both engines
]


def test_the_tokenizer_gives_sentence_transformers_ids_truncated_and_padded() -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(packaged_embedder_dir()), device="cpu")
    theirs = model.tokenizer(TEXTS, padding=True, truncation=True, max_length=model.max_seq_length)
    ours = minilm.load_tokenizer(packaged_embedder_dir()).encode_batch(TEXTS)
    assert [e.ids for e in ours] == theirs["input_ids"]
    assert [e.attention_mask for e in ours] == theirs["attention_mask"]
    assert minilm.max_tokens(packaged_embedder_dir()) == model.max_seq_length == 256


def test_onnx_and_torch_engines_give_the_same_vectors_in_the_callers_order() -> None:
    onnx = LocalEmbedder(batch_size=4)  # two batches: order is restored across them
    torch = LocalEmbedder(batch_size=4, runtime="torch")
    assert onnx.engine.runtime == "onnx" and torch.engine.runtime == "torch"
    a, b = onnx.embed(TEXTS), torch.embed(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == np.float32
    assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    assert onnx.embed([]).shape == (0, 384)


def test_settings_choose_the_engine() -> None:
    embedder = build_embedder(EmbedderSettings(runtime="torch"))
    assert isinstance(embedder, LocalEmbedder) and embedder.engine.runtime == "torch"


def test_concurrent_loaders_export_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Server processes started together find the graph missing at once: the file lock makes one
    export and the others wait for it (threads take the lock like processes: one open file each)."""
    traced: list[Path] = []
    real = minilm._trace_to_onnx

    def counting(model_dir: Path, path: Path) -> None:
        traced.append(path)
        real(model_dir, path)

    monkeypatch.setattr(minilm, "_trace_to_onnx", counting)
    target = minilm.export_path(packaged_embedder_dir(), tmp_path)
    threads = [threading.Thread(target=minilm.export_onnx, args=(packaged_embedder_dir(), target)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(traced) == 1 and target.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".onnx"] == [target.name]  # no partial files left
    engine = minilm.OnnxMiniLM(packaged_embedder_dir(), threads=1, cache_dir=tmp_path)
    assert engine.path == target and len(traced) == 1


def test_without_onnx_runtime_the_torch_engine_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as when it is not installed
    with caplog.at_level(logging.WARNING, logger="flywheel.knowledge.minilm"):
        engine = minilm.load_engine(packaged_embedder_dir(), "onnx", threads=1)
    assert engine.runtime == "torch"
    assert "using torch" in caplog.text


def test_searching_with_the_onnx_engine_never_imports_torch() -> None:
    """Importing torch took seconds of a service's start-up (time to deploy); with the graph
    exported, embedding a query needs only ONNX Runtime and the tokenizer."""
    minilm.prepare()
    code = (
        "import sys\n"
        "from flywheel.knowledge.embed import LocalEmbedder\n"
        "LocalEmbedder().embed(['how often is the oil filter inspected'])\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_onnx_runs_with_the_threads_the_budget_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like torch's threads, ONNX Runtime's follow the budget at each run: one while an embedded LM
    context holds the other core, all of them once it is freed (the same vectors either way)."""
    engine = minilm.OnnxMiniLM(packaged_embedder_dir())
    budget = {"threads": 2}
    monkeypatch.setattr(minilm, "torch_threads", lambda: budget["threads"])
    wide = engine.encode(TEXTS, 4)
    budget["threads"] = 1
    narrow = engine.encode(TEXTS, 4)
    assert {1, 2} <= set(engine._sessions)
    assert engine._sessions[1].get_session_options().intra_op_num_threads == 1
    assert np.allclose(wide, narrow, atol=1e-6)
