from __future__ import annotations

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.errors import ConfigError
from flywheel.evaluate.catalog import metric_catalog, optimizer_metric, resolve_metrics
from flywheel.evaluate.metrics import (
    answer_contains,
    classification_report,
    composite,
    exact_match,
    label_match,
    mrr,
    ndcg_at_k,
    normalize_answer,
    recall_at_k,
    refusal_accuracy,
    token_f1,
)


def ex(**kw):
    return dspy.Example(**kw)


def pred(**kw):
    return dspy.Prediction(**kw)


def passages(*doc_ids):
    return [{"doc_id": d, "chunk_id": f"{d}:1:{i}", "text": f"text {d}"} for i, d in enumerate(doc_ids)]


def test_answer_metrics() -> None:
    assert normalize_answer("The  Boise, Hangar!") == "boise hangar"
    gold = ex(question="q", answer="Boise Hangar 3")
    assert exact_match(gold, pred(answer="the Boise hangar 3.")) == 1.0
    assert exact_match(gold, pred(answer="Hangar 3")) == 0.0
    assert token_f1(gold, pred(answer="Hangar 3")) == pytest.approx(0.8)
    assert token_f1(gold, pred(answer="nothing here")) == 0.0
    assert answer_contains(gold, pred(answer="C-checks are done at Boise Hangar 3 by staff.")) == 1.0
    # a list of gold answers: best match counts; no gold answer: not applicable
    assert token_f1(ex(answer=["18 aircraft", "eighteen"]), pred(answer="eighteen")) == 1.0
    assert exact_match(ex(question="q"), pred(answer="x")) is None


def test_unanswerable_rows_score_refusals_as_squad2_does() -> None:
    unanswerable = ex(question="Capital of France?", unanswerable=True)
    refused = pred(answer="I could not find the answer in the documents available to you.", found=False)
    answered = pred(answer="Paris", found=True)
    for metric in (token_f1, exact_match, answer_contains, refusal_accuracy):
        assert metric(unanswerable, refused) == 1.0
        assert metric(unanswerable, answered) == 0.0
    gold = ex(question="q", answer="Boise Hangar 3")
    assert refusal_accuracy(gold, answered) == 1.0 and refusal_accuracy(gold, refused) == 0.0
    assert refusal_accuracy(ex(question="q"), answered) is None  # neither gold nor unanswerable
    assert token_f1(gold, refused) == 0.0  # refusing an answerable row is still wrong


def test_retrieval_metrics_use_chunk_ids_before_doc_ids() -> None:
    gold = ex(gold_doc_ids=["b"])
    p = pred(passages=passages("a", "b", "b", "c"))
    assert recall_at_k(1)(gold, p) == 0.0
    assert recall_at_k(2)(gold, p) == 1.0
    assert mrr(gold, p) == pytest.approx(0.5)
    assert ndcg_at_k(5)(gold, p) == pytest.approx(1 / 1.5849625, rel=1e-5)
    assert recall_at_k(5)(ex(gold_doc_ids=["a", "z"]), p) == 0.5
    chunk_gold = ex(gold_chunk_ids=["c:1:3"], gold_doc_ids=["a"])
    assert recall_at_k(5)(chunk_gold, p) == 1.0 and mrr(chunk_gold, p) == 0.25
    assert recall_at_k(5)(ex(answer="x"), p) is None
    assert mrr(gold, pred(passages=[])) == 0.0


