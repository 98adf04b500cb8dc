"""The distilled classifier head: training, JSON state (no pickles), cascade routing, the auto search."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dspy
import pandas as pd
import pytest
from dspy.utils import DummyLM

from flywheel.errors import InvalidInputError
from flywheel.optimize.classifier_search import balanced_demos, choose_threshold, compile_classifier, search
from flywheel.optimize.distill import LabelledText, distill, merge_sources, stratified_split
from flywheel.programs.classify import FeedbackClassifier
from flywheel.programs.classify_head import (
    CachedEmbedder,
    ClassifierHead,
    clear_shared_embedder,
    prepare_text,
    set_shared_embedder,
)
from tests.unit.stub_embedder import KeywordEmbedder, feedback_rows


@pytest.fixture
def embedder() -> Iterator[KeywordEmbedder]:
    stub = KeywordEmbedder()
    set_shared_embedder(stub)
    yield stub
    clear_shared_embedder()


def rows(n: int = 60, source: str = "gold") -> list[LabelledText]:
    return [LabelledText(t, s, r, source) for t, s, r in feedback_rows(n)]


def trained(embedder: KeywordEmbedder, n: int = 60) -> FeedbackClassifier:
    return distill(FeedbackClassifier(), rows(n), embedder=embedder).program


def lm(answers: list[dict]) -> DummyLM:
    return DummyLM(answers, adapter=dspy.JSONAdapter())


def test_the_head_learns_sentiment_and_reason(embedder: KeywordEmbedder) -> None:
    program = trained(embedder)
    assert program.shape == "head"
    assert program(text="@Air my flight was delayed three hours").sentiment == "negative"
    assert program(text="@Air my flight was delayed three hours").reason == "Late Flight"
    assert program(text="@Air they lost my luggage").reason == "Lost Luggage"
    assert program(text="@Air love you, thanks").sentiment == "positive"
    assert program(text="@Air love you, thanks").reason is None
    assert program(text="@Air which terminal?").sentiment == "neutral"


def test_the_head_answers_without_calling_the_lm(embedder: KeywordEmbedder) -> None:
    program = trained(embedder)
    with dspy.context(lm=lm([]), adapter=dspy.JSONAdapter()):  # an LM call would fail: no answers
        results = program.classify_many(["@Air delayed again", "@Air great crew, thanks", ""])
    assert [r.get("sentiment") for r in results[:2]] == ["negative", "positive"]
    assert results[0]["routed"] == "head" and results[0]["error"] is None
    assert results[2]["error"]  # an empty text fails alone


def test_state_is_plain_json_and_round_trips(embedder: KeywordEmbedder, tmp_path: Path) -> None:
    program = trained(embedder)
    program.save(str(tmp_path / "state.json"))
    state = json.loads((tmp_path / "state.json").read_text())  # plain JSON: no pickle anywhere
    assert state["head"]["format"] == "flywheel.linear-head/1"
    assert state["head"]["embedder"] == "keyword-stub"
    loaded = FeedbackClassifier()
    loaded.load(str(tmp_path / "state.json"))
    texts = [t for t, _, _ in feedback_rows(12)] + ["@Air late and lost my bag", "@Air thanks?"]
    before, after = program.head_confidences(texts), loaded.head_confidences(texts)
    assert [(b["sentiment"], b["reason"]) for b in before] == [(a["sentiment"], a["reason"]) for a in after]
    assert [a["confidence"] for a in after] == pytest.approx([b["confidence"] for b in before], abs=1e-5)


def test_a_head_from_another_embedder_is_refused(embedder: KeywordEmbedder) -> None:
    from flywheel.errors import ConfigError

    state = trained(embedder).dump_state()
    state["head"]["embedder"] = "some-other-model"
    program = FeedbackClassifier().load_state(state)
    with pytest.raises(ConfigError, match="some-other-model"):
        program(text="@Air delayed")


def test_unknown_head_format_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="format"):
        ClassifierHead.from_state({"format": "pickle", "blob": "…"})


def test_cascade_sends_only_low_confidence_rows_to_the_lm(embedder: KeywordEmbedder) -> None:
    program = trained(embedder)
    texts = ["@Air delayed two hours, late, lost bag", "@Air the weather today"]  # the second has no keyword
    confidences = [c["confidence"] for c in program.head_confidences(texts)]
    assert confidences[0] > confidences[1]
    program.lm_below = (confidences[0] + confidences[1]) / 2
    assert program.shape == "cascade"
    answer = {"sentiment": "neutral", "reason": "Late Flight", "justification": "weather talk"}
    with dspy.context(lm=lm([answer]), adapter=dspy.JSONAdapter()):
        results = program.classify_many(texts)
    assert [r["routed"] for r in results] == ["head", "lm"]
    assert results[1]["sentiment"] == "neutral" and results[1]["reason"] is None


def test_threshold_is_the_best_within_the_lm_budget() -> None:
    gold = [LabelledText(f"t{i}", s, None) for i, s in enumerate(["negative", "positive", "neutral", "negative"])]
    head = [{"sentiment": s} for s in ["negative", "negative", "negative", "negative"]]
    lm_answers = [{"sentiment": s} for s in ["negative", "positive", "neutral", "negative"]]
    confidences = [0.9, 0.4, 0.5, 0.95]
    threshold, value, share = choose_threshold(confidences, head, lm_answers, gold, max_share=0.5)
    assert (threshold, share) == (0.9, 0.5) and value == 1.0
    threshold, _, share = choose_threshold(confidences, head, lm_answers, gold, max_share=0.25)
    assert share <= 0.25 and threshold == 0.5  # one row only: the least confident
    assert choose_threshold(confidences, head, lm_answers, gold, max_share=0.0)[0] == 0.0


def test_balanced_demos_take_every_sentiment() -> None:
    demos = balanced_demos(rows(40), ["negative", "neutral", "positive"], per_class=2)
    assert sorted(d.sentiment for d in demos) == ["negative", "negative", "neutral", "neutral", "positive", "positive"]


def test_feedback_labels_beat_gold_and_gold_beats_teacher() -> None:
    merged = merge_sources(
        [
            LabelledText("x", "negative", None, "teacher"),
            LabelledText("x", "neutral", None, "gold"),
            LabelledText("x", "positive", None, "feedback"),
            LabelledText("y", "neutral", None, "teacher"),
        ]
    )
    assert {(r.text, r.sentiment) for r in merged} == {("x", "positive"), ("y", "neutral")}


def test_stratified_split_keeps_every_class_on_both_sides() -> None:
    labels = ["a"] * 10 + ["b"] * 3 + ["c"] * 2
    fit, val = stratified_split(labels, 0.2, seed=1)
    assert sorted(fit + val) == list(range(15))
    assert {labels[i] for i in val} == {"a", "b", "c"} and {labels[i] for i in fit} == {"a", "b", "c"}


def test_distill_needs_two_sentiments(embedder: KeywordEmbedder) -> None:
    with pytest.raises(InvalidInputError, match="two sentiments"):
        distill(FeedbackClassifier(), [LabelledText("a", "negative", None)] * 3, embedder=embedder)


def test_auto_search_scores_candidates_within_the_lm_budget(embedder: KeywordEmbedder) -> None:
    always_negative = {"sentiment": "negative", "reason": "Late Flight", "justification": "bad"}
    dummy = lm([always_negative] * 200)
    with dspy.context(lm=dummy, adapter=dspy.JSONAdapter()):
        found = search(FeedbackClassifier(), rows(100), embedder=embedder, lm_rows=8, max_lm_calls=10)
    assert found.lm_calls <= 10
    assert found.winner == "distilled head"  # an LM that answers "negative" every time loses
    assert [r["candidate"] for r in found.table][:3] == ["distilled head", "LM zero-shot", "LM balanced 2-shot"]
    assert found.program.shape == "head"
    assert found.params["search_lm_calls"] == found.lm_calls


def test_auto_search_without_lm_budget_makes_no_lm_call(embedder: KeywordEmbedder) -> None:
    examples = [dspy.Example(text=t, sentiment=s, reason=r).with_inputs("text") for t, s, r in feedback_rows(60)]
    with dspy.context(lm=lm([]), adapter=dspy.JSONAdapter()):
        compiled = compile_classifier(
            FeedbackClassifier(), examples, optimizer="auto", objective="macro_f1", options={"lm_rows": 0}
        )
    assert compiled.lm_calls == 0 and compiled.optimizer == "auto:distilled head"
    assert any("no LM budget" in note for note in compiled.notes)


def test_the_embedding_cache_skips_repeated_texts() -> None:
    stub = KeywordEmbedder()
    cached = CachedEmbedder(stub, max_rows=3)
    first = cached.embed(["a late", "b love", "a late"])
    assert stub.texts == 2 and (cached.hits, cached.misses) == (1, 2)
    again = cached.embed(["b love", "a late"])
    assert stub.texts == 2 and (again == first[[1, 0]]).all()
    cached.embed(["c", "d", "e"])  # evicts the oldest
    assert len(cached._cache) == 3


def test_prepare_text_drops_links_and_the_leading_mentions() -> None:
    assert prepare_text("@united @AmericanAir: late again http://t.co/xyz") == "late again"
    assert prepare_text("@united") == "@united"  # nothing left: keep the text


def test_the_mlflow_model_classifies_a_frame_in_one_batch(embedder: KeywordEmbedder) -> None:
    from flywheel.config import load_settings
    from flywheel.registry.pyfunc import predict_frame

    program = trained(embedder)

    class Assistant:
        settings = load_settings()

        def program(self, name: str) -> FeedbackClassifier:
            return program

    frame = pd.DataFrame({"text": ["@Air delayed, late", "@Air love it, thanks", ""]})
    calls = embedder.calls
    out = predict_frame(Assistant(), frame, program="classifier", trace=False)
    assert embedder.calls == calls + 1  # one embedding pass for the whole frame
    assert out["sentiment"].tolist()[:2] == ["negative", "positive"]
    assert out["error"].isna().tolist() == [True, True, False] and "text" in out["error"].tolist()[2]
    assert list(out.columns) == ["sentiment", "reason", "justification", "trace_id", "error"]


def test_a_classifier_model_is_built_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark's local mode calls load_context once per task: the program (embedder, head, LM) is built once."""
    from types import SimpleNamespace

    from flywheel.registry import pyfunc

    FeedbackClassifier().save(str(tmp_path / "state.json"))
    context = SimpleNamespace(
        model_config={"program": "classifier", "config": {}}, artifacts={"program_state": str(tmp_path / "state.json")}
    )
    before = pyfunc.PROCESS_LOADS
    first, second = pyfunc.ProgramModel(), pyfunc.ProgramModel()
    first.load_context(context)
    second.load_context(context)
    assert before + 1 == pyfunc.PROCESS_LOADS and second.assistant is first.assistant
    monkeypatch.setenv("FLYWHEEL_LM__TEMPERATURE", "0.5")  # other settings: another program
    pyfunc.ProgramModel().load_context(context)
    assert before + 2 == pyfunc.PROCESS_LOADS


def test_search_without_a_trainable_head_picks_an_lm_program(embedder: KeywordEmbedder) -> None:
    one_class = [LabelledText(f"@Air delayed {i}", "negative", "Late Flight") for i in range(6)]
    answer = {"sentiment": "negative", "reason": "Late Flight", "justification": "late"}
    with dspy.context(lm=lm([answer] * 20), adapter=dspy.JSONAdapter()):
        found = search(FeedbackClassifier(), one_class, embedder=embedder, lm_rows=2)
    assert found.winner == "LM zero-shot" and found.program.shape == "lm"
    assert any("no head candidate" in note for note in found.notes)
    with pytest.raises(InvalidInputError, match="No classifier candidate"):
        search(FeedbackClassifier(), one_class, embedder=embedder, lm_rows=0)
