"""Compile a program with a DSPy optimizer against a metric, within a budget.

Optimizers by name: ``bootstrap`` (BootstrapFewShot), ``random-search``
(BootstrapFewShotWithRandomSearch), ``mipro`` (MIPROv2), ``knn`` (KNNFewShot over the local
embedder) and ``gepa`` (GEPA, which needs a reflection LM). The budget is a hard cap on LM calls
and minutes: a DSPy callback counts every call and stops the run when it is spent (the optimizer's
own knobs are sized so a normal run fits). Reruns are cheap: DSPy's cache answers repeated calls.

Access control: programs with retrieval never get *labelled* demos (a training row's gold answer
may come from documents another user cannot read), and bootstrapped demos are annotated with
their source documents so the program shows them only to principals who can read those documents
(:func:`flywheel.programs.demos.visible_demos`); so are the agent's demos that show tool outputs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

from flywheel.errors import ConfigError, FlywheelError
from flywheel.knowledge.embed import LocalEmbedder
from flywheel.programs.demos import CONTENT_FIELDS, annotate_demo_sources

OPTIMIZERS = ("bootstrap", "random-search", "mipro", "knn", "gepa")
Progress = Callable[[int, int | None, float], None]


class BudgetExhaustedError(FlywheelError):
    status_code = 429


class _BudgetStop(BaseException):
    """Raised inside an LM call to stop an optimizer; a BaseException so optimizers don't swallow it."""


@dataclass
class Budget:
    max_lm_calls: int | None = None
    max_minutes: float | None = None


class BudgetMeter(BaseCallback):
    """Counts LM calls, reports progress, and stops the run when the budget is spent."""

    def __init__(self, budget: Budget, progress: Progress | None = None) -> None:
        self.budget = budget
        self.progress = progress
        self.calls = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()

    @property
    def minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        with self._lock:
            self.calls += 1
            calls = self.calls
        if self.progress:
            self.progress(calls, self.budget.max_lm_calls, self.minutes)
        if self.budget.max_lm_calls is not None and calls > self.budget.max_lm_calls:
            raise _BudgetStop(f"the budget of {self.budget.max_lm_calls} LM calls is spent")
        if self.budget.max_minutes is not None and self.minutes > self.budget.max_minutes:
            raise _BudgetStop(f"the budget of {self.budget.max_minutes} minutes is spent")


@dataclass
class CompileResult:
    program: dspy.Module
    optimizer: str
    params: dict[str, Any]
    lm_calls: int
    wall_s: float
    demos: int
    dropped_demos: int = 0
    notes: list[str] = field(default_factory=list)


def count_demos(program: dspy.Module) -> int:
    return sum(len(p.demos) for _, p in program.named_predictors())


def _knn_vectorizer() -> dspy.Embedder:
    embedder = LocalEmbedder()
    return dspy.Embedder(lambda texts: embedder.embed(list(texts)), caching=False)