def test_classification_metrics() -> None:
    report = classification_report(["neg", "neg", "pos", "neu"], ["neg", "pos", "pos", "neu"])
    assert report["accuracy"] == 0.75
    assert report["per_class"]["neg"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert report["per_class"]["pos"]["precision"] == 0.5
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    match = label_match("sentiment", "reason")
    assert match(ex(sentiment="negative", reason="Late Flight"), pred(sentiment="negative", reason="Bad Flight")) == 0.5
    assert match(ex(sentiment="positive", reason=None), pred(sentiment="positive", reason=None)) == 1.0
    assert label_match("reason")(ex(sentiment="positive", reason=""), pred(reason=None)) is None


def test_composite_renormalises_missing_metrics_and_validates_weights() -> None:
    catalog = metric_catalog("qa")
    score = composite({"answer_f1": 0.5, "recall": 0.5}, catalog)
    gold = ex(answer="Boise Hangar 3", gold_doc_ids=["a"])
    assert score(gold, pred(answer="Boise Hangar 3", passages=passages("x"))) == 0.5
    # recall not applicable (no gold ids): the F1 alone
    assert score(ex(answer="Boise Hangar 3"), pred(answer="Boise Hangar 3", passages=[])) == 1.0
    with pytest.raises(ConfigError, match="unknown metric"):
        composite({"bleu": 1.0}, catalog)
    with pytest.raises(ConfigError, match="non-negative"):
        composite({"answer_f1": -1.0}, catalog)
    with pytest.raises(ConfigError, match="Unknown metric"):
        resolve_metrics(["nope"], "qa", composites={})


def test_optimizer_metric_thresholds_only_while_bootstrapping() -> None:
    metric = optimizer_metric(token_f1, threshold=0.5)
    gold = ex(answer="Boise Hangar 3")
    assert metric(gold, pred(answer="Hangar 3")) == pytest.approx(0.8)
    assert metric(gold, pred(answer="Hangar 3"), trace=[]) is True
    assert metric(gold, pred(answer="no"), trace=[]) is False
    assert metric(ex(question="q"), pred(answer="x")) == 0.0  # not applicable → 0, never None


def test_judges_run_on_the_judge_lm_not_the_task_lm() -> None:
    task_lm = DummyLM([], adapter=dspy.JSONAdapter())
    judge_lm = DummyLM(
        [{"verdict": "partially"}, {"verdict": "unsafe"}, {"verdict": "relevant"}], adapter=dspy.JSONAdapter()
    )
    catalog = metric_catalog("qa", judge_lm=judge_lm)
    p = pred(answer="Check oil within 30 minutes.", passages=passages("a"))
    with dspy.context(lm=task_lm, adapter=dspy.JSONAdapter()):
        assert catalog["faithfulness"](ex(question="When?"), p) == 0.5
        assert catalog["safety"](ex(question="When?"), p) == 0.0
        assert catalog["relevance"](ex(question="When?"), p) == 1.0
        # an honest refusal with nothing retrieved is faithful, without a judge call
        from flywheel.programs.rag import NOT_FOUND

        assert catalog["faithfulness"](ex(question="When?"), pred(answer=NOT_FOUND, passages=[])) == 1.0
    assert task_lm.history == [] and len(judge_lm.history) == 3
    assert "Check oil within 30 minutes." in str(judge_lm.history[0]["messages"])


def test_semantic_f1_uses_dspy_semantic_f1() -> None:
    judge_lm = DummyLM([{"reasoning": "r", "recall": 1.0, "precision": 0.5}], adapter=dspy.JSONAdapter())
    metric = metric_catalog("qa", judge_lm=judge_lm)["semantic_f1"]
    with dspy.context(adapter=dspy.JSONAdapter()):
        value = metric(ex(question="q", answer="Boise Hangar 3"), pred(answer="Boise"))
    assert value == pytest.approx(2 * 0.5 / 1.5)


def test_answer_contains_matches_whole_tokens_only() -> None:
    assert answer_contains({"answer": "no"}, {"answer": "I could not find the answer."}) == 0.0
    assert answer_contains({"answer": "no"}, {"answer": "No, it is not."}) == 1.0
    assert answer_contains({"answer": "92 Nm"}, {"answer": "Standard bolts: 92 Nm."}) == 1.0
    assert answer_contains({"answer": "2 Nm"}, {"answer": "Standard bolts: 92 Nm."}) == 0.0


def test_retrieval_metrics_do_not_apply_to_programs_without_passages() -> None:
    from flywheel.evaluate.metrics import mrr, ndcg_at_k, recall_at_k

    gold = {"gold_doc_ids": ["d1"]}
    agent_reply = {"answer": "x", "steps": [{"tool": "maintenance_records"}]}  # an agent retrieves no passages
    assert recall_at_k(5)(gold, agent_reply) is None and mrr(gold, agent_reply) is None
    assert ndcg_at_k(5)(gold, agent_reply) is None
    assert recall_at_k(5)(gold, {"answer": "", "passages": []}) == 0.0  # retrieved nothing: a real zero
