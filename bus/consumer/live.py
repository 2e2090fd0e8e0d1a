"""Live events from the bus: a blocking iterator (`subscribe`) and an async one (`asubscribe`).

Each shard publishes on its own endpoint (`bus.consumer.endpoints` reads them from a settings file); a
subscription connects to all of them and filters by topic prefix (``trade.``, ``book.binance.``,
``bar.okx.BTC-USDT``; ZeroMQ filters on the publisher's side). Bodies are decoded to the canonical
events (`ingest.events`); the merger's batches and control frames are skipped; a body that does not
decode is counted in ``undecodable`` and skipped, never raised into the caller's loop.
``last_header`` is the (shard, epoch, seq) of the batch that carried the last event.

The bus is live: a shard sends per-event messages only while a subscriber other than the merger is
connected, and notices a new one within a few milliseconds (`shards.worker` reads the subscriptions
every `shards.worker.REPAIR_POLL_S`), so a subscriber sees events from shortly after it connects
(the events of the loop turn under way are not sent to it). A subscriber too slow to keep up loses
events at ZeroMQ's high-water mark. What needs every event reads the Redis streams
(`bus.consumer.streams`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import zmq
import zmq.asyncio

from bus import wire
from ingest.errors import DecodeError
from ingest.events import Event

RCVHWM = 1_000_000


def _topics(prefixes: Iterable[str]) -> list[bytes]:
    out = [p.encode() for p in prefixes]
    return out or [b""]


class _Base:
    def __init__(self, sock: Any, eps: Sequence[str], prefixes: Iterable[str]) -> None:
        self._sock: Any = sock  # a zmq.Socket or a zmq.asyncio.Socket
        sock.setsockopt(zmq.RCVHWM, RCVHWM)
        sock.setsockopt(zmq.LINGER, 0)
        for ep in eps:
            sock.connect(ep)
        for t in _topics(prefixes):
            sock.setsockopt(zmq.SUBSCRIBE, t)
        self.received = 0
        self.undecodable = 0
        self.last_header: tuple[int, int, int] | None = None  # (shard, epoch, seq) of the last event

    def _decode(self, frames: list[bytes]) -> Event | None:
        if len(frames) != 3 or wire.is_internal(frames[0]):  # a batch (for the merger) or a control message
            return None
        try:
            header = wire.parse_header(frames[1])
            event = wire.decode(frames[2])
        except DecodeError:
            self.undecodable += 1
            return None
        self.last_header = header
        self.received += 1
        return event

    def close(self) -> None:
        self._sock.close()


class Subscription(_Base):
    """Blocking subscription: ``for event in subscription`` yields events forever; `receive` waits
    at most ``timeout`` seconds. Use it as a context manager, or call `close`."""

    def __init__(
        self, eps: Sequence[str], prefixes: Iterable[str] = (), ctx: zmq.Context[zmq.Socket[bytes]] | None = None
    ) -> None:
        super().__init__((ctx or zmq.Context.instance()).socket(zmq.SUB), eps, prefixes)

    def receive(self, timeout: float | None = None) -> Event | None:
        """The next event, or None if ``timeout`` seconds pass first (None: wait for ever)."""
        while True:
            if timeout is not None and not self._sock.poll(int(timeout * 1000), zmq.POLLIN):
                return None
            event = self._decode(self._sock.recv_multipart())
            if event is not None:
                return event

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event = self.receive()
        assert event is not None
        return event

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncSubscription(_Base):
    """Asyncio subscription: ``async for event in subscription``; ``await receive(timeout)``."""

    def __init__(
        self, eps: Sequence[str], prefixes: Iterable[str] = (), ctx: zmq.asyncio.Context | None = None
    ) -> None:
        super().__init__((ctx or zmq.asyncio.Context.instance()).socket(zmq.SUB), eps, prefixes)

    async def receive(self, timeout: float | None = None) -> Event | None:
        while True:
            if timeout is not None and not await self._sock.poll(int(timeout * 1000), zmq.POLLIN):
                return None
            event = self._decode(await self._sock.recv_multipart())
            if event is not None:
                return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self.receive()
        assert event is not None
        return event

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def subscribe(eps: str | Sequence[str], *prefixes: str) -> Subscription:
    """Events on the bus whose topic starts with one of ``prefixes`` (none: every event), e.g.
    ``subscribe(endpoints(), "trade.binance.")``; ``eps``: an endpoint or a list of them."""
    return Subscription([eps] if isinstance(eps, str) else eps, prefixes)


def asubscribe(eps: str | Sequence[str], *prefixes: str) -> AsyncSubscription:
    """`subscribe` for asyncio: ``async for event in asubscribe(endpoints(), "bar.")``."""
    return AsyncSubscription([eps] if isinstance(eps, str) else eps, prefixes)
