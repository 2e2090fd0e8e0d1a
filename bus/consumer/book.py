"""A live order book kept from its Redis stream (``{prefix}:book:{exchange}:{symbol}``).

`LiveBook.load` finds the newest snapshot in the stream (reading it backwards) and applies it and
every entry after it; `LiveBook.update` applies what was written since; `LiveBook.follow` does that
for ever and yields each event. The rules are README's "Canonical events": a snapshot replaces the
book and makes it valid, a delta sets levels (``"0"`` deletes), and a status other than ``valid``
makes it untrusted (``valid`` False) until the next snapshot. `BookState` is that rule alone (pure).

A stream capped by ``redis.maxlen`` may have lost its last snapshot (a book that has not resynced
for a million updates): `LiveBook.load` then leaves ``valid`` False until a snapshot arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import redis

from bus.consumer.streams import Entry, StreamReader, decode_entry, stream_key
from ingest.book.book import OrderBook
from ingest.events import BookDelta, BookSnapshot, BookStatus, Event, Level

PAGE = 1000
Rows = list[tuple[bytes, dict[bytes, bytes]]]


class BookState:
    """A book and whether it can be trusted, from book events applied in stream order."""

    def __init__(self) -> None:
        self.book = OrderBook()
        self.valid = False
        self.seq: int | None = None  # the exchange's id of the last snapshot or delta applied
        self.ts_exchange = 0

    def apply(self, event: Event) -> None:
        if isinstance(event, BookSnapshot):
            self.book.replace(event.bids, event.asks)
            self.valid, self.seq, self.ts_exchange = True, event.seq, event.ts_exchange
        elif isinstance(event, BookDelta):
            self.book.apply(event.bids, event.asks)
            self.seq, self.ts_exchange = event.seq, event.ts_exchange
        elif isinstance(event, BookStatus) and event.state != "valid":
            self.valid = False

    def depth(self, n: int | None = None) -> tuple[list[Level], list[Level]]:
        """(bids, asks), best first, ``n`` levels each (None: all)."""
        return self.book.depth(n)

    def best(self) -> tuple[Level | None, Level | None]:
        """(best bid, best ask), None for an empty side."""
        bids, asks = self.book.depth(1)
        return (bids[0] if bids else None), (asks[0] if asks else None)


class LiveBook(BookState):
    """One symbol's book from Redis; see the module docstring."""

    def __init__(self, client: redis.Redis, exchange: str, symbol: str, prefix: str = "md") -> None:
        super().__init__()
        self.client = client
        self.key = stream_key("book", exchange, symbol, prefix)
        self.last_id = "0-0"
        self._reader: StreamReader | None = None

    def load(self) -> LiveBook:
        """Apply the newest snapshot and everything after it (or, without one, nothing but the position)."""
        top = "+"
        start: str | None = None
        newest: str | None = None
        while start is None:
            rows = cast(Rows, self.client.xrevrange(self.key, max=top, count=PAGE))
            if not rows:
                break
            newest = newest or rows[0][0].decode()
            for entry_id, fields in rows:
                if fields.get(b"type") == b"snapshot":
                    start = entry_id.decode()
                    break
            top = "(" + rows[-1][0].decode()
        self._reader = StreamReader(self.client, [self.key], start="0-0")
        if start is None:
            self._reader.positions[self.key] = newest or "0-0"  # wait for a snapshot
            self.last_id = newest or "0-0"
            return self
        rows = cast(Rows, self.client.xrange(self.key, min=start, max=start))
        self._apply([decode_entry(self.key, rows[0][0], rows[0][1])])
        self._reader.positions[self.key] = start
        while self.update(block=None):
            pass
        return self

    def update(self, block: float | None = None) -> int:
        """Apply the entries written since the last call, waiting up to ``block`` seconds for one
        (None: do not wait); returns how many were applied."""
        if self._reader is None:
            self.load()
        assert self._reader is not None
        entries = self._reader.read(count=PAGE, block=block)
        self._apply(entries)
        return len(entries)

    def follow(self, block: float = 1.0) -> Iterator[Event]:
        """Every book event from now on, each yielded after it is applied (blocking, for ever)."""
        if self._reader is None:
            self.load()
        assert self._reader is not None
        while True:
            entries = self._reader.read(count=PAGE, block=block)
            for e in entries:
                self._apply([e])
                yield e.event

    def _apply(self, entries: list[Entry]) -> None:
        for e in entries:
            self.apply(e.event)
            self.last_id = e.id
