"""A shard's bus publisher: a ZeroMQ XPUB socket, per-shard sequence numbers, a clean end.

XPUB rather than PUB so the shard can wait until the merger's subscription has arrived before it
publishes anything (PUB/SUB drops what is sent before a subscriber joins). Sends never block the
shard's event loop: past the high-water mark ZeroMQ drops, and the merger sees the hole in the
sequence and reports it.
"""

from __future__ import annotations

import random
import time

import zmq

from bus import wire
from ingest.events import Event

SEND_HWM = 1_000_000


class Publisher:
    def __init__(self, endpoint: str, shard: int, ctx: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        self.shard = shard
        self.epoch = random.getrandbits(32)
        self.seq = 0
        self._ctx = ctx or zmq.Context.instance()
        self._sock: zmq.Socket[bytes] = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint)
        self.endpoint = endpoint

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

    def publish(self, event: Event) -> None:
        topic, body = wire.encode(event)
        self.seq += 1
        self._sock.send_multipart((topic, wire.header(self.shard, self.epoch, self.seq), body))

    def close(self, linger_s: float) -> None:
        """Send the end marker, then close, giving ZeroMQ ``linger_s`` seconds to deliver."""
        self._sock.send_multipart(
            (wire.CONTROL_TOPIC, wire.header(self.shard, self.epoch, self.seq), wire.end_body(self.seq))
        )
        self._sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
        self._sock.close()
