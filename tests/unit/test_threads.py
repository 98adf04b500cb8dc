"""The process's CPU thread budget: loaded LM contexts reserve threads, torch gets what is left."""

from __future__ import annotations

from flywheel import threads


def test_torch_gets_the_cores_the_lm_contexts_leave() -> None:
    before = threads.reserved()
    try:
        assert threads.torch_threads(total=2) == max(1, 2 - before)
        threads.reserve(1)  # one llama.cpp context with thread_budget(1, cores=2) == 1 thread
        assert threads.torch_threads(total=2) == max(1, 1 - before)
        threads.reserve(8)
        assert threads.torch_threads(total=2) == 1  # never zero
    finally:
        threads.release(9)
    assert threads.reserved() == before


def test_lm_threads_leave_a_core_and_split_the_rest() -> None:
    assert threads.lm_threads(1, total=2) == 1
    assert threads.lm_threads(1, total=16) == 15
    assert threads.lm_threads(4, total=16) == 3
    assert threads.lm_threads(1, total=1) == 1


def test_apply_sets_torch_intra_op_threads() -> None:
    import torch

    original = torch.get_num_threads()
    try:
        assert threads.apply_torch_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(original)
