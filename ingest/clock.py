"""The wall clock, read only by I/O code, which passes the value into the pure core (so replays
are deterministic)."""

from __future__ import annotations

import time

time_ns = time.time_ns  # `now_ns` without the Python call around it, for the per-frame path


def now_ns() -> int:
    return time.time_ns()
