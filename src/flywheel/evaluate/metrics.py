"""Metrics as plain functions: retrieval, answers, classification, and weighted composites.

Every per-example metric has the DSPy optimizer signature ``metric(example, prediction, trace=None)
-> float`` so the same function scores an evaluation run and drives ``BootstrapFewShot``/MIPROv2.
Inputs are read defensively: a missing gold field makes a metric *not applicable* (``None``), which
the runner leaves out of that metric's mean instead of counting it as a zero.

Corpus-level classification metrics (accuracy, macro-F1, per-class scores, confusion matrix) are
computed over all predictions by :func:`score_labels`, the project's one definition (batch reports,
evaluation runs and benchmarks all call it); their per-example form (``label_match``) is what DSPy
optimizers use.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flywheel.errors import ConfigError, InvalidInputError

Metric = Callable[..., float | None]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", str(text).lower().translate(_PUNCT))
    return " ".join(text.split())


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    try:
        value = obj[name] if hasattr(obj, "keys") and name in obj else getattr(obj, name, default)
    except (KeyError, AttributeError):
        return default
    return default if value is None else value


def gold_answers(example: Any) -> list[str]:
    """The row's gold answers (``answer``: one string or a list), stripped, empty ones dropped."""
    gold = _field(example, "answer")
    if gold is None:
        return []
    values = gold if isinstance(gold, list | tuple) else [gold]
    return [str(g).strip() for g in values if g is not None and str(g).strip()]


# --- answers -----------------------------------------------------------------------------------
# A row marked ``unanswerable`` (the documents do not hold its answer) scores as SQuAD 2.0 does: 1.0 when
# the program refused (``found`` is false), 0.0 when it answered anyway.


def _unanswerable(example: Any) -> bool:
    return bool(_field(example, "unanswerable", False))


def _refused(prediction: Any) -> bool:
    return _field(prediction, "found", True) is False


def exact_match(example: Any, prediction: Any, trace: Any = None) -> float | None:
    """1.0 if the normalised answer equals a normalised gold answer."""
    if _unanswerable(example):
        return float(_refused(prediction))
    golds = gold_answers(example)
    if not golds:
        return None
    answer = normalize_answer(_field(prediction, "answer", ""))
    return float(any(answer == normalize_answer(g) for g in golds))


def _f1(predicted: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(predicted).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(example: Any, prediction: Any, trace: Any = None) -> float | None:
    """SQuAD token F1 against the best-matching gold answer."""
    if _unanswerable(example):
        return float(_refused(prediction))
    golds = gold_answers(example)
    if not golds:
        return None
    answer = str(_field(prediction, "answer", ""))
    return max(_f1(answer, g) for g in golds)


def answer_contains(example: Any, prediction: Any, trace: Any = None) -> float | None:
    """1.0 if the normalised gold answer appears, as whole tokens, inside the normalised answer (short gold
    facts): gold "no" is not found in "I could not find…"."""
    if _unanswerable(example):
        return float(_refused(prediction))
    golds = gold_answers(example)
    if not golds:
        return None
    answer = f" {normalize_answer(_field(prediction, 'answer', ''))} "
    return float(any(normalize_answer(g) and f" {normalize_answer(g)} " in answer for g in golds))


def refusal_accuracy(example: Any, prediction: Any, trace: Any = None) -> float | None:
    """1.0 when the program refused an ``unanswerable`` row or answered a row with a gold answer or gold
    documents; None for rows that say neither."""
    if _unanswerable(example):
        return float(_refused(prediction))
    if gold_answers(example) or _field(example, "gold_doc_ids") or _field(example, "gold_chunk_ids"):
        return float(not _refused(prediction))
    return None


def tool_choice(example: Any, prediction: Any, trace: Any = None) -> float | None:
    """Agents: 1.0 if the first tool the program called is the row's expected ``tool`` ("finish" when
    it called none)."""
    gold = _field(example, "tool")
    if not gold:
        return None
    steps = _field(prediction, "steps", []) or []
    first = _field(steps[0], "tool", "") if steps else "finish"
    return float(str(first) == str(gold))


# --- retrieval ---------------------------------------------------------------------------------


def _gold_ids(example: Any, prediction: Any = None) -> tuple[str, set[str]] | None:
    """Which id field to compare (chunk ids take precedence over document ids) and the gold set; None when
    not applicable: no gold ids, or a program that retrieves no passages at all (an agent's tool steps)."""
    if prediction is not None and _field(prediction, "passages") is None:
        return None
    for key, passage_key in (("gold_chunk_ids", "chunk_id"), ("gold_doc_ids", "doc_id")):
        gold = _field(example, key)
        if gold:
            return passage_key, {str(g) for g in (gold if isinstance(gold, list | tuple | set) else [gold])}
    return None


def _ranked_ids(prediction: Any, key: str) -> list[str]:
    ranked: list[str] = []
    for passage in _field(prediction, "passages", []) or []:
        value = _field(passage, key)
        if value is not None and str(value) not in ranked:
            ranked.append(str(value))
    return ranked


def recall_at_k(k: int = 5) -> Metric:
    """Share of gold ids among the first k retrieved (unique) ids."""

    def recall(example: Any, prediction: Any, trace: Any = None) -> float | None:
        gold = _gold_ids(example, prediction)
        if gold is None:
            return None
        key, ids = gold
        return len(ids & set(_ranked_ids(prediction, key)[:k])) / len(ids)

    recall.__name__ = f"recall@{k}"
    return recall


def mrr(example: Any, prediction: Any, trace: Any = None) -> float | None:
    """Reciprocal rank of the first gold id among the retrieved ids."""
    gold = _gold_ids(example, prediction)
    if gold is None:
        return None
    key, ids = gold
    for rank, value in enumerate(_ranked_ids(prediction, key), 1):
        if value in ids:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(k: int = 5) -> Metric:
    """Binary-relevance nDCG over the first k retrieved ids."""

    def ndcg(example: Any, prediction: Any, trace: Any = None) -> float | None:
        gold = _gold_ids(example, prediction)
        if gold is None:
            return None
        key, ids = gold
        dcg = sum(1.0 / math.log2(rank + 1) for rank, v in enumerate(_ranked_ids(prediction, key)[:k], 1) if v in ids)
        ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(ids), k) + 1))
        return dcg / ideal if ideal else 0.0

    ndcg.__name__ = f"ndcg@{k}"
    return ndcg


