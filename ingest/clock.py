"""Time as integer nanoseconds. The pure core never reads the clock: I/O code calls these and passes
the value in, so replays are deterministic."""

from __future__ import annotations

import time

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def now_ns() -> int:
    return time.time_ns()


def ms_to_ns(ms: int) -> int:
    return ms * NS_PER_MS
