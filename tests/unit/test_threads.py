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


def test_openmp_threads_sleep_while_waiting_on_two_cores_only() -> None:
    assert threads.openmp_wait_policy(total=1) == "PASSIVE"
    assert threads.openmp_wait_policy(total=2) == "PASSIVE"
    assert threads.openmp_wait_policy(total=4) is None  # llama.cpp's teams sync at every op there


def test_the_wait_policy_is_in_force_before_torch_loads_and_a_users_choice_wins() -> None:
    import os
    import subprocess
    import sys

    probe = "import flywheel, os, sys; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    two_cores = subprocess.run(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2]); {probe}"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert two_cores.stdout.split() == ["PASSIVE", "False"]  # set on import, before any torch import
    chosen = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True
    )
    assert chosen.stdout.split()[0] == "ACTIVE"
