"""Racing designs on validation rows: clear losers stop early, close designs go the distance, budget stops."""

from __future__ import annotations

import pytest

from flywheel.optimize.design_race import clearly_better, race_designs, trails


def scorer(table: dict[int, list[float]], log: list[tuple[int, int, int]]):
    def score_block(index: int, start: int, stop: int) -> tuple[list[float], int]:
        log.append((index, start, stop))
        return table[index][start:stop], stop - start

    return score_block


def alternating(high: float, low: float, rows: int) -> list[float]:
    return [high if i % 2 else low for i in range(rows)]


def test_a_clear_loser_stops_after_the_first_block_and_close_designs_see_every_row() -> None:
    rows = 48
    table = {
        0: alternating(0.9, 0.5, rows),  # mean 0.70
        1: alternating(0.9, 0.52, rows),  # mean 0.71: within noise of design 0
        2: [0.1] * rows,  # far behind on every row
    }
    log: list[tuple[int, int, int]] = []
    result = race_designs(["simple", "close", "loser"], rows, scorer(table, log), block=16)
    assert [stop for index, _, stop in log if index == 2] == [16]  # one block, then dropped
    assert {e.name: len(e.scores) for e in result.entrants} == {"simple": 48, "close": 48, "loser": 16}
    assert result.entrants[2].dropped and not result.stopped_by_budget
    assert result.chosen == 0 and result.compared_rows == 48  # 0.01 ahead is not clearly better: simpler kept
    assert result.calls == 48 + 48 + 16
    assert "loser 0.100 (16 rows, dropped)" in result.summary()


def test_a_later_design_that_is_clearly_better_wins() -> None:
    rows = 32
    table = {0: [0.4] * rows, 1: [0.8] * rows}
    result = race_designs(["simple", "better"], rows, scorer(table, []), block=16)
    assert result.chosen == 1 and result.entrants[0].dropped


def test_the_budget_ends_the_race_and_the_choice_uses_the_rows_every_live_design_has() -> None:
    rows = 48
    table = {0: [0.5] * rows, 1: alternating(1.0, 0.2, rows), 2: alternating(0.55, 0.45, rows)}
    log: list[tuple[int, int, int]] = []
    result = race_designs(
        ["a", "b", "c"], rows, scorer(table, log), block=16, out_of_budget=lambda calls, index: len(log) >= 4
    )
    assert result.stopped_by_budget
    assert len(log) == 4  # block 1 for all three, block 2 for "a" only
    assert result.compared_rows == 16  # "b" and "c" only have the first block
    assert not any(e.dropped for e in result.entrants)  # "b" leads, but by less than its noise
    assert result.chosen == 1  # 0.6 vs 0.5 on the common rows: clearly better
    assert result.rows() == {"a": 32, "b": 16, "c": 16}


def test_the_first_block_always_runs_even_when_the_budget_is_spent() -> None:
    log: list[tuple[int, int, int]] = []
    result = race_designs(
        ["only", "other"], 8, scorer({0: [1.0] * 8, 1: [0.0] * 8}, log), out_of_budget=lambda c, i: True
    )
    assert log == [(0, 0, 8)] and result.chosen == 0 and result.stopped_by_budget
    assert "other not scored (budget)" in result.summary()


@pytest.mark.parametrize(
    ("leader", "other", "expected"),
    [
        ([1.0] * 10, [0.0] * 10, True),  # no spread, far behind
        ([0.5] * 10, [0.5] * 10, False),  # equal
        ([1.0, 0.0] * 5, [0.0, 1.0] * 5, False),  # same mean, opposite rows
        ([0.52] * 10, [0.5] * 10, False),  # behind by less than half a row
        ([1.0], [0.0], False),  # one row is not evidence
    ],
)
def test_trails_needs_a_deficit_beyond_noise(leader: list[float], other: list[float], expected: bool) -> None:
    assert trails(leader, other, z=1.64) is expected


def test_a_more_complex_design_must_win_by_more_than_noise() -> None:
    assert not clearly_better(0.716, 0.713, rows=32)  # within half a row: keep the simpler design
    assert clearly_better(0.75, 0.713, rows=32)
    assert clearly_better(0.2, 0.0, rows=32)
