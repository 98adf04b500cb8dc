"""The serving process's garbage collector, set once the service has started.

By then the heap holds ~500k long-lived objects (DSPy, MLflow, LanceDB, pydantic schemas, the program),
and CPython's collector walks all of them in every full collection: about 0.3 s with the GIL held, every
few seconds under load (measured with ``gc.callbacks`` at concurrency 8: 1.6 s of collection in a 20 s
run, 2.5 ms per request). :func:`settle_heap` moves that start-up heap into the permanent generation
(``gc.freeze``: never collected, the standard setting for long-running Python servers) and lets the
youngest generation grow to :data:`YOUNG_THRESHOLD` objects before a collection (a request allocates
thousands; CPython's default of 700 collected several times per request). Objects a request creates are
still collected; cycles among start-up objects are not (they were alive at start-up).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("flywheel.serve")
YOUNG_THRESHOLD = 10_000  # CPython's default: 700


def settle_heap(young_threshold: int = YOUNG_THRESHOLD) -> int:
    """Collect once, freeze what survives, raise the youngest generation's threshold; the number of
    objects frozen."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)
    frozen = gc.get_freeze_count()
    log.info("Start-up heap frozen (%d objects); young-generation threshold %d", frozen, young_threshold)
    return frozen
