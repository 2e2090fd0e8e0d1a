"""The merger: subscribes to every shard, checks each shard's sequence, writes Redis Streams.

One process, one thread, no event loop: a poll loop that takes up to ``batch_size`` messages (or what
arrived within ``batch_interval``) and writes them with one script call (`bus.streams`).

Holes in a shard's sequence are detected and counted here (and logged with the missing range); a
new epoch from a shard means the shard restarted. On SIGTERM the merger drains: it keeps reading
until every shard it was told about has sent its end marker (or ``drain_timeout`` passes), writes
everything, then exits.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
import structlog
import zmq

from bus import wire
from bus.streams import StreamWriter
from ingest import logs
from ingest.errors import DecodeError

log = structlog.get_logger("merger")


@dataclass
class ShardTrack:
    epoch: int
    last_seq: int
    ended: bool = False


@dataclass
class MergerStats:
    received: int = 0
    written: int = 0
    batches: int = 0
    holes: int = 0
    missing: int = 0
    restarts_seen: int = 0
    bad_frames: int = 0
    redis_errors: int = 0
    shards: dict[int, ShardTrack] = field(default_factory=dict)

    def as_fields(self) -> list[str]:
        out = []
        for name in ("received", "written", "batches", "holes", "missing", "restarts_seen", "bad_frames"):
            out += [name, str(getattr(self, name))]
        out += ["redis_errors", str(self.redis_errors), "updated_ms", str(int(time.time() * 1000))]
        return out


class SequenceChecker:
    """Per-shard sequence bookkeeping (pure)."""

    def __init__(self, stats: MergerStats) -> None:
        self.stats = stats

    def see(self, shard: int, epoch: int, seq: int) -> tuple[int, int] | None:
        """Record a frame; return the missing range ``(first, last)`` if it reveals a hole."""
        track = self.stats.shards.get(shard)
        if track is None or track.epoch != epoch:
            if track is not None:
                self.stats.restarts_seen += 1
            self.stats.shards[shard] = ShardTrack(epoch, seq)
            return (1, seq - 1) if seq > 1 else None
        hole = None
        if seq > track.last_seq + 1:
            hole = (track.last_seq + 1, seq - 1)
        track.last_seq = max(track.last_seq, seq)
        return hole

    def end(self, shard: int, epoch: int, last_seq: int) -> tuple[int, int] | None:
        """Record a shard's end marker, which carries its last published sequence number; return
        the frames lost just before it, if any."""
        hole = self.see(shard, epoch, last_seq + 1)  # as if the marker were the next frame
        track = self.stats.shards[shard]
        track.last_seq = last_seq
        track.ended = True
        return hole


class Merger:
    def __init__(
        self,
        endpoints: Sequence[str],
        client: redis.Redis,
        prefix: str,
        maxlen: int,
        batch_size: int,
        batch_interval: float,
    ) -> None:
        self.prefix = prefix
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.client = client
        self.writer = StreamWriter(client, prefix, maxlen)
        self.stats = MergerStats()
        self.checker = SequenceChecker(self.stats)
        self.expected_shards = set(range(len(endpoints)))
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 1_000_000)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        for ep in endpoints:
            self.sock.connect(ep)
        self._keys: dict[bytes, str] = {}
        self._stop_requested = False

    def request_stop(self) -> None:
        self._stop_requested = True

    def run(self, drain_timeout: float) -> None:
        """Merge until asked to stop, then drain and return."""
        last_report = time.monotonic()
        drain_deadline: float | None = None
        while True:
            if self._stop_requested and drain_deadline is None:
                drain_deadline = time.monotonic() + drain_timeout
                log.info("draining", waiting_for=sorted(self._not_ended()))
            got = self.step()
            now = time.monotonic()
            if now - last_report > 5:
                last_report = now
                self._report()
            if drain_deadline is not None and got == 0 and (not self._not_ended() or now > drain_deadline):
                break
        self._report()
        if self._not_ended():
            log.warning("drain timed out", shards_not_ended=sorted(self._not_ended()))
        log.info("merger stopped", **{k: v for k, v in self.stats.__dict__.items() if k != "shards"})

    def _not_ended(self) -> set[int]:
        ended = {s for s, t in self.stats.shards.items() if t.ended}
        return self.expected_shards - ended

    def step(self) -> int:
        """Read one batch (waiting at most ``batch_interval`` for the first frame) and write it."""
        if not self.sock.poll(int(self.batch_interval * 1000) or 1, zmq.POLLIN):
            return 0
        entries: list[tuple[str, bytes]] = []
        marks: dict[int, str] = {}
        deadline = time.monotonic() + self.batch_interval
        while len(entries) < self.batch_size:
            try:
                topic, head, body = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                if time.monotonic() >= deadline or not self.sock.poll(1, zmq.POLLIN):
                    break
                continue
            except ValueError:
                self.stats.bad_frames += 1
                continue
            if not self._accept(topic, head, body, marks):
                continue
            entries.append((self._key(topic), body))
        if entries or marks:
            self._write(entries, marks)
        return len(entries)

    def _accept(self, topic: bytes, head: bytes, body: bytes, marks: dict[int, str]) -> bool:
        try:
            shard, epoch, seq = wire.parse_header(head)
        except DecodeError:
            self.stats.bad_frames += 1
            return False
        if topic == wire.CONTROL_TOPIC:
            self._count_hole(shard, epoch, self.checker.end(shard, epoch, seq))
            log.info("shard ended", shard=shard, last_seq=seq)
            return False
        self._count_hole(shard, epoch, self.checker.see(shard, epoch, seq))
        self.stats.received += 1
        marks[shard] = f"{epoch}:{seq}"
        return True

    def _count_hole(self, shard: int, epoch: int, hole: tuple[int, int] | None) -> None:
        if hole is not None:
            self.stats.holes += 1
            self.stats.missing += hole[1] - hole[0] + 1
            log.warning("bus hole", shard=shard, epoch=epoch, missing_from=hole[0], missing_to=hole[1])

    def _key(self, topic: bytes) -> str:
        key = self._keys.get(topic)
        if key is None:
            key = self._keys[topic] = wire.stream_key(self.prefix, topic)
        return key

    def _write(self, entries: list[tuple[str, bytes]], marks: dict[int, str]) -> None:
        checkpoint = [x for shard, mark in sorted(marks.items()) for x in (str(shard), mark)]
        delay = 0.05
        while True:
            try:
                self.stats.written += self.writer.write(entries, checkpoint)
                self.stats.batches += 1
                return
            except redis.RedisError as e:
                self.stats.redis_errors += 1
                log.warning("redis write failed, retrying", error=str(e), entries=len(entries), delay=delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _report(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.hset(f"{self.prefix}:merger", mapping=dict(_pairs(self.stats.as_fields())))


def _pairs(flat: list[str]) -> list[tuple[str, str]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


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
) -> None:
    """Process entry point: merge until SIGTERM, then drain."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    logs.configure(log_level, log_format, process="merger")
    client = redis.Redis.from_url(redis_url)
    merger = Merger(endpoints, client, prefix, maxlen, batch_size, batch_interval)
    signal.signal(signal.SIGTERM, lambda *_: merger.request_stop())
    merger.run(drain_timeout)
