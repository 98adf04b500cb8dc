"""The promotion gate: a candidate replaces the champion only if it is measurably better and safe.

Pure logic over held-out scores (both programs evaluated on the same split in the same run):

- the objective must improve by at least ``margin`` (absolute);
- no guard metric (e.g. faithfulness, safety) may drop by more than its allowance;
- a guard measured for only one of the two programs cannot be checked, and blocks promotion;
- with no champion yet, the first candidate with a score becomes champion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GuardCheck:
    metric: str
    candidate: float | None
    champion: float | None
    max_drop: float
    ok: bool


@dataclass
class GateDecision:
    promote: bool
    objective: str
    candidate_score: float | None
    champion_score: float | None
    margin: float
    guards: list[GuardCheck] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    candidate: Mapping[str, float | None],
    champion: Mapping[str, float | None] | None,
    *,
    objective: str,
    margin: float,
    guards: Mapping[str, float],
) -> GateDecision:
    """Whether ``candidate`` (held-out metrics) should become champion over ``champion``."""
    score = candidate.get(objective)
    if score is None:
        return GateDecision(
            False,
            objective,
            None,
            None,
            margin,
            reasons=[f"the candidate has no {objective} score on the held-out split"],
        )
    if champion is None:
        return GateDecision(True, objective, score, None, margin, reasons=["no champion yet"])
    best = champion.get(objective)
    decision = GateDecision(False, objective, score, best, margin)
    if best is None:
        decision.reasons.append(f"the champion has no {objective} score; promote it by hand if intended")
        return decision
    improved = score >= best + margin
    if not improved:
        decision.reasons.append(f"{objective} {score:.4f} does not beat the champion's {best:.4f} by {margin}")
    for metric, max_drop in guards.items():
        new, old = candidate.get(metric), champion.get(metric)
        if new is None and old is None:
            continue  # guard not measured in this run
        ok = new is not None and old is not None and new >= old - max_drop
        decision.guards.append(GuardCheck(metric, new, old, max_drop, ok))
        if not ok:
            decision.reasons.append(
                f"guard {metric} regressed: {_fmt(new)} vs champion {_fmt(old)} (allowed drop {max_drop})"
            )
    decision.promote = improved and all(g.ok for g in decision.guards)
    if decision.promote:
        decision.reasons.append(f"{objective} {score:.4f} beats {best:.4f} by at least {margin}; guards hold")
    return decision


def _fmt(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4f}"
