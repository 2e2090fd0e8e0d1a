"""What the merger has accepted but Redis does not have yet: a bounded queue, written in order.

An `Entry` is one bus batch (or a gap record, or a shard's end mark); ``batch_size`` and ``limit``
count events, not entries. While Redis is reachable the outbox is written as fast as it fills (one
script call per write of about ``batch_size`` events, whole batches, entries and checkpoint
together). While Redis is down the merger keeps reading the bus and the outbox grows, up to
``limit`` events; a failed write is retried with a capped, doubling delay, and the outage is logged
when it starts, every few seconds while it lasts, and when it ends. Past the limit the oldest
batches are dropped whole, and never silently: each shard's dropped range of batch seqs and its
number of events are counted, logged and written to the ``{prefix}:gaps`` stream ahead of the
entries that follow it.

A write whose outcome is unknown (the connection broke after Redis ran the script) is retried; the
script sees that its checkpoint is already in place and writes nothing twice (`bus.streams`).

For the metrics, each committed batch is counted once (not per entry): its size, how long its write
took, and the receive-to-Redis lag of the first event of its oldest batch, whose ``ts_recv`` alone is
read from its body (histograms of `bus.meter`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import orjson
import redis
import structlog

from bus.meter import BATCH_BOUNDS, LATENCY_BOUNDS_NS, WRITE_BOUNDS_NS, new_histogram, observe
from bus.streams import StreamWriter, entry

log = structlog.get_logger("merger")

OUTAGE_LOG_EVERY_S = 5.0


@dataclass
class Entry:
    body: bytes  # a batch body (`bus.wire`): ``"<key suffix>",<fields>,...``
    shard: int  # -1: not a shard's batch (a gap record)
    epoch: int
    seq: int
    events: int = 0  # entries the body holds (a shard's batch)
    end: bool = False  # no entry: marks the shard's checkpoint as complete up to its end marker

    @property
    def is_frame(self) -> bool:
        return self.shard >= 0 and not self.end


@dataclass
class _Dropped:
    epoch: int
    first: int
    last: int
    count: int  # batches
    events: int


class Outbox:
    def __init__(self, writer: StreamWriter, batch_size: int, limit: int, gaps_suffix: str = "gaps") -> None:
        """``gaps_suffix``: the gaps stream's key without the prefix."""
        self.writer = writer
        self.batch_size = batch_size
        self.limit = limit
        self.gaps_suffix = gaps_suffix
        self.queue: deque[Entry] = deque()
        self.events = 0  # events queued
        self.up = True
        self.written = 0
        self.batches = 0
        self.errors = 0
        self.dropped = 0
        self.skipped_rewrites = 0
        self.outages = 0
        self._dropped_ranges: dict[int, _Dropped] = {}
        self._retry_at = 0.0
        self._retry_size = 0  # entries of the batch whose write failed (0: none pending)
        self._delay = 0.05
        self._down_since = 0.0
        self._last_outage_log = 0.0
        self.batch_sizes = new_histogram(BATCH_BOUNDS)
        self.write_ns = new_histogram(WRITE_BOUNDS_NS)
        self.lag_ns = new_histogram(LATENCY_BOUNDS_NS)  # receive (in a shard) -> committed in Redis

    def __len__(self) -> int:
        return len(self.queue)

    def add(self, e: Entry) -> None:
        self.queue.append(e)
        self.events += e.events
        if self.events > self.limit:
            self._drop_oldest()

    def ready(self, now: float) -> bool:
        """Something to write and no back-off pending."""
        return bool(self.queue) and now >= self._retry_at

    def wait_s(self, now: float) -> float:
        return max(0.0, self._retry_at - now)

    def flush(self, now: float, budget_s: float) -> bool:
        """Write batches until the outbox is empty, a write fails or ``budget_s`` is spent; False
        after a failure (the next attempt waits for the back-off)."""
        deadline = now + budget_s
        while self.queue and now >= self._retry_at:
            # A failed batch is retried exactly as it was: its write may have landed with only the
            # reply lost, and only the same checkpoint lets the script recognise it.
            batch = self._next_batch()
            if not self._write(batch):
                self._retry_size = len(batch)
                return False
            self._retry_size = 0
            for e in batch:
                self.queue.popleft()
                self.events -= e.events
            now = time.monotonic()
            if now >= deadline:
                break
        return True

    def _next_batch(self) -> list[Entry]:
        """The retried entries, or whole batches from the head up to ``batch_size`` events (at least one)."""
        if self._retry_size:
            return [self.queue[i] for i in range(min(self._retry_size, len(self.queue)))]
        out: list[Entry] = []
        events = 0
        for e in self.queue:
            if out and events + e.events > self.batch_size:
                break
            out.append(e)
            events += e.events
        return out

    def _write(self, batch: list[Entry]) -> bool:
        bodies = self._gap_entries() if self._dropped_ranges else []
        last: dict[int, Entry] = {}  # shard -> its last entry here: the checkpoint
        events = 0
        first: Entry | None = None  # the first frame, whose lag is counted
        for x in batch:
            if x.shard >= 0:
                last[x.shard] = x
                if x.end:
                    continue
                events += x.events
                if first is None:
                    first = x
            bodies.append(x.body)
        checkpoint: list[str] = []
        for shard in sorted(last):
            x = last[shard]
            checkpoint += (str(shard), f"{x.epoch}:{x.seq}:end" if x.end else f"{x.epoch}:{x.seq}")
        started = time.perf_counter_ns()
        try:
            n = self.writer.write(bodies, checkpoint)
        except redis.RedisError as e:
            self._failed(e)
            return False
        observe(self.write_ns, WRITE_BOUNDS_NS, time.perf_counter_ns() - started)
        observe(self.batch_sizes, BATCH_BOUNDS, events)
        if first is not None and (ts := ts_recv(first.body)) is not None:
            observe(self.lag_ns, LATENCY_BOUNDS_NS, time.time_ns() - ts)
        if n < 0:
            self.skipped_rewrites += 1
            log.warning("batch was already in redis (an earlier write's reply was lost); not written again",
                        entries=events)  # fmt: skip
        # Either way the batch and its gap records are in Redis now.
        self._dropped_ranges.clear()
        self.written += events
        self.batches += 1
        if not self.up:
            log.warning("redis reachable again; writing what was buffered",
                        outage_s=round(time.monotonic() - self._down_since, 1), buffered=len(self.queue),
                        dropped=self.dropped)  # fmt: skip
        self.up = True
        self._delay = 0.05
        self._retry_at = 0.0
        return True

    def _failed(self, error: redis.RedisError) -> None:
        self.errors += 1
        now = time.monotonic()
        if self.up:
            self.up = False
            self.outages += 1
            self._down_since = self._last_outage_log = now
            log.error("redis unreachable; buffering entries", error=str(error), buffered=len(self.queue),
                      limit=self.limit)  # fmt: skip
        elif now - self._last_outage_log >= OUTAGE_LOG_EVERY_S:
            self._last_outage_log = now
            log.error("redis still unreachable", error=str(error), outage_s=round(now - self._down_since, 1),
                      buffered=len(self.queue), limit=self.limit, dropped=self.dropped)  # fmt: skip
        self._retry_at = now + self._delay
        self._delay = min(self._delay * 2, 2.0)

    def _drop_oldest(self) -> None:
        """Drop the oldest whole batches down to 1 % under the limit (a chunk, so a long outage logs a
        line per chunk, not per batch), remembering each shard's dropped range for the gaps stream."""
        self._retry_size = 0  # the failed batch loses its head: it can no longer be recognised
        target = self.limit - self.limit // 100
        per_shard: dict[int, _Dropped] = {}
        while self.queue and self.events > target:
            e = self.queue.popleft()
            self.events -= e.events
            if not e.is_frame:
                continue
            self.dropped += e.events
            d = per_shard.get(e.shard)
            if d is None or d.epoch != e.epoch:
                d = per_shard[e.shard] = _Dropped(e.epoch, e.seq, e.seq, 0, 0)
            d.last = e.seq
            d.count += 1
            d.events += e.events
        for shard, d in per_shard.items():
            log.error("outage buffer full; oldest batches dropped", shard=shard, epoch=d.epoch, dropped_from=d.first,
                      dropped_to=d.last, count=d.count, events=d.events, limit=self.limit)  # fmt: skip
            prev = self._dropped_ranges.get(shard)
            if prev is not None and prev.epoch == d.epoch:
                prev.last, prev.count, prev.events = d.last, prev.count + d.count, prev.events + d.events
            else:
                self._dropped_ranges[shard] = d

    def _gap_entries(self) -> list[bytes]:
        reason = "redis outage longer than the buffer"
        return [
            entry(self.gaps_suffix, gap_body(shard, d.epoch, d.first, d.last, d.count, reason, d.events))
            for shard, d in sorted(self._dropped_ranges.items())
        ]


def gap_body(shard: int, epoch: int, first: int, last: int, count: int, reason: str, events: int | None) -> bytes:
    """A ``{prefix}:gaps`` entry: bus batches ``first..last`` (``count`` of them) of a shard that will
    never be in the streams, holding ``events`` events (``""`` when unknown: a batch the merger never
    received)."""
    return orjson.dumps(["type", "gap", "shard", str(shard), "epoch", str(epoch), "first_seq", str(first),
                         "last_seq", str(last), "count", str(count), "events", "" if events is None else str(events),
                         "reason", reason, "ts_ms", str(int(time.time() * 1000))])  # fmt: skip


_TS_RECV = b'"ts_recv","'


def ts_recv(body: bytes) -> int | None:
    """The ``ts_recv`` of a bus body (a JSON field list), read without decoding the rest."""
    at = body.find(_TS_RECV)
    if at < 0:
        return None
    start = at + len(_TS_RECV)
    end = body.find(b'"', start)
    digits = body[start:end]
    return int(digits) if digits.isdigit() else None
