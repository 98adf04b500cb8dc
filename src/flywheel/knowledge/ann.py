"""How the ANN vector index scales with the table: IVF partitions, partitions probed, re-ranking.

IVF-HNSW-SQ (cosine): ~√N partitions of ~√N rows each, an HNSW graph of 8-bit quantised vectors
inside each partition, and the best ``refine_factor × k`` candidates re-ranked with the full-precision
vectors. A query probes ``nprobes`` partitions, so its cost grows with √N, not N. Measured on
2 cores with the ACL prefilter (`python -m bench.knowledge`, docs/benchmarks.md): 20 probes with a
re-ranking factor of 2 keep recall@10 ≥ 0.95 against exact search from 100k to 1M rows; more
partitions than 50 × 20 get probed in proportion (2%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_NPROBES = 20
PROBED_FRACTION = 0.02


def partitions_for(rows: int) -> int:
    """IVF partitions for a table of ``rows`` vectors: √rows (1,000 at 1M), at least one."""
    return max(1, round(math.sqrt(max(rows, 0))))


def nprobes_for(partitions: int) -> int:
    """Partitions a query probes: 20, or 2% of them on tables past 1M rows, never more than exist."""
    return max(1, min(partitions, max(MIN_NPROBES, math.ceil(partitions * PROBED_FRACTION))))


@dataclass(frozen=True)
class AnnSearch:
    """The breadth of one ANN query."""

    nprobes: int
    refine_factor: int
    ef: int

    @classmethod
    def scaled(
        cls, indexed_rows: int, *, refine_factor: int = 2, ef: int = 64, nprobes: int | None = None
    ) -> AnnSearch:
        """Settings for an index built over ``indexed_rows`` (``nprobes`` fixes the probes instead)."""
        return cls(nprobes or nprobes_for(partitions_for(indexed_rows)), refine_factor, ef)

    def ef_for(self, limit: int) -> int:
        """HNSW's list size must cover every candidate it hands to the re-ranking."""
        return max(self.ef, limit * max(self.refine_factor, 1))
