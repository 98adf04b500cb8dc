"""Yes/no decisions from the LM's token probabilities, and the threshold fitted on labelled rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.optimize import rag_calibration
from flywheel.optimize.rag_calibration import calibrate_yes_no
from flywheel.programs.choice import first_option_probability, fit_threshold, option_scorer
from flywheel.programs.rag import Passage, RAGChatbot, RAGConfig

DOC = Passage("d1:1:0", "d1", "fees.md", "A second checked bag costs 40 EUR.", relevance=0.8)
ALICE = Principal("alice", frozenset({"staff"}))


class ScoringEngine:
    """An engine that scores continuations: P(yes) per question, and records what it was shown."""

    def __init__(self, p_yes: dict[str, float]) -> None:
        self.p_yes = p_yes
        self.calls: list[tuple[list[dict[str, str]], str]] = []

    def option_logprobs(self, messages: list[dict[str, str]], prefix: str, options: Sequence[str]) -> dict[str, float]:
        self.calls.append((messages, prefix))
        question = next(q for q in self.p_yes if q in messages[-1]["content"])
        p = self.p_yes[question]
        return {options[0]: math.log(p), options[1]: math.log(1 - p)}


class ScoringLM(DummyLM):
    def __init__(self, engine: ScoringEngine) -> None:
        super().__init__([], adapter=dspy.JSONAdapter())
        self.scoring_engine = engine

    @property
    def engine(self) -> ScoringEngine:  # type: ignore[override]
        return self.scoring_engine


def program(**config: float) -> RAGChatbot:
    return RAGChatbot(lambda q, p, k: [DOC], config=RAGConfig(**config))


def test_threshold_fits_a_model_that_says_yes_to_everything() -> None:
    # A skewed model: every P(yes) above 0.5, but the "no" rows sit lower.
    probabilities = [0.97, 0.95, 0.96, 0.80, 0.78, 0.99, 0.75]
    labels = [True, True, True, False, False, True, False]
    threshold, accuracy = fit_threshold(probabilities, labels)
    assert 0.80 < threshold < 0.95 and accuracy == 1.0
    assert fit_threshold([0.9, 0.2], [True, False]) == (0.5, 1.0)  # nothing to gain: the default stays


def test_threshold_needs_one_label_per_probability() -> None:
    with pytest.raises(ValueError):
        fit_threshold([0.5], [True, False])


def test_yes_no_is_decided_by_the_threshold_on_p_yes_without_decoding() -> None:
    engine = ScoringEngine({"Is there a fee": 0.9})
    lm = ScoringLM(engine)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        default = program()(question="Is there a fee for a second bag?", principal=ALICE)
        strict = program(yes_threshold=0.95)(question="Is there a fee for a second bag?", principal=ALICE)
    assert default.answer == "Yes" and strict.answer == "No"
    assert default.yes_probability == pytest.approx(0.9)
    assert [c["chunk_id"] for c in default.citations] == ["d1:1:0"]
    assert lm.history == []  # scored, not generated
    messages, prefix = engine.calls[0]
    assert prefix == '{"answer": "' and "second checked bag costs 40 EUR" in messages[-1]["content"]


def test_without_a_scoring_engine_the_generated_answer_is_kept() -> None:
    lm = DummyLM([{"answer": "no", "citations": [1]}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert option_scorer() is None
        assert first_option_probability(program().respond_yes_no, {}, [], ("yes", "no")) is None
        result = program(yes_threshold=0.01)(question="Is there a fee for a second bag?", principal=ALICE)
    assert result.answer == "No" and result.get("yes_probability") is None


def test_calibration_fits_the_threshold_on_labelled_yes_no_rows_only() -> None:
    questions = {f"Is claim {i} true": p for i, p in enumerate([0.97, 0.96, 0.95, 0.94, 0.80, 0.79, 0.78, 0.77])}
    labels = ["yes", "yes", "yes", "yes", "no", "no", "no", "no"]
    rows = [
        dspy.Example(question=f"{q}?", answer=[a], principal=ALICE).with_inputs("question", "principal")
        for q, a in zip(questions, labels, strict=True)
    ]
    rows.append(
        dspy.Example(question="What does a bag cost?", answer=["40 EUR"], principal=ALICE).with_inputs(
            "question", "principal"
        )
    )
    engine = ScoringEngine(questions)
    with dspy.context(lm=ScoringLM(engine), adapter=dspy.JSONAdapter()):
        calibration = calibrate_yes_no(program(), rows)
    assert calibration is not None and calibration.rows == 8
    assert calibration.accuracy_before == 0.5 and calibration.accuracy_after == 1.0
    assert 0.80 < calibration.threshold < 0.94
    assert len(engine.calls) == 8  # the short-answer row cost nothing


def test_calibration_stops_starting_rows_when_its_time_share_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    questions = {f"Is claim {i} true": p for i, p in enumerate([0.97, 0.80, 0.96, 0.79])}
    rows = [
        dspy.Example(question=f"{q}?", answer=[a], principal=ALICE).with_inputs("question", "principal")
        for q, a in zip(questions, ["yes", "no", "yes", "no"], strict=True)
    ]
    ticks = iter(range(0, 1000, 10))  # every reading of the clock is 10 s later
    monkeypatch.setattr(rag_calibration, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    engine = ScoringEngine(questions)
    with dspy.context(lm=ScoringLM(engine), adapter=dspy.JSONAdapter()):
        calibration = calibrate_yes_no(program(), rows, min_rows=2, max_seconds=25)
    assert calibration is not None and calibration.rows == 2  # rows started at 10 s and 20 s; not at 30 s
    assert len(engine.calls) == 2


def test_no_calibration_without_a_scoring_engine() -> None:
    rows = [
        dspy.Example(question=f"Is claim {i} true?", answer=["yes"], principal=ALICE).with_inputs(
            "question", "principal"
        )
        for i in range(10)
    ]
    lm = DummyLM([{"answer": "yes", "citations": [1]}] * 10, adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert calibrate_yes_no(program(), rows) is None
