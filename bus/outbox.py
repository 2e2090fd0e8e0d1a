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

One write is in flight at a time, and the merger does not wait for it: `send` sends it, `finish`
reads Redis's reply once the merger's poll finds it there, and what arrives meanwhile goes into the
next write. A write whose outcome is unknown (the connection broke after Redis ran the script, or
the reply did not come within the connection's timeout) is sent again unchanged; the script sees
that its checkpoint is already in place and writes nothing twice (`bus.streams`).

For the metrics, each committed write is counted once (not per entry): its size, how long it took
from its sending to its commit, and the receive-to-commit lag of the first event of its oldest
batch, whose ``ts_recv`` alone is read from its body (histograms of `bus.meter`). The commit time is
Redis's clock, returned by the script, bounded by the merger's clock when the reply was read.
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
class _Write:
    """A write: the first ``entries`` entries of the queue (``events`` events), packed."""

    command: bytes
    entries: int
    events: int
    first_ts: int | None  # the ``ts_recv`` of its first frame (the lag metric)
    sent_ns: int = 0  # when it was last sent, wall clock


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
        # The write sent and not known to be in Redis: in flight, or failed and to be sent again unchanged
        # (its write may have landed with only the reply lost; only the same checkpoint lets the script
        # recognise it). Its entries stay at the head of the queue until it lands.
        self._write: _Write | None = None
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

    @property
    def in_flight(self) -> bool:
        """A write was sent and its reply not read yet."""
        return self.writer.call.waiting

    def ready(self, now: float) -> bool:
        """Something to write, no write in flight and no back-off pending."""
        return bool(self.queue) and not self.in_flight and now >= self._retry_at

    def full(self) -> bool:
        """At least ``batch_size`` events wait to be sent (a backlog: no reason to wait for more)."""
        return self.events - (self._write.events if self._write is not None else 0) >= self.batch_size

    def wait_s(self, now: float) -> float | None:
        """How long until `ready`, unless something arrives first; None: only an arrival (an entry, a
        reply) makes it ready."""
        if not self.queue or self.in_flight:
            return None
        return max(0.0, self._retry_at - now)

    def send(self) -> bool:
        """Send the next write without waiting for Redis (`finish` reads its outcome); False if it
        could not be sent (the next attempt waits for the back-off)."""
        w = self._write
        if w is None:
            w = self._write = self._next_write()
        w.sent_ns = time.time_ns()
        try:
            self.writer.send(w.command)
        except redis.RedisError as e:
            self._failed(e)
            return False
        return True

    def finish(self) -> bool:
        """Read the outcome of the write in flight, waiting for it if it has not come; False if it
        failed (the same write is sent again after the back-off)."""
        try:
            n, commit_ns = self.writer.receive()
        except redis.RedisError as e:
            self._failed(e)
            return False
        self._done(n, commit_ns)
        return True

    def expire(self, now: float) -> None:
        """Give up on a reply that has not come within the connection's timeout: a failed write."""
        call = self.writer.call
        if call.waiting and call.timeout_s is not None and now - call.sent_at > call.timeout_s:
            call.abandon()
            self._failed(redis.TimeoutError(f"no reply from redis within {call.timeout_s:g} s"))

    def flush(self, now: float, budget_s: float) -> bool:
        """Write, waiting for each reply, until the outbox is empty, a write fails or ``budget_s`` is
        spent; False after a failure (the next attempt waits for the back-off). A write in flight
        is finished first."""
        deadline = now + budget_s
        if self.in_flight and not self.finish():
            return False
        while self.queue and now >= self._retry_at:
            if not (self.send() and self.finish()):
                return False
            now = time.monotonic()
            if now >= deadline:
                break
        return True

    def _next_write(self) -> _Write:
        """Whole batches from the head up to ``batch_size`` events (at least one), with the gap records
        of what was dropped since the last write ahead of them."""
        bodies = self._gap_entries() if self._dropped_ranges else []
        self._dropped_ranges.clear()  # they go with this write, which is sent until it lands
        last: dict[int, Entry] = {}  # shard -> its last entry here: the checkpoint
        events = entries = 0
        first: Entry | None = None  # the first frame, whose lag is counted
        for x in self.queue:
            if entries and events + x.events > self.batch_size:
                break
            entries += 1
            events += x.events
            if x.shard >= 0:
                last[x.shard] = x
                if x.end:
                    continue
                if first is None:
                    first = x
            bodies.append(x.body)
        checkpoint: list[str] = []
        for shard in sorted(last):
            x = last[shard]
            checkpoint += (str(shard), f"{x.epoch}:{x.seq}:end" if x.end else f"{x.epoch}:{x.seq}")
        ts = ts_recv(first.body) if first is not None else None
        return _Write(self.writer.command(bodies, checkpoint), entries, events, ts)

    def _done(self, n: int, commit_ns: int) -> None:
        """The write in flight is in Redis (``n`` < 0: it was already)."""
        w = self._write
        assert w is not None
        self._write = None
        for _ in range(w.entries):
            self.events -= self.queue.popleft().events
        # Redis's clock at the commit, bounded by ours when the reply was read (two hosts' clocks may differ)
        committed = min(commit_ns, time.time_ns())
        observe(self.write_ns, WRITE_BOUNDS_NS, max(0, committed - w.sent_ns))
        observe(self.batch_sizes, BATCH_BOUNDS, w.events)
        if w.first_ts is not None:
            observe(self.lag_ns, LATENCY_BOUNDS_NS, committed - w.first_ts)
        if n < 0:
            self.skipped_rewrites += 1
            log.warning("batch was already in redis (an earlier write's reply was lost); not written again",
                        entries=w.events)  # fmt: skip
        self.written += w.events
        self.batches += 1
        if not self.up:
            log.warning("redis reachable again; writing what was buffered",
                        outage_s=round(time.monotonic() - self._down_since, 1), buffered=len(self.queue),
                        dropped=self.dropped)  # fmt: skip
        self.up = True
        self._delay = 0.05
        self._retry_at = 0.0

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
        line per chunk, not per batch), remembering each shard's dropped range for the gaps stream. The
        entries of the write sent stay: it may have landed."""
        sent = [self.queue.popleft() for _ in range(self._write.entries)] if self._write is not None else []
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
        self.queue.extendleft(reversed(sent))
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