# --- classification ----------------------------------------------------------------------------


def label_match(*fields: str) -> Metric:
    """Per-example classification score: the share of the named label fields predicted exactly.

    A gold field that is empty (e.g. no complaint reason on positive feedback) is skipped.
    """

    def match(example: Any, prediction: Any, trace: Any = None) -> float | None:
        scores = []
        for name in fields:
            gold = _field(example, name)
            if gold is None or gold == "":
                continue
            scores.append(float(str(_field(prediction, name, "")).strip().lower() == str(gold).strip().lower()))
        return sum(scores) / len(scores) if scores else None

    match.__name__ = "match_" + "_".join(fields)
    return match


MISSING_PREDICTION = "(failed)"
"""The confusion-matrix column of rows without a prediction (a failed row, or no label predicted)."""


@dataclass
class ClassScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass
class Scores:
    """Predictions against gold labels: the project's one definition of accuracy and macro-F1."""

    accuracy: float
    macro_f1: float
    rows: int
    failed: int
    classes: list[ClassScore]
    matrix: list[list[int]]  # rows: gold labels (``labels``); columns: ``columns`` (labels, then MISSING_PREDICTION)
    labels: list[str]
    columns: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        return {
            c.label: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
            for c in self.classes
        }


def _label(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def score_labels(gold: Sequence[Any], predicted: Sequence[Any]) -> Scores:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix.

    The one definition used everywhere (evaluation runs, batch reports, optimizers, benchmarks):

    - pairs without a gold label are left out; a missing prediction (None, "", a failed row) counts
      as wrong and appears in the matrix as the ``(failed)`` column;
    - macro-F1 is the unweighted mean of the per-class F1 over every label that occurs as gold *or*
      as a prediction (scikit-learn's ``f1_score(average="macro")`` over the union of labels): a
      program that invents a label it never gets right is charged for it.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    pairs = [
        (g, _label(p) or MISSING_PREDICTION)
        for g, p in ((_label(g), p) for g, p in zip(gold, predicted, strict=True))
        if g is not None
    ]
    if not pairs:
        raise InvalidInputError(
            "No row has a gold label to score against.",
            hint="Check the label column: it must name a column with the true labels.",
        )
    labels = sorted({g for g, _ in pairs} | {p for _, p in pairs if p != MISSING_PREDICTION})
    failed = sum(p == MISSING_PREDICTION for _, p in pairs)
    columns = [*labels, MISSING_PREDICTION] if failed else list(labels)
    counts = Counter(pairs)
    matrix = [[counts[(g, p)] for p in columns] for g in labels]
    classes = []
    for label in labels:
        tp = counts[(label, label)]
        support = sum(counts[(label, p)] for p in columns)
        predicted_n = sum(counts[(g, label)] for g in labels)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        classes.append(ClassScore(label, precision, recall, f1, support, predicted_n))
    accuracy = sum(g == p for g, p in pairs) / len(pairs)
    macro = sum(c.f1 for c in classes) / len(classes)
    return Scores(accuracy, macro, len(pairs), failed, classes, matrix, labels, columns)


def classification_report(gold: Sequence[Any], predicted: Sequence[Any]) -> dict[str, Any]:
    """:func:`score_labels` as a dict: accuracy, macro_f1, per_class, n, and the confusion matrix."""
    scores = score_labels(gold, predicted)
    return {
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
        "per_class": scores.per_class,
        "n": scores.rows,
        "labels": scores.labels,
        "columns": scores.columns,
        "matrix": scores.matrix,
    }


# --- composites --------------------------------------------------------------------------------


def composite(weights: Mapping[str, float], metrics: Mapping[str, Metric]) -> Metric:
    """A weighted mean of named metrics; weights of metrics that are not applicable are renormalised."""
    unknown = [name for name in weights if name not in metrics]
    if unknown:
        raise ConfigError(
            f"Composite metric uses unknown metric(s): {', '.join(unknown)}.",
            hint=f"Known metrics: {', '.join(sorted(metrics))}.",
        )
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ConfigError(
            "Composite metric weights must be non-negative and not all zero.",
            hint="Example: optimize.composites.rag_quality = {answer_f1 = 0.6, recall = 0.4}",
        )

    def score(example: Any, prediction: Any, trace: Any = None) -> float | None:
        total = weight_sum = 0.0
        for name, weight in weights.items():
            value = metrics[name](example, prediction, trace)
            if value is not None:
                total += weight * float(value)
                weight_sum += weight
        return total / weight_sum if weight_sum else None

    return score


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the applicable values (None when there are none)."""
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None
