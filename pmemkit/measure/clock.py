"""The clock every pmemkit timing uses, and what reading it costs.

Why report the overhead: under TCG a `perf_counter_ns()` pair costs far more than on hardware;
a latency figure means little unless the timer's own cost stands beside it.
"""

from __future__ import annotations

import time

now_ns = time.perf_counter_ns


def timer_overhead_ns(samples: int = 2000) -> int:
    """Smallest observed gap between two back-to-back clock reads, in ns (a lower bound)."""
    best = None
    for _ in range(samples):
        a = now_ns()
        b = now_ns()
        gap = b - a
        if best is None or gap < best:
            best = gap
    return int(best or 0)
