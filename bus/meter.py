"""Fixed histogram buckets shared by the processes that count and the parent that exports (pure).

A histogram here is a plain list of counts, one per bucket of a bounds tuple plus one for
everything above the last bound (not cumulative; the exporter sums them into Prometheus's
cumulative ``le`` buckets). Counting is `observe` (or the same ``bisect_right`` inline on a hot path):
no lock, no allocation.
"""

from __future__ import annotations

from bisect import bisect_right

_MS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
LATENCY_BOUNDS_NS = tuple(int(ms * 1_000_000) for ms in _MS)  # exchange->receive, receive->Redis (ns)
WRITE_BOUNDS_NS = tuple(int(ms * 1_000_000) for ms in (0.25, *_MS[:-2]))  # one Redis write (ns)
BATCH_BOUNDS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)  # entries per Redis write


def new_histogram(bounds: tuple[int, ...]) -> list[int]:
    return [0] * (len(bounds) + 1)


def observe(hist: list[int], bounds: tuple[int, ...], value: int) -> None:
    hist[bisect_right(bounds, value)] += 1
