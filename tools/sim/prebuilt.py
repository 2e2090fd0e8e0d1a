"""A pre-built market: the seeded market's frames made before they are sent, for the benchmark.

The live simulator steps its market model and formats every frame while it serves (~10 us of Python
per market event), on the cores the measured cluster uses. `build` runs the same model ahead of time:
per 10 ms market tick and per symbol, the same events the live clock steps at ``rate`` events per
second per symbol (the same fractional carry), formatted by the exchange's `FrameFormat` into one
depth payload per tick (that tick's updates aggregated) and one payload per trade, until ``messages``
payloads exist. `tools.sim.playback` then sends them, so what is left in the measured window is a
time stamp, a wrap and a socket write per frame.

Payloads carry `TIME` (``9999999999999``, 13 digits: a time in ms) wherever the wire has the send
time; `stamp` puts the real one in as they go out, so latency measured from it stays true.

`ReplayView` is one symbol's market as a client sees it at the playback position (`PrebuiltMarket.sent`
frames out): its book, update id and trade ids, for the REST snapshot, the truth log's final books
and the status. It applies the symbol's depth payloads lazily, when asked, so sending costs nothing
for it. Pure: no asyncio, no I/O, no clock.

Memory: the payloads (~150-250 bytes each as ``bytes``) plus 4 bytes per frame in arrays; ~220 bytes
per message, so 25 s at 20k msgs/s (500k frames) holds ~110 MB in the simulator process.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from tools.sim.market import Level, MarketEvent, MarketTrade, SymbolMarket

TIME = 9_999_999_999_999  # what formatters put where the send time (ms) goes
_TIME_KEY = b":9999999999999"  # as it appears in a JSON payload: a value, after its key's colon
TICK = 0.01  # seconds of market per tick, as the live clock's
_ZERO_QTY = frozenset(("0", "0.00000000"))


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """What to pre-build and how to send it: ``messages`` frames at least; ``msgs_per_s`` the pace
    (0: as fast as the clients read); ``trade_stream`` the exchange's trade stream kind to build (the
    exchange's `FrameFormat` says which it knows)."""

    messages: int
    msgs_per_s: float
    trade_stream: str = "trade"


