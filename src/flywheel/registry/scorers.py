"""Flywheel's LLM judges as MLflow GenAI scorers, run on the configured judge LM (never a hosted default).

``judge_scorers(settings)`` returns ``faithfulness``, ``relevance`` and ``safety`` (and
``semantic_f1`` on request) as ``mlflow.genai`` scorers over the same judge code as ``flywheel eval``
(:func:`flywheel.evaluate.catalog.metric_catalog`), on ``[judge_lm]`` when configured, else ``[lm]``::

    mlflow.genai.evaluate(data=rows_or_traces, scorers=judge_scorers(settings))

A row's ``inputs`` is the question (or ``{"question": …}``), its ``outputs`` the answer (or
``{"answer": …, "passages": [text or {"text": …}, …]}``). For a served request's trace the passages
come from the trace itself (the span of the program's answer step), so faithfulness is judged
against what the program actually read. Faithfulness without any passages is an error, not a score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flywheel.config import Settings
from flywheel.errors import ConfigError
from flywheel.lm import build_lm

JUDGES = ("faithfulness", "relevance", "safety")


def judge_scorers(settings: Settings, *, judge_lm: Any = None, names: Sequence[str] = JUDGES) -> list[Any]:
    """MLflow scorers for the named Flywheel judges, bound to ``judge_lm`` (default: the configured judge LM)."""
    # Lazy (start-up time): only this path needs DSPy.
    from flywheel.evaluate.catalog import metric_catalog

    if judge_lm is None:
        judge_lm = build_lm(settings.judge_lm or settings.lm)
    catalog = metric_catalog("qa", judge_lm=judge_lm)
    unknown = [n for n in names if n not in (*JUDGES, "semantic_f1")]
    if unknown:
        raise ConfigError(f"Unknown judge(s): {', '.join(unknown)}.", hint=f"Use {', '.join(JUDGES)} or semantic_f1.")
    model = str(getattr(judge_lm, "model", "judge"))
    return [_scorer(name, catalog[name], model) for name in names]


def _scorer(name: str, metric: Any, model: str) -> Any:
    # Lazy (start-up time): only this path needs DSPy.
    import dspy
    from mlflow.entities import AssessmentSource, AssessmentSourceType, Feedback
    from mlflow.genai.scorers import scorer

    source = AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id=model)

    def judge(inputs: Any = None, outputs: Any = None, expectations: Any = None, trace: Any = None) -> Feedback:
        question = _text(inputs, "question", "request", "input")
        answer = _text(outputs, "answer", "response", "output")
        passages = _passages(outputs) or _passages(inputs) or _passages_from_trace(trace)
        if name == "faithfulness" and not passages:
            return Feedback(
                name=name,
                error="No passages to judge faithfulness against: put them in "
                "outputs['passages'] or evaluate a Flywheel trace.",
                source=source,
            )
        example = dspy.Example(question=question, answer=_text(expectations, "expected_response", "answer"))
        with dspy.context(adapter=dspy.JSONAdapter()):  # grammar-constrained verdicts on the embedded LM
            value = metric(example, {"answer": answer, "passages": passages})
        return Feedback(name=name, value=value, source=source)

    judge.__name__ = name
    return scorer(judge, name=name)


def _text(value: Any, *keys: str) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return str(next((value[k] for k in keys if value.get(k) is not None), ""))
    return str(value)


def _passages(value: Any) -> list[dict[str, str]]:
    raw = value.get("passages") if isinstance(value, Mapping) else None
    if isinstance(raw, str):
        raw = [raw]
    return [
        {"text": p if isinstance(p, str) else str(p.get("text", ""))} for p in raw or [] if isinstance(p, str | Mapping)
    ]


def _passages_from_trace(trace: Any) -> list[dict[str, str]]:
    """The passages the program's answer step read, from a served request's DSPy spans."""
    for span in getattr(getattr(trace, "data", None), "spans", None) or []:
        found = _passages(span.inputs if isinstance(span.inputs, Mapping) else None)
        if found:
            return found
    return []
