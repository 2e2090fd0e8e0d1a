"""A shard's bus publisher: a ZeroMQ XPUB socket, per-shard batch numbers, a replay buffer, a clean end.

XPUB rather than PUB so the shard can wait until the merger's subscription has arrived before it
publishes anything (PUB/SUB drops what is sent before a subscriber joins), and so it knows who
listens. Sends never block the shard's event loop: past the high-water mark (or while no merger is
subscribed) ZeroMQ drops.

Batches: `publish` encodes the event into the open batch at once; the first event of a turn of the
shard's event loop (once `batch_sends` gave the publisher its loop) schedules `flush` (``call_soon``;
or, less than `FLUSH_GAP_S` after the last flush, at the end of that gap), which closes the batch,
numbers it (``seq``, per epoch), keeps it and sends it: ONE ZeroMQ message
for all the events of the turn (`bus.wire`: topic ``BATCH_TOPIC``), what the merger reads. A batch
also closes when it reaches `bus.wire.BATCH_MAX_EVENTS` events or `bus.wire.BATCH_MAX_BYTES` bytes
(a second one starts). Without a loop every `publish` sends a batch of one. `tick`, `send_end` and
`close` flush first, so control messages still follow every batch they count.

Live subscribers (`bus.consumer.live`, ``ingest tail``) get one message per event, with the event's
topic (so ZeroMQ's prefix filtering works) and the header of the batch that carries it. They are
sent only while some subscription other than the merger's (topics starting with ``\x00``) is
present: `drain_subscriptions` reads the XPUB socket's (un)subscribe notices (ZeroMQ reports a
topic's first subscribe and last unsubscribe, and unsubscribes a subscriber that disconnects). The
shard calls it every 20 ms (`shards.worker.REPAIR_POLL_S`), so a new subscriber starts receiving
within that; the events of a batch already open when it subscribed are not sent to it.

Nothing dropped on the way is lost: every batch is also kept in a bounded replay buffer (a deque of
``(seq, body, events)``, bounded by ``replay_buffer`` EVENTS: whole batches leave from the old end
while it holds more), and the shard answers the merger's repair requests on a ZeroMQ ROUTER socket
(`serve_repairs`, called from the shard's own loop, so the buffer has one owner and needs no lock),
at most `REPAIR_CHUNK` events (whole batches, at least one) per reply. Only a batch that fell out of
the buffer before the merger asked for it is gone, and the merger reports that as a counted hole
with its range.

For the metrics (`shards.telemetry` reads them once per report), ``meters`` counts what was published
per topic: ``[events, the exchange's latency histogram]``; the histogram (shared by an exchange's
topics) counts the exchange-to-receive delay (``ts_recv - ts_exchange``) of one event in
`LATENCY_SAMPLE` (of its topic) into `bus.meter.LATENCY_BOUNDS_NS` buckets. The meter is found by the same
lookup that finds the event's topic and key suffix; then a list increment per event, no lock, no allocation;
every event's latency would cost as much again.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from bisect import bisect_right
from collections import deque
from typing import Any, cast

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
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)  # plain ints: `int & zmq.POLLIN` would run enum.Flag's __rand__
_MAX_PARTS = 2 * wire.BATCH_MAX_EVENTS  # two parts per event in the open batch
_body = wire.body
REPAIR_CHUNK = 5_000  # events per repair reply at most (whole batches): a large hole takes several round trips
LATENCY_SAMPLE = 8  # one event in this many has its latency counted (a power of two)
# Least time between two batch sends. A shard fed smoothly turns its loop per frame or two; a batch
# (ZeroMQ send, the I/O thread's wake-up, the merger's read) per turn then costs more than the events.
# 0.5 ms with the merger's 2 ms `redis.batch_interval`: the best p99 of 0.5/1/2 ms x 1/2/3/5 ms at 10k
# and 20k msgs/s (ingest bench, interleaved), for about the CPU of 1 ms x 5 ms (see the commit).
FLUSH_GAP_S = 0.0005

Message = tuple[bytes, bytes, bytes]  # topic, header, body


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
        self.seq = 0  # the last batch's number
        self._closed_events = 0  # events in closed batches (`published` adds the open one's)
        self.end_acked = False
        self.repaired_frames = 0  # batches sent in repair replies
        self.live = False  # a subscriber other than the merger is present: send per-event messages too
        self._subscribed: set[bytes] = set()
        self._ended = False
        self._replay: deque[tuple[int, bytes, int]] = deque()
        self._replay_events = 0
        self._replay_limit = replay_buffer
        # the open batch: its parts (key suffix, body, ...; two per event), bytes, and the live messages' (topic, body)
        self._parts: list[bytes] = []
        self._open_bytes = 0
        self._live: list[tuple[bytes, bytes]] = []
        self._out: list[Message] = []  # closed, to send at the flush
        self._scheduled = False
        # topic -> [events, its exchange's latency histogram, the last event's ts_recv, topic, key suffix]
        self.meters: dict[bytes, list[Any]] = {}
        self._routes: dict[tuple[type, str, str], list[Any]] = {}  # (event type, exchange, symbol) -> its meter
        self.latency: dict[str, list[int]] = {}  # exchange -> latency bucket counts
        self._ctx = ctx or zmq.Context.instance()
        self._sock: zmq.Socket[bytes] = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, send_hwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint)
        self.endpoint = endpoint
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_flush = 0.0  # the loop's time before which a new batch waits (see FLUSH_GAP_S)
        self._repair: zmq.Socket[bytes] | None = None
        if repair_endpoint is not None:
            self._repair = self._ctx.socket(zmq.ROUTER)
            self._repair.setsockopt(zmq.LINGER, 0)
            self._repair.bind(repair_endpoint)

    # -- subscriptions ----------------------------------------------------------------------------

    def wait_for_subscriber(self, timeout: float, topic: bytes | None = None) -> bool:
        """Block until a subscription that receives ``topic`` is present (None: any subscription; the
        shard waits for `bus.wire.BATCH_TOPIC`, the merger's) (True), or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not self._receives(topic):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._sock.poll(int(left * 1000), zmq.POLLIN):
                self._note(self._sock.recv())
        return True

    def _receives(self, topic: bytes | None) -> bool:
        return bool(self._subscribed) if topic is None else any(topic.startswith(t) for t in self._subscribed)

    def drain_subscriptions(self) -> None:
        """Read pending (un)subscribe notices: per-event messages go out while a live subscriber is present."""
        sock = self._sock
        # What poll(0) asks, without the poll (a shard asks every 20 ms).
        while cast(int, sock.getsockopt(_EVENTS)) & _POLLIN:
            self._note(sock.recv())

    def _note(self, msg: bytes) -> None:
        if msg[:1] == b"\x01":
            self._subscribed.add(msg[1:])
        elif msg[:1] == b"\x00":
            self._subscribed.discard(msg[1:])
        self.live = any(not wire.is_internal(t) for t in self._subscribed)

    # -- publishing -------------------------------------------------------------------------------

    @property
    def published(self) -> int:
        """Events published (the open batch's too)."""
        return self._closed_events + len(self._parts) // 2

    def publish(self, event: Event) -> None:
        """Put ``event`` in the open batch; it goes out at the end of the loop turn (`batch_sends`), or now."""
        self.add(event)
        if self._scheduled:  # most events: the turn's flush is scheduled already
            return
        if self._loop is None:
            self.flush()
        else:
            self._scheduled = True
            wait = self._next_flush - self._loop.time()
            if wait > 0:  # sent less than FLUSH_GAP_S ago: this batch gathers until then
                self._loop.call_later(wait, self.flush)
            else:
                self._loop.call_soon(self.flush)

    def record(self, event: Event) -> Message | None:
        """Put ``event`` in the open batch, then close, number and keep that batch without sending it;
        returns it. (Tests use this to lose a batch on purpose; the merger repairs it.)"""
        self.add(event)
        return self._close_batch(send=False)

    def add(self, event: Event) -> None:
        """Put ``event`` in the open batch without scheduling a send: the next `flush` (or `publish`)
        sends it. A batch that reaches `bus.wire.BATCH_MAX_EVENTS` or `bus.wire.BATCH_MAX_BYTES` is
        closed and queued at once."""
        # One lookup finds the event's topic, key suffix and meter; the body is `wire.body` (`wire.encode`, apart).
        m = self._routes.get((type(event), event.exchange, event.symbol))
        if m is None:
            m = self._route(event)
        raw = _body(event)
        parts = self._parts
        parts += (m[4], raw)
        self._open_bytes += len(raw)
        if self.live:
            self._live.append((m[3], raw))
        n = m[0] = m[0] + 1
        m[2] = event.ts_recv
        if not n & (LATENCY_SAMPLE - 1) and (ts_exchange := getattr(event, "ts_exchange", 0)):
            m[1][bisect_right(LATENCY_BOUNDS_NS, event.ts_recv - ts_exchange)] += 1
        if len(parts) >= _MAX_PARTS or self._open_bytes >= wire.BATCH_MAX_BYTES:
            self._close_batch(send=True)

    def _close_batch(self, send: bool) -> Message | None:
        """Number and keep the open batch (and queue it and its live messages with ``send``)."""
        if not self._parts:
            return None
        self.seq += 1
        seq, events = self.seq, len(self._parts) // 2
        self._closed_events += events
        body = b",".join(self._parts)
        self._replay.append((seq, body, events))
        self._replay_events += events
        while self._replay_events > self._replay_limit and self._replay:
            self._replay_events -= self._replay.popleft()[2]
        msg = (wire.BATCH_TOPIC, wire.batch_header(self.shard, self.epoch, seq, events), body)
        if send:
            self._out.append(msg)
            if self._live:
                head = wire.header(self.shard, self.epoch, seq)
                self._out += [(topic, head, raw) for topic, raw in self._live]
        self._parts, self._open_bytes, self._live = [], 0, []
        return msg

    def _route(self, event: Event) -> list[Any]:
        """The meter of a kind of event not seen yet (its topic's, shared with the topic's other kinds)."""
        topic = wire.topic(event)
        m = self.meters.get(topic)
        if m is None:
            hist = self.latency.get(event.exchange)
            if hist is None:
                hist = self.latency[event.exchange] = new_histogram(LATENCY_BOUNDS_NS)
            m = self.meters[topic] = [0, hist, 0, topic, wire.key_suffix(topic)]
        self._routes[(type(event), event.exchange, event.symbol)] = m
        return m

    @property
    def replay_depth(self) -> int:
        """Events held for repairs now."""
        return self._replay_events

    def batch_sends(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on, send once per turn of ``loop`` (see the module docstring)."""
        self._loop = loop

    def flush(self) -> None:
        """Close the open batch and send what is queued (nothing if nothing is)."""
        self._scheduled = False
        if self._loop is not None:
            self._next_flush = self._loop.time() + FLUSH_GAP_S
        self._close_batch(send=True)
        if self._out:
            out, self._out = self._out, []
            if not self._sock.closed:  # published after close: nobody can take it any more
                self._send(out)

    def _send(self, messages: list[Message]) -> None:
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
            # Nearly always no request: none read, so no zmq.Again raised.
            if not cast(int, self._repair.getsockopt(_EVENTS)) & _POLLIN:
                return served
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
        found, cut = self.frames(first, last, REPAIR_CHUNK)
        covered_to = found[-1][0] if cut else min(last, self.seq)
        out = [wire.repair_reply(wire.REPLY_OK, rid, self.epoch, covered_to, self.seq)]
        for seq, body, events in found:
            out += (wire.BATCH_TOPIC, wire.batch_header(self.shard, self.epoch, seq, events), body)
        self.repaired_frames += len(found)
        return out

    def frames(self, first: int, last: int, limit: int) -> tuple[list[tuple[int, bytes, int]], bool]:
        """The kept batches with ``first <= seq <= last``, oldest first, as many whole batches as hold at
        most ``limit`` events (at least one); and whether that limit cut the list short."""
        buf = self._replay
        if not buf or first > last:
            return [], False
        start = max(0, first - buf[0][0])
        if start >= len(buf) or buf[start][0] != max(first, buf[0][0]):
            start = 0  # the numbering has gaps (only when a test skips seqs): scan from the oldest
        out: list[tuple[int, bytes, int]] = []
        events = 0
        for frame in itertools.islice(buf, start, None):
            if frame[0] < first:
                continue
            if frame[0] > last:
                break
            if out and events + frame[2] > limit:
                return out, True
            out.append(frame)
            events += frame[2]
        return out, False

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
