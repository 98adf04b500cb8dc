"""Metrics by name, per program kind, including LLM judges and config-declared composites.

``metric_catalog("qa", judge_lm=...)`` is what ``flywheel eval --metric`` and ``flywheel optimize
--metric`` choose from. Judge metrics run on the judge LM (``dspy.context(lm=judge_lm)``), which
may differ from the task LM; without one they use whatever LM is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import dspy

from flywheel.errors import ConfigError
from flywheel.evaluate.metrics import (
    Metric,
    _field,
    answer_contains,
    composite,
    exact_match,
    label_match,
    mrr,
    ndcg_at_k,
    recall_at_k,
    refusal_accuracy,
    token_f1,
    tool_choice,
)
from flywheel.programs import judges
from flywheel.programs.rag import NOT_FOUND

# Metrics whose value needs an LM call; evaluation only runs them when asked.
JUDGE_METRICS = frozenset({"faithfulness", "relevance", "safety", "semantic_f1"})
# Corpus-level metrics computed by the runner from all predictions (classifier kind).
CORPUS_METRICS = frozenset({"macro_f1", "reason_macro_f1"})
DEFAULT_METRICS = {
    "qa": ["answer_f1", "exact_match", "answer_contains", "refusal_accuracy", "recall", "mrr", "ndcg", "tool_choice"],
    "classifier": ["accuracy", "reason_accuracy", "macro_f1"],
}
# macro-F1 for the classifier: with a 65/21/14 label prior, accuracy rewards answering "negative" every time.
DEFAULT_OBJECTIVE = {"qa": "rag_quality", "classifier": "macro_f1"}


def _passages_text(prediction: Any) -> str:
    passages = _field(prediction, "passages", []) or []
    return "\n\n".join(f"[{i}] {_field(p, 'text', '')}" for i, p in enumerate(passages, 1))


def _judged(judge_factory: Any, judge_lm: Any, needs_passages: bool = False) -> Metric:
    def score(example: Any, prediction: Any, trace: Any = None) -> float | None:
        answer = str(_field(prediction, "answer", "") or "")
        if not answer.strip():
            return 0.0
        inputs = {"question": str(_field(example, "question", "")), "answer": answer}
        if needs_passages:
            passages = _passages_text(prediction)
            if not passages:
                # No passages: only an honest refusal is faithful.
                return 1.0 if answer == NOT_FOUND else 0.0
            inputs["passages"] = passages
        with dspy.context(lm=judge_lm) if judge_lm is not None else nullcontext():
            return float(judge_factory()(**inputs).score)

    return score


def _semantic_f1(judge_lm: Any) -> Metric:
    def score(example: Any, prediction: Any, trace: Any = None) -> float | None:
        gold = _field(example, "answer")
        if gold is None or gold == "":
            return None
        # Lazy (start-up time): only this path needs DSPy.
        from dspy.evaluate import SemanticF1

        reference = dspy.Example(question=str(_field(example, "question", "")), response=str(gold))
        response = dspy.Prediction(response=str(_field(prediction, "answer", "")))
        with dspy.context(lm=judge_lm) if judge_lm is not None else nullcontext():
            return float(SemanticF1()(reference, response))

    return score


def metric_catalog(kind: str, *, judge_lm: Any = None, k: int = 5) -> dict[str, Metric]:
    """Per-example metrics available for a program kind (``qa`` or ``classifier``)."""
    if kind == "classifier":
        return {
            "accuracy": label_match("sentiment"),
            "reason_accuracy": label_match("reason"),
            "label_accuracy": label_match("sentiment", "reason"),
        }

    return {
        "exact_match": exact_match,
        "answer_f1": token_f1,
        "answer_contains": answer_contains,
        "refusal_accuracy": refusal_accuracy,
        "tool_choice": tool_choice,
        "recall": recall_at_k(k),
        "mrr": mrr,
        "ndcg": ndcg_at_k(k),
        "semantic_f1": _semantic_f1(judge_lm),
        "faithfulness": _judged(judges.faithfulness_judge, judge_lm, needs_passages=True),
        "relevance": _judged(judges.relevance_judge, judge_lm),
        "safety": _judged(judges.safety_judge, judge_lm),
    }


def resolve_metrics(
    names: list[str], kind: str, *, composites: Mapping[str, Mapping[str, float]], judge_lm: Any = None, k: int = 5
) -> dict[str, Metric]:
    """Named per-example metrics (composites from config included); corpus metrics are skipped here."""
    catalog = metric_catalog(kind, judge_lm=judge_lm, k=k)
    resolved: dict[str, Metric] = {}
    for name in names:
        if name in CORPUS_METRICS and kind == "classifier":
            continue
        if name in catalog:
            resolved[name] = catalog[name]
        elif name in composites:
            resolved[name] = composite(composites[name], catalog)
        else:
            known = sorted({*catalog, *composites, *(CORPUS_METRICS if kind == "classifier" else ())})
            raise ConfigError(f"Unknown metric {name!r} for {kind} programs.", hint=f"Choose from: {', '.join(known)}.")
    return resolved


def optimizer_metric(metric: Metric, threshold: float | None = None) -> Any:
    """Adapt a metric for DSPy optimizers: a float score, or pass/fail against ``threshold``
    while bootstrapping (``trace`` is set), and never None."""

    def score(example: Any, prediction: Any, trace: Any = None, *_: Any) -> float | bool:
        value = metric(example, prediction, trace)
        value = 0.0 if value is None else float(value)
        if trace is not None and threshold is not None:
            return value >= threshold
        return value

    score.__name__ = getattr(metric, "__name__", "metric")
    return score
