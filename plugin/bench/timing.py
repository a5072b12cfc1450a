"""Per-call latencies for the benchmarks (same loop for lucerag and the baseline stack)."""

from __future__ import annotations

import time


def latencies(fn, items, warmup: int = 10) -> list[float]:
    """Milliseconds of ``fn(x)`` for each item, after calling it on the first ``warmup`` items."""
    for x in items[:warmup]:
        fn(x)
    out = []
    for x in items:
        t = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t) * 1000)
    return out
