"""Run a program over a dataset in parallel and score every example.

A failing example is recorded with its error and scored 0 on every applicable metric (a crash is
not a free pass), and the run goes on. LM calls are counted with a DSPy callback, so the report
says what the evaluation cost.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

from flywheel.evaluate.datasets import Dataset
from flywheel.evaluate.metrics import Metric, classification_report, mean

Progress = Callable[[int, int], None]


class LMCallCounter(BaseCallback):
    """Counts LM calls (cache hits included) made while it is installed."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        with self._lock:
            self.calls += 1


@dataclass
class ExampleResult:
    index: int
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    scores: dict[str, float | None]
    error: str | None = None
    latency_s: float = 0.0

    def score(self, metric: str) -> float:
        value = self.scores.get(metric)
        return 0.0 if value is None else float(value)


@dataclass
class EvalResult:
    """Means of every metric over the examples where it applies, plus the per-example rows."""

    program: str
    dataset: str
    metrics: dict[str, float | None]
    examples: list[ExampleResult]
    lm_calls: int
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(1 for e in self.examples if e.error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "dataset": self.dataset,
            "metrics": self.metrics,
            "examples": len(self.examples),
            "errors": self.errors,
            "lm_calls": self.lm_calls,
            "wall_s": round(self.wall_s, 3),
            **self.extra,
        }


def _display_inputs(example: dspy.Example) -> dict[str, Any]:
    shown = {}
    for key in example.inputs():
        value = example[key]
        shown[key] = getattr(value, "user", value) if key == "principal" else value
    return shown


def _plain_outputs(prediction: Any) -> dict[str, Any]:
    if prediction is None:
        return {}
    data = dict(prediction.items()) if hasattr(prediction, "items") else dict(vars(prediction))
    return {k: v for k, v in data.items() if k not in {"reasoning"}}


def evaluate_program(
    program: Any,
    dataset: Dataset,
    metrics: Mapping[str, Metric],
    *,
    name: str = "program",
    threads: int = 2,
    progress: Progress | None = None,
) -> EvalResult:
    """Call ``program(**example.inputs())`` for every example (``threads`` at once) and score it."""
    counter = LMCallCounter()
    done = 0
    lock = threading.Lock()

    def run(index: int, example: dspy.Example) -> ExampleResult:
        nonlocal done
        started = time.perf_counter()
        error = None
        prediction = None
        try:
            prediction = program(**example.inputs())
        except Exception as exc:  # recorded per example; the run goes on
            error = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
        latency = time.perf_counter() - started
        scores: dict[str, float | None] = {}
        for metric_name, metric in metrics.items():
            if prediction is None:
                value = metric(example, dspy.Prediction(answer="", passages=[]))
                scores[metric_name] = None if value is None else 0.0
                continue
            try:
                scores[metric_name] = metric(example, prediction)
            except Exception as exc:
                scores[metric_name] = None
                error = error or f"metric {metric_name} failed: {exc}"
        result = ExampleResult(index, _display_inputs(example), _plain_outputs(prediction), scores, error, latency)
        with lock:
            done += 1
            if progress:
                progress(done, len(dataset.examples))
        return result

    started = time.perf_counter()
    callbacks = [*dspy.settings.get("callbacks", []), counter]
    with dspy.context(callbacks=callbacks), ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        # Each task runs in a copy of this context, so DSPy's overrides (LM, callbacks) reach the workers.
        futures = [pool.submit(contextvars.copy_context().run, run, i, ex) for i, ex in enumerate(dataset.examples)]
        rows = [f.result() for f in futures]
    wall = time.perf_counter() - started
    means = {m: mean(r.scores.get(m) for r in rows) for m in metrics}
    result = EvalResult(name, dataset.name, means, rows, counter.calls, wall)
    if dataset.kind == "classifier":
        add_classification_metrics(result, dataset)
    return result


def add_classification_metrics(result: EvalResult, dataset: Dataset) -> None:
    """Corpus metrics for classifiers: accuracy and macro-F1 of sentiment and of complaint reason."""
    for label, prefix in (("sentiment", ""), ("reason", "reason_")):
        pairs = [
            (ex[label], row.outputs.get(label))
            for ex, row in zip(dataset.examples, result.examples, strict=True)
            if ex.get(label)
        ]
        if pairs:
            report = classification_report([g for g, _ in pairs], [p for _, p in pairs])
            result.metrics[f"{prefix}accuracy"] = report["accuracy"]
            result.metrics[f"{prefix}macro_f1"] = report["macro_f1"]
            result.extra[f"{label}_report"] = report
