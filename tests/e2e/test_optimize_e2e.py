"""Optimization end to end with the real embedded LM: ACL-safe demos over the sample knowledge base
(checked on the LM's actual requests), and `flywheel optimize` on the airline feedback data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest
import yaml

from flywheel.config import load_settings
from flywheel.evaluate.catalog import optimizer_metric
from flywheel.optimize.compile import compile_program
from flywheel.programs.rag import SOURCE_FIELD, RAGChatbot, knowledge_readable, knowledge_retriever
from tests.conftest import REPO, shared_data

CANARIES = yaml.safe_load((REPO / "samples" / "canaries.yaml").read_text(encoding="utf-8"))


def accept_all(example, prediction, trace=None):  # ACL is under test here, not answer quality
    return True


def requests_since(lm: dspy.LM, start: int) -> str:
    return json.dumps([entry.get("messages") for entry in lm.history[start:]])


def test_optimized_rag_never_shows_canary_demos_to_outsiders(embedded_lm, sample_knowledge) -> None:
    kb = sample_knowledge
    canary = next(c for c in CANARIES if c["groups"] == ["mechanics"])
    insider, outsider = kb.principal("alice"), kb.principal("frank")
    assert not outsider.can_read(canary["groups"]) and insider.can_read(canary["groups"])
    trainset = [
        dspy.Example(question=canary["paraphrases"][0], principal=insider).with_inputs("question", "principal"),
        dspy.Example(question="How many aircraft does Skylark operate?", principal=outsider).with_inputs(
            "question", "principal"
        ),
    ]
    program = RAGChatbot(knowledge_retriever(kb), k=3, readable=knowledge_readable(kb))
    with dspy.context(lm=embedded_lm, adapter=dspy.JSONAdapter()):
        compiled = compile_program(
            program, trainset, optimizer="bootstrap", metric=optimizer_metric(accept_all), threads=1
        ).program
        demos = compiled.answer_predictor(yes_no=False).demos
        assert len(demos) == 2 and all(d.get(SOURCE_FIELD) for d in demos)
        assert any(canary["token"] in str(d["passages"]) for d in demos), "the insider's demo embeds the canary"

        start = len(embedded_lm.history)
        compiled(question="What does Skylark's baggage policy say about checked bags?", principal=outsider)
        seen_by_outsider = requests_since(embedded_lm, start)
        start = len(embedded_lm.history)
        compiled(question="What does Skylark's baggage policy say about checked bags?", principal=insider)
        seen_by_insider = requests_since(embedded_lm, start)
    assert canary["token"] not in seen_by_outsider
    assert trainset[1].question in seen_by_outsider  # the public demo still helps the outsider
    assert canary["token"] in seen_by_insider and trainset[0].question in seen_by_insider


def test_flywheel_optimize_classifier_registers_a_gated_version(tmp_path: Path) -> None:
    data = shared_data("airline_feedback")
    env = {**os.environ, "FLYWHEEL_HOME": str(tmp_path / "home")}
    command = [
        sys.executable,
        "-m",
        "flywheel",
        "optimize",
        "classifier",
        "--train",
        str(data / "train.csv"),
        "--dev",
        str(data / "dev.csv"),
        "--train-limit",
        "8",
        "--dev-limit",
        "12",
        "--max-lm-calls",
        "40",
        "--optimizer",
        "bootstrap",
    ]  # the classifier's default is now `auto` (tests/e2e/test_classifier_*)
    run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "held-out dev.csv (12 examples)" in run.stdout

    from flywheel.registry.programs import ProgramRegistry

    registry = ProgramRegistry(load_settings(home=tmp_path / "home"))
    versions = registry.versions("classifier")
    assert [v.version for v in versions] == [2, 1]
    candidate = versions[0]
    assert candidate.params["optimizer"] == "bootstrap" and int(candidate.params["compile_lm_calls"]) <= 40
    assert {"accuracy", "macro_f1"} <= set(candidate.metrics)
    assert registry.get("classifier").version in {1, 2}  # the gate decided, either way
    if registry.get("classifier").version == 1:
        assert candidate.status == "candidate" and "does not beat" in candidate.params["gate"]
    # the registered version loads as an MLflow pyfunc model
    state = registry.load_state("classifier", candidate.version)
    assert state is not None and state[1]["classify"]["demos"] is not None


@pytest.fixture(autouse=True)
def _no_stray_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