class FrameFormat(Protocol):
    """An exchange's wire format for pre-built frames (the exchange module provides it).
    ``rest_books``: clients fetch each symbol's book over REST (`tools.sim.venue.Venue.books_served`
    says which were), so an unpaced playback starts slowly until they have (`tools.sim.playback`)."""

    rest_books: bool

    def streams(self, symbol: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The stream names that carry ``symbol``'s depth payloads, and those that carry its trades."""
        ...

    def depth(self, symbol: str, events: Sequence[MarketEvent]) -> bytes:
        """One tick's book changes of ``symbol`` as one payload (send time: `TIME`)."""
        ...

    def trades(self, symbol: str, events: Sequence[MarketEvent]) -> list[bytes]:
        """One payload per trade among ``events``, in order (send time: `TIME`)."""
        ...

    def read_depth(self, payload: bytes) -> tuple[int, list[Level], list[Level]]:
        """A depth payload's last update id and changed levels (bids, asks; quantity zero: gone)."""
        ...

    def read_trade(self, payload: bytes) -> MarketTrade:
        """The trade a trade payload carries."""
        ...


def stamp(payload: bytes, ms: bytes) -> bytes:
    """The payload with its send time: ``ms`` (``b":<ms>"``) in place of `TIME`."""
    return payload.replace(_TIME_KEY, ms)


class PrebuiltMarket:
    """An exchange's frames in sending order: ``payloads[i]`` goes on the streams of ``stream_of[i]``
    (``2 * symbol index`` for depth, ``+ 1`` for trades). ``sent`` is how many are out."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = list(symbols)
        self.payloads: list[bytes] = []
        self.stream_of = array("I")
        self.sent = 0
        self.views: dict[str, ReplayView] = {}
        self.payload_bytes = 0

    @property
    def done(self) -> bool:
        return self.sent >= len(self.payloads)

    def add(self, stream: int, payload: bytes) -> None:
        # A copy of its own size: orjson's bytes keep their ~4 KB working buffer (20x the payload).
        self.payloads.append(bytes(memoryview(payload)))
        self.stream_of.append(stream)
        self.payload_bytes += len(payload)


class ReplayView:
    """One symbol's market at the playback position (see the module docstring); the reading half of
    `tools.sim.market.SymbolMarket`."""

    def __init__(self, store: PrebuiltMarket, fmt: FrameFormat, market: SymbolMarket) -> None:
        self._store = store
        self._fmt = fmt
        self.tick_units, self.lot_units = market.tick_units, market.lot_units
        bids, asks = market.book()
        self._bids = dict(bids)
        self._asks = dict(asks)
        self._update_id = market.update_id
        self._first_trade_id = market.next_trade_id
        self.depth_at = array("I")  # positions of this symbol's depth payloads
        self.trades_at = array("I")  # positions of its trade payloads (ids consecutive from the first)
        self._applied = 0

    @property
    def update_id(self) -> int:
        self._catch_up()
        return self._update_id

    @property
    def next_trade_id(self) -> int:
        return self._first_trade_id + bisect.bisect_left(self.trades_at, self._store.sent)

    @property
    def last_trade_id(self) -> int:
        return self.next_trade_id - 1

    def book(self, limit: int | None = None) -> tuple[list[Level], list[Level]]:
        """(bids best first, asks best first) at the playback position, at most ``limit`` a side."""
        self._catch_up()
        bids = sorted(self._bids.items(), key=_price_key, reverse=True)[:limit]
        asks = sorted(self._asks.items(), key=_price_key)[:limit]
        return bids, asks

    def _catch_up(self) -> None:
        sent, at = self._store.sent, self.depth_at
        while self._applied < len(at) and at[self._applied] < sent:
            update_id, bids, asks = self._fmt.read_depth(self._store.payloads[at[self._applied]])
            for side, levels in ((self._bids, bids), (self._asks, asks)):
                for price, qty in levels:
                    if qty in _ZERO_QTY:
                        side.pop(price, None)
                    else:
                        side[price] = qty
            self._update_id = update_id
            self._applied += 1


def _price_key(level: Level) -> Decimal:
    return Decimal(level[0])  # for sorting a snapshot only (rare); the levels themselves stay strings


Progress = Callable[[int, int], None]  # (frames built, frames wanted)


def build(
    fmt: FrameFormat,
    symbols: Sequence[str],
    *,
    seed: int,
    levels: int,
    trade_ratio: float,
    rate: float,
    messages: int,
    progress: Progress | None = None,
) -> PrebuiltMarket:
    """Step every symbol's market tick by tick (``rate * TICK`` events per tick and symbol, with the
    live clock's fractional carry) and format each tick's frames, until ``messages`` frames exist."""
    store = PrebuiltMarket(symbols)
    markets = [SymbolMarket(s, seed, levels, trade_ratio) for s in symbols]
    for market in markets:
        store.views[market.symbol] = ReplayView(store, fmt, market)
    views = [store.views[s] for s in symbols]
    carry = [0.0] * len(markets)
    per_tick = rate * TICK
    next_report = 0
    while len(store.payloads) < messages:
        for i, market in enumerate(markets):
            due = carry[i] + per_tick
            n = int(due)
            carry[i] = due - n
            if n == 0:
                continue
            events = [market.step(0) for _ in range(n)]
            views[i].depth_at.append(len(store.payloads))
            store.add(2 * i, fmt.depth(market.symbol, events))
            for payload in fmt.trades(market.symbol, events):
                views[i].trades_at.append(len(store.payloads))
                store.add(2 * i + 1, payload)
        if progress is not None and len(store.payloads) >= next_report:
            progress(len(store.payloads), messages)
            next_report += max(1, messages // 20)
    if progress is not None:
        progress(len(store.payloads), messages)
    return store
