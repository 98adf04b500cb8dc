"""One optimization round: compile a candidate, evaluate it next to the champion, register, gate.

1. The current champion (or, the first time, the unoptimized program, registered as version 1 and
   made champion so there is always something to roll back to) is evaluated on the held-out split.
2. The candidate is compiled on the training split and evaluated on the same held-out split.
3. The candidate is registered as a new version with its metrics and optimizer settings.
4. The gate decides; only a passing candidate becomes ``champion``.

The registry is passed in (anything with ``get/register/promote``), so this module stays free of
MLflow; the CLI wraps the round in an MLflow run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.evaluate.catalog import (
    DEFAULT_METRICS,
    JUDGE_METRICS,
    metric_catalog,
    optimizer_metric,
    resolve_metrics,
)
from flywheel.evaluate.datasets import Dataset
from flywheel.evaluate.report import write_report
from flywheel.evaluate.runner import EvalResult, evaluate_program
from flywheel.optimize.classifier_search import CLASSIFIER_OPTIMIZERS, compile_classifier
from flywheel.optimize.compile import Budget, CompileResult, compile_program
from flywheel.optimize.gate import GateDecision, decide
from flywheel.optimize.rag_search import search_rag_design

Progress = Callable[[str, int, int | None], None]


@dataclass
class OptimizeRequest:
    program: str
    optimizer: str
    objective: str
    train: Dataset
    dev: Dataset
    budget: Budget = field(default_factory=Budget)
    threads: int = 2
    seed: int = 0
    max_demos: int = 4
    margin: float = 0.01
    guards: dict[str, float] = field(default_factory=dict)
    composites: dict[str, dict[str, float]] = field(default_factory=dict)
    promote: bool = True
    judge_lm: Any = None
    teacher_lm: Any = None
    reflection_lm: Any = None
    retrieval_k: int = 5
    options: dict[str, Any] = field(default_factory=dict)  # optimizer-specific (classifier search: lm_rows, …)


@dataclass
class OptimizeOutcome:
    baseline: EvalResult
    candidate: EvalResult
    compiled: CompileResult
    decision: GateDecision
    version: Any
    champion: Any
    report_dir: Path | None

    def summary(self) -> dict[str, Any]:
        return {
            "objective": self.decision.objective,
            "baseline": self.baseline.metrics,
            "candidate": self.candidate.metrics,
            "promoted": self.decision.promote,
            "reasons": self.decision.reasons,
            "version": getattr(self.version, "version", None),
            "champion": getattr(self.champion, "version", None),
            "compile_lm_calls": self.compiled.lm_calls,
            "compile_wall_s": round(self.compiled.wall_s, 2),
            "demos": self.compiled.demos,
        }


def held_out_metrics(request: OptimizeRequest, kind: str) -> list[str]:
    """Objective + defaults + guards (judge guards only apply to question answering)."""
    names = [request.objective, *DEFAULT_METRICS[kind]]
    catalog = metric_catalog(kind)
    names += [g for g in request.guards if g in catalog]
    return list(dict.fromkeys(names))


def optimize_program(
    assistant: Any,
    registry: Any,
    request: OptimizeRequest,
    *,
    report_dir: Path | None = None,
    progress: Progress | None = None,
) -> OptimizeOutcome:
    kind = request.train.kind
    names = held_out_metrics(request, kind)
    if request.judge_lm is None:
        names = [n for n in names if n not in JUDGE_METRICS or n == request.objective or n in request.guards]
    metrics = resolve_metrics(
        names, kind, composites=request.composites, judge_lm=request.judge_lm, k=request.retrieval_k
    )
    objective = resolve_metrics(
        [request.objective], kind, composites=request.composites, judge_lm=request.judge_lm, k=request.retrieval_k
    )
    step = (lambda label: lambda done, total: progress(label, done, total)) if progress else (lambda label: None)

    champion = registry.get(request.program, "champion") if registry is not None else None
    baseline_program = assistant.program(request.program)
    if registry is not None and champion is None:
        champion = registry.register(
            request.program, baseline_program, description="unoptimized program", params={"optimizer": "none"}
        )
        champion = registry.promote(request.program, champion.version, reason="initial version: unoptimized program")
    baseline = evaluate_program(
        baseline_program,
        request.dev,
        metrics,
        name=f"{request.program} (champion)",
        threads=request.threads,
        progress=step("champion on dev"),
    )

    # Corpus-level objectives (macro-F1) are optimized through their per-example counterpart.
    per_example = next(iter(objective.values()), None) or metrics.get("accuracy") or next(iter(metrics.values()))
    compile_metric = optimizer_metric(per_example, threshold=0.5 if kind == "qa" else 1.0)
    if kind == "qa" and request.optimizer == "auto":
        compiled = search_rag_design(
            baseline_program,
            assistant.knowledge,
            request.train.examples,
            metric=compile_metric,
            threads=request.threads,
            budget=request.budget,
            seed=request.seed,
            max_demos=request.max_demos,
            strong_lm=assistant.settings.lm.reasons_well(),
            progress=progress,
        )
    elif kind == "classifier" and request.optimizer in CLASSIFIER_OPTIMIZERS:
        compiled = compile_classifier(
            baseline_program,
            request.train.examples,
            optimizer=request.optimizer,
            objective=request.objective,
            options=request.options,
            max_lm_calls=request.budget.max_lm_calls,
            threads=request.threads,
            seed=request.seed,
            progress=progress,
        )
    else:
        compiled = compile_program(
            baseline_program,
            request.train.examples,
            optimizer=request.optimizer,
            metric=compile_metric,
            valset=request.dev.examples if request.optimizer in {"mipro", "gepa"} else None,
            threads=request.threads,
            budget=request.budget,
            seed=request.seed,
            max_demos=request.max_demos,
            teacher_lm=request.teacher_lm,
            reflection_lm=request.reflection_lm,
            progress=(lambda calls, cap, _minutes: progress("compiling (LM calls)", calls, cap)) if progress else None,
        )
    candidate = evaluate_program(
        compiled.program,
        request.dev,
        metrics,
        name=f"{request.program} (candidate)",
        threads=request.threads,
        progress=step("candidate on dev"),
    )
    for result in (baseline, candidate):
        if request.objective not in result.metrics and request.objective in objective:
            result.metrics[request.objective] = None
    decision = decide(
        candidate.metrics, baseline.metrics, objective=request.objective, margin=request.margin, guards=request.guards
    )
    version = None
    if registry is not None:
        params = {
            **compiled.params,
            "objective": request.objective,
            "train": request.train.name,
            "dev": request.dev.name,
            "compile_lm_calls": compiled.lm_calls,
            "compile_wall_s": round(compiled.wall_s, 1),
            "demos": compiled.demos,
            "gate": "passed" if decision.promote else "; ".join(decision.reasons),
        }
        params.update({f"champion.{k}": v for k, v in baseline.metrics.items() if v is not None})
        version = registry.register(
            request.program,
            compiled.program,
            metrics=candidate.metrics,
            params=params,
            description=f"{request.optimizer} on {request.train.name}",
        )
        if decision.promote and request.promote:
            champion = registry.promote(request.program, version.version, reason="; ".join(decision.reasons))
    if report_dir is not None:
        write_report(candidate, report_dir, metric=request.objective, baseline=baseline)
    return OptimizeOutcome(baseline, candidate, compiled, decision, version, champion, report_dir)
