"""The wall clock, read only by I/O code, which passes the value into the pure core (so replays
are deterministic)."""

from __future__ import annotations

import time


def now_ns() -> int:
    return time.time_ns()
