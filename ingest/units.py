"""Unit conversions for timestamps (pure). Time in this project is integer nanoseconds."""

from __future__ import annotations

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def ms_to_ns(ms: int) -> int:
    return ms * NS_PER_MS


def us_to_ns(us: int) -> int:
    return us * NS_PER_US
