"""A child's reports to the parent's metrics endpoint: the transport, and what every process says.

Every ``[metrics] interval`` a child (a shard: `shards.telemetry`; the merger: `bus.merger.Merger.report`)
builds one report, a plain dict of counters it already keeps, and sends it with a `Reporter`: ZeroMQ
PUSH to the parent's PULL socket, with a small high-water mark and NOBLOCK, so a parent that is slow
or gone never blocks a child (the report is dropped; the next one replaces it anyway).
Every report starts with `usage`: ``{"pid", "ts", "cpu_s", "rss_bytes"}``.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any

import orjson
import zmq

SEND_HWM = 4  # reports queued for a slow parent at most; newer ones are dropped until it catches up
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Reporter:
    """Sends reports to ``endpoint`` every ``interval`` seconds (``due``/``send``); a no-op without an endpoint."""

    def __init__(
        self, endpoint: str | None, interval: float, ctx: zmq.Context[zmq.Socket[bytes]] | None = None
    ) -> None:
        self.interval = interval
        self.dropped = 0
        self._next = 0.0
        self._sock: zmq.Socket[bytes] | None = None
        if endpoint:
            self._sock = (ctx or zmq.Context.instance()).socket(zmq.PUSH)
            self._sock.setsockopt(zmq.SNDHWM, SEND_HWM)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(endpoint)

    def due(self, now: float) -> bool:
        """True once per ``interval`` (monotonic seconds ``now``), and never without an endpoint."""
        if self._sock is None or now < self._next:
            return False
        self._next = now + self.interval
        return True

    def send(self, report: dict[str, Any]) -> None:
        if self._sock is None:
            return
        try:
            self._sock.send(orjson.dumps(report), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def usage() -> dict[str, Any]:
    """This process: pid, wall time, CPU seconds (user + system) and resident memory."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):  # not Linux: the peak is what there is
        rss = ru.ru_maxrss * 1024
    return {"pid": os.getpid(), "ts": time.time(), "cpu_s": ru.ru_utime + ru.ru_stime, "rss_bytes": rss}
