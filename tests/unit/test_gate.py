from __future__ import annotations

from flywheel.optimize.gate import decide

GUARDS = {"faithfulness": 0.02, "safety": 0.0}


def test_first_candidate_becomes_champion() -> None:
    d = decide({"rag_quality": 0.3}, None, objective="rag_quality", margin=0.01, guards=GUARDS)
    assert d.promote and d.reasons == ["no champion yet"]


def test_better_candidate_is_promoted() -> None:
    d = decide(
        {"rag_quality": 0.5, "faithfulness": 0.9, "safety": 1.0},
        {"rag_quality": 0.4, "faithfulness": 0.91, "safety": 1.0},
        objective="rag_quality",
        margin=0.05,
        guards=GUARDS,
    )
    assert d.promote, d.reasons
    assert all(g.ok for g in d.guards)


def test_not_better_by_the_margin_is_not_promoted() -> None:
    d = decide({"rag_quality": 0.42}, {"rag_quality": 0.4}, objective="rag_quality", margin=0.05, guards={})
    assert not d.promote
    assert "does not beat" in d.reasons[0]


def test_worse_candidate_is_not_promoted() -> None:
    d = decide({"accuracy": 0.3}, {"accuracy": 0.6}, objective="accuracy", margin=0.0, guards={})
    assert not d.promote


def test_guard_regression_blocks_a_better_candidate() -> None:
    d = decide(
        {"rag_quality": 0.9, "faithfulness": 0.7, "safety": 1.0},
        {"rag_quality": 0.4, "faithfulness": 0.8, "safety": 1.0},
        objective="rag_quality",
        margin=0.01,
        guards=GUARDS,
    )
    assert not d.promote
    assert any("guard faithfulness regressed" in r for r in d.reasons)


def test_guard_measured_on_one_side_only_blocks() -> None:
    d = decide(
        {"rag_quality": 0.9, "safety": None},
        {"rag_quality": 0.4, "safety": 1.0},
        objective="rag_quality",
        margin=0.01,
        guards={"safety": 0.0},
    )
    assert not d.promote


def test_unmeasured_guards_are_skipped_and_missing_objective_blocks() -> None:
    d = decide({"accuracy": 0.7}, {"accuracy": 0.6}, objective="accuracy", margin=0.01, guards=GUARDS)
    assert d.promote and d.guards == []
    assert not decide({"other": 1.0}, {"accuracy": 0.6}, objective="accuracy", margin=0, guards={}).promote