def build_optimizer(
    name: str,
    metric: Callable[..., Any],
    *,
    trainset: list[dspy.Example],
    threads: int,
    retrieval: bool,
    seed: int = 0,
    max_demos: int = 4,
    teacher_lm: Any = None,
    reflection_lm: Any = None,
    budget: Budget | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The DSPy optimizer object and the settings recorded with the version."""
    labeled = 0 if retrieval else max_demos
    teacher = {"lm": teacher_lm} if teacher_lm is not None else None
    params: dict[str, Any] = {
        "optimizer": name,
        "max_bootstrapped_demos": max_demos,
        "max_labeled_demos": labeled,
        "seed": seed,
        "threads": threads,
        "teacher_lm": teacher_lm is not None,
    }
    if name == "bootstrap":
        return dspy.BootstrapFewShot(
            metric=metric,
            max_bootstrapped_demos=max_demos,
            max_labeled_demos=labeled,
            max_rounds=1,
            teacher_settings=teacher,
        ), params
    if name == "random-search":
        candidates = 4
        params["num_candidate_programs"] = candidates
        return dspy.BootstrapFewShotWithRandomSearch(
            metric=metric,
            max_bootstrapped_demos=max_demos,
            max_labeled_demos=labeled,
            num_candidate_programs=candidates,
            num_threads=threads,
            teacher_settings=teacher,
        ), params
    if name == "mipro":
        params["auto"] = "light"
        return dspy.MIPROv2(
            metric=metric,
            auto="light",
            max_bootstrapped_demos=max_demos,
            max_labeled_demos=labeled,
            num_threads=threads,
            teacher_settings=teacher,
            seed=seed,
            verbose=False,
        ), params
    if name == "knn":
        params["k"] = 3
        return dspy.KNNFewShot(
            k=3,
            trainset=trainset,
            vectorizer=_knn_vectorizer(),
            max_bootstrapped_demos=max_demos,
            max_labeled_demos=labeled,
        ), params
    if name == "gepa":
        if reflection_lm is None:
            raise ConfigError(
                "GEPA needs a reflection LM.",
                hint="Configure [reflection_lm] (a stronger model) in flywheel.toml, or pick another "
                "optimizer: " + ", ".join(o for o in OPTIMIZERS if o != "gepa") + ".",
            )
        calls = (budget.max_lm_calls // 4) if budget and budget.max_lm_calls else None
        params.update({"auto": None if calls else "light", "max_metric_calls": calls})

        def feedback_metric(
            gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
        ) -> float:
            return float(metric(gold, pred, None))

        return dspy.GEPA(
            metric=feedback_metric,
            auto=None if calls else "light",
            max_metric_calls=calls,
            reflection_lm=reflection_lm,
            num_threads=threads,
            seed=seed,
        ), params
    raise ConfigError(f"Unknown optimizer {name!r}.", hint=f"Choose one of: {', '.join(OPTIMIZERS)}.")


def compile_program(
    student: dspy.Module,
    trainset: list[dspy.Example],
    *,
    optimizer: str,
    metric: Callable[..., Any],
    valset: list[dspy.Example] | None = None,
    threads: int = 2,
    budget: Budget | None = None,
    seed: int = 0,
    max_demos: int = 4,
    teacher_lm: Any = None,
    reflection_lm: Any = None,
    progress: Progress | None = None,
) -> CompileResult:
    """Optimize a copy of ``student``; the original is left untouched."""
    if not trainset:
        raise ConfigError("The training set is empty.", hint="Give a dataset with at least one example.")
    budget = budget or Budget()
    # Programs that read documents or tool outputs never get labelled demos here, and their bootstrapped
    # demos carry provenance (documents, tools) checked per request.
    retrieval = any(
        field in p.signature.input_fields for _, p in student.named_predictors() for field in CONTENT_FIELDS
    )
    opt, params = build_optimizer(
        optimizer,
        metric,
        trainset=trainset,
        threads=threads,
        retrieval=retrieval,
        seed=seed,
        max_demos=max_demos,
        teacher_lm=teacher_lm,
        reflection_lm=reflection_lm,
        budget=budget,
    )
    params.update(
        {
            "max_lm_calls": budget.max_lm_calls,
            "max_minutes": budget.max_minutes,
            "trainset": len(trainset),
            "valset": len(valset or []),
        }
    )
    meter = BudgetMeter(budget, progress)
    started = time.perf_counter()
    try:
        with dspy.context(callbacks=[*dspy.settings.get("callbacks", []), meter]):
            compiled = _run(opt, optimizer, student.deepcopy(), trainset, valset)
    except _BudgetStop as stop:
        raise BudgetExhaustedError(
            f"Optimization stopped: {stop} ({meter.calls} calls, {meter.minutes:.1f} min) before a candidate was "
            "complete; nothing was registered.",
            hint="Raise --max-lm-calls/--max-minutes, use fewer training examples (--train-limit), or a cheaper "
            "optimizer (bootstrap).",
        ) from None
    dropped = annotate_demo_sources(compiled) if retrieval else 0
    result = CompileResult(
        compiled, optimizer, params, meter.calls, time.perf_counter() - started, count_demos(compiled), dropped
    )
    if dropped:
        result.notes.append(f"{dropped} demo(s) with passages of unknown origin were dropped (ACL: fail closed)")
    return result


def _run(
    opt: Any, name: str, student: dspy.Module, trainset: list[dspy.Example], valset: list[dspy.Example] | None
) -> dspy.Module:
    if name == "knn":
        return opt.compile(student)
    if name == "mipro":
        return opt.compile(student, trainset=trainset, valset=valset or None)
    if name in {"random-search", "gepa"}:
        return opt.compile(student, trainset=trainset, valset=valset or None)
    return opt.compile(student, trainset=trainset)
