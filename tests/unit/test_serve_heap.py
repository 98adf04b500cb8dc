"""settle_heap freezes the start-up heap of a process that only serves (run in a child: it changes the process)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json
from flywheel.serve.heap import YOUNG_THRESHOLD, settle_heap

class Node:
    pass

startup = [Node() for _ in range(1000)]
for a, b in zip(startup, startup[1:]):
    a.next, b.prev = b, a  # cycles
frozen = settle_heap()
gc.collect()
after_start = gc.get_freeze_count()
garbage = [Node() for _ in range(100)]
for a, b in zip(garbage, garbage[1:]):
    a.next, b.prev = b, a
del garbage, a, b  # nothing outside the chain refers to it now
unreachable = gc.collect()  # a request's garbage cycles are still collected
print(json.dumps({"frozen": frozen, "after_start": after_start, "threshold": gc.get_threshold()[0],
                  "young": YOUNG_THRESHOLD, "collected": unreachable}))
"""


def test_settle_heap_freezes_start_up_objects_and_still_collects_new_garbage() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["frozen"] > 1000  # the start-up objects, ours included
    assert result["after_start"] == result["frozen"]  # collections leave them frozen
    assert result["threshold"] == result["young"]
    assert result["collected"] >= 100
