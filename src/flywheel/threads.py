"""One CPU thread budget per process, shared by the embedded LM's llama.cpp contexts and torch.

llama.cpp's threads spin while they wait, so a context with as many threads as there are cores
slows down by up to ~40x as soon as anything else runs beside it (the embedder's torch threads,
a second context, a test suite; DESIGN.md). The budget: llama.cpp contexts × their threads plus
torch's intra-op threads ≤ the cores. Loaded LM contexts *reserve* their threads here; the
embedder asks :func:`torch_threads` before each forward pass and gets the cores left over (all
of them while no LM is loaded, so ingestion alone keeps its full speed).
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_reserved = 0


def cores() -> int:
    """CPUs this process may run on (the affinity mask, e.g. a container's cpuset), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def openmp_wait_policy(total: int | None = None) -> str | None:
    """The OpenMP wait policy this process should run under: ``"PASSIVE"`` on a machine of two cores or
    fewer, ``None`` (libgomp's default: spin a while, then sleep) on larger ones.

    torch's intra-op threads and llama.cpp's are OpenMP teams (libgomp). By default a team's threads
    spin between parallel regions; on two cores that spinning is CPU taken from the request threads, the
    trace sink and everything else. Measured serving RAG with a 50 ms stub LM (``/proc`` CPU of the
    service, 3 runs each): 57–68 → 45–48 ms of CPU per request at concurrency 1, 45.9 → 40.5 at 8
    (25.4 → 28.6 req/s), unchanged at 32; the embedder's throughput on large batches did not drop (2
    runs each, 51–59 vs 56–69 chunks/s). llama.cpp gets one thread per context on such a machine
    (:func:`lm_threads`), so it has no team to wait for; on larger machines its teams synchronise at
    every operation, where sleeping waits would slow decoding, so the default stays."""
    return "PASSIVE" if (total or cores()) <= 2 else None


def use_openmp_wait_policy(total: int | None = None) -> str | None:
    """Set ``OMP_WAIT_POLICY`` to :func:`openmp_wait_policy` unless it is set already (libgomp reads it
    once, when torch or llama.cpp is first imported: call this before); the policy in force."""
    policy = openmp_wait_policy(total)
    if policy is not None:
        os.environ.setdefault("OMP_WAIT_POLICY", policy)
    return os.environ.get("OMP_WAIT_POLICY")


def lm_threads(pool_size: int, total: int | None = None) -> int:
    """Threads per llama.cpp context: the cores less one (for the embedder, the web server and the
    OS), shared by the pool's contexts, at least one. One thread on a 2-core machine."""
    total = total or cores()
    return max(1, (total - 1) // max(pool_size, 1))


def reserve(threads: int) -> None:
    """A loaded llama.cpp context runs ``threads`` threads from now on."""
    global _reserved
    with _lock:
        _reserved += max(threads, 0)


def release(threads: int) -> None:
    """A context holding ``threads`` threads was freed."""
    global _reserved
    with _lock:
        _reserved = max(0, _reserved - max(threads, 0))


def reserved() -> int:
    with _lock:
        return _reserved


def torch_threads(total: int | None = None) -> int:
    """torch intra-op threads that fit beside the loaded LM contexts (at least one)."""
    return max(1, (total or cores()) - reserved())


def apply_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (default: :func:`torch_threads`) if they differ."""
    import torch

    wanted = threads or torch_threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted
