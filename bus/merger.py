"""The merger: subscribes to every shard, checks each shard's sequence, repairs holes, writes Redis Streams.

One process, one thread, no event loop: a poll loop over the bus (SUB) and one repair socket per
shard (DEALER), see `bus.sequencer` for the per-shard rules and `bus.outbox` for the writes. It
subscribes to the shards' batches and control messages only (topics starting with ``\x00``,
`bus.wire`), so a shard sends its per-event messages only while some live subscriber wants them.
A frame here is a batch: the sequence numbers, holes, repairs and checkpoint count batches.

- A hole in a shard's sequence is asked of the shard's replay buffer (`bus.repair`); the shard's
  later frames wait behind it, so Redis gets every frame once and in the shard's order. What the
  shard no longer has is a counted, logged gap (``lost``/``gaps`` in ``{prefix}:merger``, and an
  entry in ``{prefix}:gaps``).
- On start the merger reads ``{prefix}:checkpoint`` (committed with the entries it covers) and asks
  each shard for everything after its checkpointed seq; live frames up to it are duplicates. So a
  merger killed at any point and started again loses nothing and writes nothing twice, as long as
  the shards still hold the frames (``cluster.replay_buffer``).
- While Redis is down the merger keeps reading and buffering (``redis.outage_buffer`` entries).
- It beats a heartbeat from the poll loop, so the parent can tell a hung merger from a busy one.
- Batching without a fixed wait: after a quiet spell an event is written as soon as it is read;
  on a busy bus writes are at least ``batch_interval`` apart (what comes sooner after a write waits
  out the rest of the interval, then the merger reads whatever the bus holds), so a write carries
  what arrived since the last one and a partial batch waits at most ``batch_interval``.
  ``batch_size`` (events) bounds one write.

On SIGTERM the merger drains: it keeps reading until every shard it was told about has sent its end
marker and every frame up to it is accounted for (or ``drain_timeout`` passes), writes everything,
then exits.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import redis
import structlog
import zmq

from bus import wire
from bus.outbox import Entry, Outbox, gap_body
from bus.repair import RepairClient
from bus.report import Reporter, usage
from bus.sched import batch_io_threads
from bus.sequencer import Effects, Sequencer
from bus.streams import StreamWriter, entry, read_checkpoint
from ingest import logs
from ingest.errors import DecodeError

log = structlog.get_logger("merger")

# pyzmq's constants are IntFlag members: ``int & zmq.POLLIN`` runs enum.Flag's Python __rand__. Plain ints.
_EVENTS, _POLLIN, _NOBLOCK = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.NOBLOCK)

REPORT_EVERY_S = 5.0
REPAIR_TIMEOUT_S = 3.0
REPAIR_ATTEMPTS = 3
# The longest wait for the bus: beats, reports, repair deadlines and a requested stop are looked at
# least this often on a quiet bus.
IDLE_POLL_S = 0.05


@dataclass
class MergerStats:
    """Counters in events: received, written, dropped, buffered. In bus batches (the unit of the
    sequence numbers): batches (Redis writes, not bus batches), holes, missing, repaired, lost, gaps
    (gap records), duplicates, bad_frames."""

    received: int = 0
    written: int = 0
    batches: int = 0
    holes: int = 0
    missing: int = 0
    repaired: int = 0
    lost: int = 0
    gaps: int = 0
    duplicates: int = 0
    restarts_seen: int = 0
    unended_epochs: int = 0
    bad_frames: int = 0
    redis_errors: int = 0
    redis_outages: int = 0
    dropped: int = 0
    buffered: int = 0
    repair_requests: int = 0
    repair_timeouts: int = 0
    redis_state: str = "up"

    def as_dict(self) -> dict[str, str]:
        out = {f.name: str(getattr(self, f.name)) for f in fields(self)}
        out["updated_ms"] = str(int(time.time() * 1000))
        return out


class Merger:
    def __init__(
        self,
        endpoints: Sequence[str],
        client: redis.Redis,
        prefix: str,
        maxlen: int,
        batch_size: int,
        batch_interval: float,
        *,
        repair_endpoints: Sequence[str] = (),
        outage_buffer: int = 1_000_000,
        repair_timeout: float = REPAIR_TIMEOUT_S,
        beat: Callable[[], None] | None = None,
        beat_interval: float = 1.0,
        reporter: Reporter | None = None,
    ) -> None:
        """``reporter``: where the merger's report (`report`) goes every metrics interval."""
        self.prefix = prefix
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.client = client
        self.outbox = Outbox(StreamWriter(client, prefix, maxlen), batch_size, outage_buffer)
        self._stats = MergerStats()  # the outbox's counters are copied in when read (`stats`)
        self.sequencer = Sequencer()
        self.expected_shards = set(range(len(endpoints)))
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 1_000_000)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, wire.INTERNAL)  # batches and control messages, no per-event ones
        for ep in endpoints:
            self.sock.connect(ep)
        self.repair = RepairClient(repair_endpoints, ctx, repair_timeout, REPAIR_ATTEMPTS)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        for s in self.repair.socks:
            self.poller.register(s, zmq.POLLIN)
        self._stop_requested = False
        self._beat = beat
        self._beat_interval = beat_interval
        self._last_beat = 0.0
        self._next_write = 0.0  # a write before this waits (see `step`)
        self._resume_errors = 0
        self._unwritten = 0
        self.reporter = reporter

    @property
    def stats(self) -> MergerStats:
        """The counters, the outbox's and the repair client's included, as of now."""
        self._sync_outbox_stats()
        return self._stats

    def request_stop(self) -> None:
        self._stop_requested = True

    # -- the loop -------------------------------------------------------------------------------

    def run(self, drain_timeout: float) -> None:
        """Resume from the checkpoint, merge until asked to stop, then drain and return."""
        if not self.resume():
            return
        last_report = time.monotonic()
        drain_deadline: float | None = None
        while True:
            if self._stop_requested and drain_deadline is None:
                drain_deadline = time.monotonic() + drain_timeout
                log.info("draining", waiting_for=sorted(self._not_ended()), buffered=self.outbox.events)
            got = self.step()
            now = time.monotonic()
            if now - last_report > REPORT_EVERY_S:
                last_report = now
                self._report()
            if drain_deadline is not None and got == 0:
                if not self._not_ended() and not self.outbox.queue:
                    break
                if now > drain_deadline:
                    self._give_up_drain()
                    break
        self._report()
        stats = self.stats
        log.info("merger stopped", **{f.name: getattr(stats, f.name) for f in fields(stats)})
        self.outbox.writer.close()  # its own connection (`bus.rediscall`); the client's pool is the caller's

    def resume(self) -> bool:
        """Read the checkpoint (retrying while Redis is unreachable) and ask each shard for what
        follows it. False if a stop was requested before Redis could be read."""
        delay = 0.05
        logged = False
        while True:
            self.beat()
            try:
                checkpoint = read_checkpoint(self.client, self.prefix)
                break
            except redis.RedisError as e:
                self._resume_errors += 1
                if not logged:
                    logged = True
                    log.error("redis unreachable at start; waiting for it to read the checkpoint", error=str(e))
                if self._stop_requested:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        fx = Effects()
        for shard, (epoch, seq, ended) in sorted(checkpoint.items()):
            if shard in self.expected_shards and not ended:  # an ended shard's epoch owes nothing
                self.sequencer.resume(shard, epoch, seq, fx)
        if checkpoint:
            shown = {s: f"{e}:{q}{':end' if x else ''}" for s, (e, q, x) in checkpoint.items()}
            log.info("resuming from checkpoint", checkpoint=shown)
        self._apply(fx)
        return True

    def beat(self) -> None:
        now = time.monotonic()
        if self._beat is not None and now - self._last_beat >= self._beat_interval:
            self._last_beat = now
            self._beat()
        if self.reporter is not None and self.reporter.due(now):
            self.reporter.send(self.report())

    def report(self) -> dict[str, Any]:
        """The merger's report to the parent's metrics endpoint: its counters and its outbox's histograms."""
        ob, stats = self.outbox, self.stats
        return {"kind": "merger", "name": "merger", **usage(),
                "stats": {f.name: getattr(stats, f.name) for f in fields(stats)},
                "batch_sizes": ob.batch_sizes, "write_ns": ob.write_ns, "lag_ns": ob.lag_ns}  # fmt: skip

    def step(self) -> int:
        """Wait for batches or answers, take them in, write what is ready; returns the number of
        events read off the bus. Batches that come less than ``batch_interval`` after a write wait
        out the rest of that interval before they are read, so a busy bus gathers one write's worth
        per wake instead of waking (and writing) per shard message; after a quiet spell an event is
        written at once. The wait for the bus comes first: a sleep that ends on an empty bus would be
        a wake-up for nothing (on a VM, a timer's wake-up costs several times one the data causes)."""
        self.beat()
        now = time.monotonic()
        timeout = IDLE_POLL_S
        if self.outbox.queue:
            timeout = min(timeout, max(self._next_write - now, self.outbox.wait_s(now)))
        events = dict(self.poller.poll(max(1, int(timeout * 1000))))
        bus = self.sock in events
        if bus and (hold := self._next_write - time.monotonic()) > 0:
            time.sleep(hold)
        got = self._read_bus() if bus else 0
        now = time.monotonic()
        if len(events) > bus or self.repair.pending:  # repair answers, or requests waiting for one
            self._repairs(events, now)
        if self.outbox.ready(now):
            self.outbox.flush(now, budget_s=0.02)
            self._next_write = now + self.batch_interval
        return got

    def _repairs(self, events: dict[Any, int], now: float) -> None:
        """Take in the shards' repair answers, and give up on requests that went unanswered."""
        fx = Effects()
        for shard, s in enumerate(self.repair.socks):
            if s in events:
                for a in self.repair.answers(shard):
                    if a.status == wire.REPLY_OK:
                        self._stats.repaired += sum(1 for f in a.frames if f[0] >= a.first)
                        self.sequencer.repaired(shard, a.epoch, a.first, a.covered_to, a.last_published, a.frames, fx)
                    else:
                        self.sequencer.other_epoch(shard, a.epoch, fx)
        for shard in self.repair.expired(now):
            self.sequencer.give_up(shard, "the shard did not answer the repair request", fx)
        self._apply(fx)

    def _read_bus(self) -> int:
        """What the bus has now, up to a few writes' worth of events, without waiting; returns the
        events read. (Waiting up to ``batch_interval`` for a write to fill, as this did, added ~2-3 ms
        at the median; writes are synchronous, so what arrives during one is the next one's batch.)"""
        fx = Effects()
        n = 0
        limit = self.batch_size * (10 if self.outbox.queue else 1)
        recv = self.sock.recv
        batch_head, control_head = wire.BATCH_HEADER.size, wire.HEADER.size
        sockopt: Callable[[int], int] = self.sock.getsockopt  # type: ignore[assignment]  # (of _EVENTS: an int)
        while n < limit:
            # Three plain recvs, not recv_multipart: its RCVMORE checks cost 7 times the reads
            # (a getsockopt each). A message that is not (topic, header, body) of a batch or a
            # control message is counted and skipped to its end; only the shards publish here.
            # Whether one is there is asked first: a recv that finds nothing raises zmq.Again, whose
            # Python-level construction cost more than the batch it ended (one per wake at 10k msgs/s).
            if not sockopt(_EVENTS) & _POLLIN:  # nothing more now: write what there is (natural batching)
                break
            try:
                topic = recv(_NOBLOCK)
            except zmq.Again:
                break
            try:
                head, body = recv(_NOBLOCK), recv(_NOBLOCK)
            except zmq.Again:  # fewer than three frames, and nothing after them
                self._stats.bad_frames += 1
                continue
            if topic == wire.BATCH_TOPIC and len(head) == batch_head and body[:1] == b'"':
                shard, epoch, seq, events = wire.BATCH_HEADER.unpack(head)
                n += events
                self.sequencer.frame(shard, epoch, seq, (events, body), fx)
                continue
            if topic != wire.CONTROL_TOPIC or len(head) != control_head or body[:2] != b'["':
                self._stats.bad_frames += 1
                while self.sock.getsockopt(zmq.RCVMORE):
                    recv()
                continue
            try:
                shard, epoch, seq = wire.parse_header(head)
                self.sequencer.control(shard, epoch, wire.control_kind(body), seq, fx)
            except DecodeError:
                self._stats.bad_frames += 1
        self._stats.received += n
        self._apply(fx)
        return n

    # -- carrying out the sequencer's effects -------------------------------------------------

    def _apply(self, fx: Effects) -> None:
        st = self._stats
        for shard, old_epoch, last, ended in fx.restarts:
            st.restarts_seen += 1
            if (ask := self.repair.pending.get(shard)) is not None and ask.epoch == old_epoch:
                self.repair.cancel(shard)
            if not ended:
                st.unended_epochs += 1
                log.warning("shard restarted without an end marker; what it published after the last frame "
                            "seen was lost with it", shard=shard, old_epoch=old_epoch, last_seen=last)  # fmt: skip
        for shard, epoch, seq, (events, body) in fx.accept:
            self.outbox.add(Entry(body, shard, epoch, seq, events))
        for gap in fx.lost:
            st.gaps += 1
            st.lost += gap.count
            log.error("bus batches lost", shard=gap.shard, epoch=gap.epoch, lost_from=gap.first, lost_to=gap.last,
                      count=gap.count, reason=gap.reason)  # fmt: skip
            body = gap_body(gap.shard, gap.epoch, gap.first, gap.last, gap.count, gap.reason, None)
            self.outbox.add(Entry(entry(self.outbox.gaps_suffix, body), -1, gap.epoch, 0))
        unreachable: Effects | None = None
        now = time.monotonic() if fx.ask else 0.0
        for shard, epoch, first, last in fx.ask:
            if last != wire.UNBOUNDED:
                log.warning("bus hole; asking the shard", shard=shard, epoch=epoch, missing_from=first,
                            missing_to=last)  # fmt: skip
            if shard < len(self.repair.socks):
                self.repair.ask(shard, epoch, first, last, now)
            else:  # no repair channel to this shard (a merger built without one)
                unreachable = unreachable or Effects()
                self.sequencer.give_up(shard, "no repair channel to the shard", unreachable)
        for shard, epoch in fx.finished:
            self.outbox.add(Entry(b"", shard, epoch, self.sequencer.tracks[shard].last, end=True))
            self.repair.ack_end(shard, epoch)
            log.info("shard ended", shard=shard, last_seq=self.sequencer.tracks[shard].last)
        st.holes += fx.holes
        st.missing += fx.missing
        st.duplicates += fx.duplicates
        if unreachable is not None:
            self._apply(unreachable)

    def _give_up_drain(self) -> None:
        """The drain deadline passed: what is still owed is reported lost; one last write attempt."""
        fx = Effects()
        for shard in list(self.sequencer.tracks):
            self.repair.cancel(shard)
            self.sequencer.give_up(shard, "the drain timed out", fx, ask=False)
        fx.ask.clear()
        self._apply(fx)
        self.outbox.flush(time.monotonic() + 3600, budget_s=5.0)  # ignore any back-off: this is the last chance
        log.warning("drain timed out", shards_not_ended=sorted(self._not_ended()), unwritten=self.outbox.events)
        if self.outbox.queue:
            self._unwritten = sum(e.events for e in self.outbox.queue if e.is_frame)
            log.error("entries never written: redis unreachable until the drain deadline",
                      events=self._unwritten)  # fmt: skip

    def _not_ended(self) -> set[int]:
        return {s for s in self.expected_shards if not self.sequencer.finished(s)}

    def _sync_outbox_stats(self) -> None:
        st, ob = self._stats, self.outbox
        st.written, st.batches, st.redis_errors = ob.written, ob.batches, ob.errors + self._resume_errors
        st.dropped = ob.dropped + self._unwritten
        st.buffered = ob.events
        st.redis_outages = ob.outages
        st.redis_state = "up" if ob.up else "down"
        st.repair_requests, st.repair_timeouts = self.repair.requests, self.repair.timeouts

    def _report(self) -> None:
        if not self.outbox.up:
            return
        with contextlib.suppress(redis.RedisError):
            self.client.hset(f"{self.prefix}:merger", mapping=self.stats.as_dict())  # type: ignore[arg-type]


def run_merger(
    endpoints: Sequence[str],
    redis_url: str,
    prefix: str,
    maxlen: int,
    batch_size: int,
    batch_interval: float,
    drain_timeout: float,
    log_level: str = "info",
    log_format: str = "auto",
    repair_endpoints: Sequence[str] = (),
    outage_buffer: int = 1_000_000,
    heartbeat: Any = None,
    heartbeat_interval: float = 1.0,
    telemetry_endpoint: str | None = None,
    telemetry_interval: float = 1.0,
) -> None:
    """Process entry point: merge until SIGTERM, then drain. ``heartbeat`` has a ``beat()`` method;
    reports go to ``telemetry_endpoint`` (if any) every ``telemetry_interval`` seconds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    logs.configure(log_level, log_format, process="merger")
    batch_io_threads(zmq.Context.instance())  # before the first socket starts them
    # Timeouts: a Redis that hangs must not hang the merger (which would stop reading and beating).
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
    merger = Merger(
        endpoints, client, prefix, maxlen, batch_size, batch_interval,
        repair_endpoints=repair_endpoints, outage_buffer=outage_buffer,
        beat=heartbeat.beat if heartbeat is not None else None, beat_interval=heartbeat_interval / 2,
        reporter=Reporter(telemetry_endpoint, telemetry_interval) if telemetry_endpoint else None,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: merger.request_stop())
    merger.run(drain_timeout)
    if merger.reporter is not None:
        merger.reporter.send(merger.report())  # the final counters
        merger.reporter.close()
