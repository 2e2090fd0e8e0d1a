"""A shard's bus publisher: a ZeroMQ XPUB socket, per-shard sequence numbers, a replay buffer, a clean end.

XPUB rather than PUB so the shard can wait until the merger's subscription has arrived before it
publishes anything (PUB/SUB drops what is sent before a subscriber joins). Sends never block the
shard's event loop: past the high-water mark (or while no merger is subscribed) ZeroMQ drops.

Sends, once `batch_sends` gave the publisher its event loop, are made once per turn of that loop:
`publish` numbers and keeps the frame at once and queues its three ZeroMQ frames; the first frame
queued in a turn schedules `flush` (``call_soon``), which sends them all, in order. Still one ZeroMQ
message per event (subscribers' topic filtering is unchanged); what changes is that the ZeroMQ I/O
thread is woken once per burst instead of once per message (one frame per message in a quiet loop
costs ~10 us of wake-ups on this machine; back to back, ~1 us). A frame waits for the end of its
turn, that is until the shard's loop has handled what it read from its sockets. `tick`, `send_end`
and `close` flush first, so control messages still follow every frame they count.

Nothing dropped that way is lost: every frame is also kept in a bounded replay buffer (a deque of
``(seq, topic, body)``, one append per frame), and the shard answers the merger's repair requests
on a ZeroMQ ROUTER socket (`serve_repairs`, called from the shard's own loop, so the buffer has one
owner and needs no lock). Only a frame that fell out of the buffer before the merger asked for it is
gone, and the merger reports that as a counted hole with its range.

For the metrics (`shards.telemetry` reads them once per report), ``meters`` counts what was published
per topic: ``[events, the exchange's latency histogram]``; the histogram (shared by an exchange's
topics) counts the exchange-to-receive delay (``ts_recv - ts_exchange``) of one event in
`LATENCY_SAMPLE` into `bus.meter.LATENCY_BOUNDS_NS` buckets. A dict lookup and a list increment per event (about
0.2 us here), no lock, no allocation; every event's latency would cost as much again.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from bisect import bisect_right
from collections import deque
from typing import Any

import zmq

from bus import wire
from bus.meter import LATENCY_BOUNDS_NS, new_histogram
from ingest.errors import DecodeError
from ingest.events import Event

SEND_HWM = 1_000_000
# pyzmq's compiled send, under the Python `zmq.Socket.send` (which only adds the DRAFT routing_id and
# group options): calling it directly saves ~0.8 us of the ~1.9 us three frames cost.
_SEND = zmq.backend.Socket.send
_MORE = zmq.SNDMORE
REPAIR_CHUNK = 5_000  # frames per repair reply at most: a large hole is fetched in several round trips
LATENCY_SAMPLE = 8  # one event in this many has its latency counted (a power of two)


class Publisher:
    def __init__(
        self,
        endpoint: str,
        shard: int,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
        *,
        repair_endpoint: str | None = None,
        replay_buffer: int = 200_000,
        send_hwm: int = SEND_HWM,
    ) -> None:
        self.shard = shard
        self.epoch = random.getrandbits(32)
        self.seq = 0
        self.end_acked = False
        self.repaired_frames = 0
        self._ended = False
        self._replay: deque[tuple[int, bytes, bytes]] = deque(maxlen=replay_buffer)
        # topic -> [events, its exchange's latency histogram, the last event's ts_recv]
        self.meters: dict[bytes, list[Any]] = {}
        self.latency: dict[str, list[int]] = {}  # exchange -> latency bucket counts
        self._ctx = ctx or zmq.Context.instance()
        self._sock: zmq.Socket[bytes] = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, send_hwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint)
        self.endpoint = endpoint
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[bytes, bytes, bytes]] = []  # queued for this loop turn's flush
        self._repair: zmq.Socket[bytes] | None = None
        if repair_endpoint is not None:
            self._repair = self._ctx.socket(zmq.ROUTER)
            self._repair.setsockopt(zmq.LINGER, 0)
            self._repair.bind(repair_endpoint)

    def wait_for_subscriber(self, timeout: float) -> bool:
        """Block until a subscription message arrives (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self._sock.poll(int(left * 1000), zmq.POLLIN):
                msg = self._sock.recv()
                if msg[:1] == b"\x01":
                    return True
        return False

    def drain_subscriptions(self) -> None:
        """Consume pending (un)subscribe notices so they do not pile up in the socket."""
        while self._sock.poll(0, zmq.POLLIN):
            self._sock.recv()

    def record(self, event: Event) -> tuple[bytes, bytes, bytes]:
        """Number ``event`` and keep it in the replay buffer without sending it; returns its three
        frames. `publish` is record + send (tests use this alone to lose a frame on purpose)."""
        topic, raw = wire.encode(event)
        # A compact copy (~0.2 us): orjson's result keeps its ~4 KiB working buffer allocated, so
        # 200k kept frames would hold ~850 MB instead of ~100 MB.
        body = bytes(memoryview(raw))
        self.seq += 1
        self._replay.append((self.seq, topic, body))
        m = self.meters.get(topic)
        if m is None:
            m = self._meter(topic, event.exchange)
        m[0] += 1
        m[2] = event.ts_recv
        if not self.seq & (LATENCY_SAMPLE - 1) and (ts_exchange := getattr(event, "ts_exchange", 0)):
            m[1][bisect_right(LATENCY_BOUNDS_NS, event.ts_recv - ts_exchange)] += 1
        return topic, wire.header(self.shard, self.epoch, self.seq), body

    def _meter(self, topic: bytes, exchange: str) -> list[Any]:
        hist = self.latency.get(exchange)
        if hist is None:
            hist = self.latency[exchange] = new_histogram(LATENCY_BOUNDS_NS)
        m = self.meters[topic] = [0, hist, 0]
        return m

    @property
    def replay_depth(self) -> int:
        """Frames held for repairs now."""
        return len(self._replay)

    def publish(self, event: Event) -> None:
        """Number and keep ``event``, and send it (now, or at the end of the loop turn: `batch_sends`)."""
        frames = self.record(event)
        if self._loop is None:
            self._send([frames])
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(frames)

    def batch_sends(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on, send once per turn of ``loop`` (see the module docstring)."""
        self._loop = loop

    def flush(self) -> None:
        """Send what `publish` queued (nothing if nothing is)."""
        if self._pending:
            pending, self._pending = self._pending, []
            if not self._sock.closed:  # published after close: nobody can take it any more
                self._send(pending)

    def _send(self, messages: list[tuple[bytes, bytes, bytes]]) -> None:
        # Three plain sends: send_multipart's per-part checks cost twice the sends themselves.
        sock = self._sock
        for topic, head, body in messages:
            _SEND(sock, topic, _MORE)
            _SEND(sock, head, _MORE)
            _SEND(sock, body)

    def tick(self) -> None:
        """A control frame carrying the last seq: lets the merger see a hole at the tail of an idle shard."""
        self.flush()
        self._sock.send_multipart((wire.CONTROL_TOPIC, wire.header(self.shard, self.epoch, self.seq),
                                   wire.tick_body(self.seq)))  # fmt: skip

    # -- repairs --------------------------------------------------------------------------------

    def serve_repairs(self) -> int:
        """Answer every pending repair request without blocking; returns how many were answered."""
        if self._repair is None:
            return 0
        served = 0
        while True:
            try:
                ident, raw = self._repair.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return served
            except ValueError:  # not [identity, request]: ignore it
                continue
            try:
                kind, rid, epoch, first, last = wire.parse_repair_request(raw)
            except DecodeError:
                continue
            served += 1
            if kind == wire.ACK_END:
                self.end_acked = True
                continue
            self._repair.send_multipart([ident, *self._answer(rid, epoch, first, last)])

    def _answer(self, rid: int, epoch: int, first: int, last: int) -> list[bytes]:
        if epoch != self.epoch:
            return [wire.repair_reply(wire.REPLY_OTHER_EPOCH, rid, self.epoch, 0, self.seq)]
        found = self.frames(first, last, REPAIR_CHUNK)
        covered_to = found[-1][0] if len(found) >= REPAIR_CHUNK else min(last, self.seq)
        out = [wire.repair_reply(wire.REPLY_OK, rid, self.epoch, covered_to, self.seq)]
        for seq, topic, body in found:
            out += (topic, wire.header(self.shard, self.epoch, seq), body)
        self.repaired_frames += len(found)
        return out

    def frames(self, first: int, last: int, limit: int) -> list[tuple[int, bytes, bytes]]:
        """The kept frames with ``first <= seq <= last``, oldest first, at most ``limit``."""
        buf = self._replay
        if not buf or first > last:
            return []
        start = max(0, first - buf[0][0])
        if start >= len(buf) or buf[start][0] != max(first, buf[0][0]):
            start = 0  # the numbering has gaps (only when a test skips seqs): scan from the oldest
        out: list[tuple[int, bytes, bytes]] = []
        for frame in itertools.islice(buf, start, None):
            if frame[0] < first:
                continue
            if frame[0] > last or len(out) >= limit:
                break
            out.append(frame)
        return out

    # -- the end ----------------------------------------------------------------------------------

    def send_end(self) -> None:
        """Send the end marker (the merger then asks for anything it missed and acknowledges)."""
        self.flush()
        if not self._ended:
            self._ended = True
            self._sock.send_multipart(
                (wire.CONTROL_TOPIC, wire.header(self.shard, self.epoch, self.seq), wire.end_body(self.seq))
            )

    def close(self, linger_s: float) -> None:
        """Send the end marker (if not sent yet), then close, giving ZeroMQ ``linger_s`` seconds to deliver."""
        self.send_end()
        self._sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
        self._sock.close()
        if self._repair is not None:
            self._repair.close()
