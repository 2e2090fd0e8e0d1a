"""Liveness between the parent and a child: a shared double the child sets to ``time.monotonic()``.

The child beats from inside its main loop (the shard from its event loop, the merger from its poll
loop), so a loop that is blocked or stopped stops beating even though the process is alive; the
parent reads the age of the last beat. ``time.monotonic()`` is one system-wide clock on Linux
(CLOCK_MONOTONIC), so parent and child compare the same time. A raw shared value needs no lock: one
writer, and an 8-byte aligned store is never seen half-written.
"""

from __future__ import annotations

import time
from typing import Any

import multiprocess as mp

_ctx = mp.get_context("spawn")


class Heartbeat:
    """Passed to the child as a process argument (shared memory survives the spawn pickling)."""

    def __init__(self) -> None:
        self._value: Any = _ctx.RawValue("d", time.monotonic())

    def beat(self) -> None:
        self._value.value = time.monotonic()

    def age(self) -> float:
        """Seconds since the last beat."""
        return time.monotonic() - float(self._value.value)
