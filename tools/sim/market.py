"""A pure, seeded market model for one symbol: the simulator's source of book changes and trades.

Contract:

- No asyncio, no I/O, no clock: ``step(ts_ns)`` takes the time as an argument and only stamps it on
  the event. The sequence of events depends only on ``(seed, symbol, levels, trade_ratio)`` and the
  number of ``step`` calls, never on the time passed in.
- Prices are integer ticks and quantities integer units of 1e-8 internally; both are handed out as
  exact decimal strings with 8 decimals, the way Binance spells them (``"43210.12000000"``).
- Every event is one book change with the next update id (``+1`` each, never a gap). A trade event
  also carries the trade (the next trade id, ``+1`` each) and the book change it caused.
- The book never crosses: every bid is at or below the internal ``mid`` tick, every ask above it.
  Each side keeps between 1 and ``levels`` levels.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass
from typing import Literal, Protocol

Level = tuple[str, str]
Side = Literal["buy", "sell"]

SCALE = 100_000_000  # units per 1: everything is a multiple of 1e-8
ZERO = "0.00000000"
# Upper bounds (in lots) a level's quantity is drawn below; the mix gives mostly small levels.
_QTY_SCALES = (100, 1_000, 10_000, 100_000)
# Share of book changes that move the mid by one tick (the slow random walk).
_MID_WALK = 0.04


def fmt8(units: int) -> str:
    """An integer number of 1e-8 units as an 8-decimal string: ``35130000`` -> ``"0.35130000"``."""
    return f"{units // SCALE}.{units % SCALE:08d}"


@dataclass(frozen=True, slots=True)
class MarketTrade:
    """One trade. ``side`` is the taker's: ``"buy"`` consumed the best ask, ``"sell"`` the best bid."""

    trade_id: int
    price: str
    qty: str
    side: Side


@dataclass(frozen=True, slots=True)
class MarketEvent:
    """One book change (update id ``update_id``), with the trade that caused it if any.

    ``bids``/``asks`` are the changed levels in the order they changed, absolute quantities,
    ``"0.00000000"`` for a deleted level; one price appears at most once per side."""

    ts_ns: int
    update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    trade: MarketTrade | None


class MarketView(Protocol):
    """The reading half of a market, all a simulated exchange's REST and status use (`SymbolMarket`,
    or `tools.sim.prebuilt.ReplayView` at the position a pre-built market was sent up to)."""

    tick_units: int
    lot_units: int

    @property
    def update_id(self) -> int: ...

    @property
    def next_trade_id(self) -> int: ...

    @property
    def last_trade_id(self) -> int: ...

    def book(self, limit: int | None = None) -> tuple[list[Level], list[Level]]: ...


class _Book:
    """One side: tick -> quantity units, plus the ticks sorted ascending (bids best last)."""

    __slots__ = ("is_bid", "qty", "ticks")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.qty: dict[int, int] = {}
        self.ticks: list[int] = []

    def __len__(self) -> int:
        return len(self.ticks)

    def best(self) -> int:
        return self.ticks[-1] if self.is_bid else self.ticks[0]

    def worst(self) -> int:
        return self.ticks[0] if self.is_bid else self.ticks[-1]

    def from_best(self, i: int) -> int:
        return self.ticks[-1 - i] if self.is_bid else self.ticks[i]

    def set(self, tick: int, qty: int) -> None:
        if tick not in self.qty:
            bisect.insort(self.ticks, tick)
        self.qty[tick] = qty

    def remove(self, tick: int) -> None:
        del self.qty[tick]
        del self.ticks[bisect.bisect_left(self.ticks, tick)]

    def best_first(self) -> list[int]:
        return self.ticks[::-1] if self.is_bid else list(self.ticks)


class SymbolMarket:
    """The market of one symbol. See the module docstring for the contract."""

    def __init__(self, symbol: str, seed: int, levels: int, trade_ratio: float) -> None:
        if levels < 1:
            raise ValueError("levels must be at least 1")
        self.symbol = symbol
        self.levels = levels
        self.trade_ratio = trade_ratio
        # sha256, not hash(): str hashes are salted per process, and the market must not be.
        digest = hashlib.sha256(f"{seed}:{symbol}".encode()).digest()
        self._rng = random.Random(int.from_bytes(digest[:8], "big"))
        rng = self._rng
        magnitude = rng.randrange(-1, 5)  # the price is 10**magnitude .. 10**(magnitude+1)
        # About 6 significant digits of price (BTC: 0.01) and lots worth ~0.1..1 quote units.
        self.tick_units: int = 10 ** max(0, magnitude + 2)
        self.lot_units: int = 10 ** min(8, max(0, 7 - magnitude))
        mid_units: int = 10 ** (magnitude + 8) * (1000 + rng.randrange(9000)) // 1000
        self._mid = max(mid_units // self.tick_units, 4 * levels + 10)
        self._update_id = rng.randrange(10**6, 10**9)
        self._next_trade_id = rng.randrange(10**5, 10**8)
        self._bids = _Book(is_bid=True)
        self._asks = _Book(is_bid=False)
        tick = self._mid
        for _ in range(levels):
            self._bids.set(tick, self._new_qty())
            tick -= 1 + rng.randrange(3)
            if tick < 1:
                break
        tick = self._mid + 1
        for _ in range(levels):
            self._asks.set(tick, self._new_qty())
            tick += 1 + rng.randrange(3)

    # -- reading ---------------------------------------------------------------------------------

    @property
    def update_id(self) -> int:
        """The id of the last book change (the book returned by `book` is valid at this id)."""
        return self._update_id

    @property
    def next_trade_id(self) -> int:
        """The id the next trade will get."""
        return self._next_trade_id

    @property
    def last_trade_id(self) -> int:
        """The id of the last trade (``next_trade_id - 1``, also before any trade happened)."""
        return self._next_trade_id - 1

    def price(self, tick: int) -> str:
        return fmt8(tick * self.tick_units)

    def book(self, limit: int | None = None) -> tuple[list[Level], list[Level]]:
        """(bids best first, asks best first) as ``(price, qty)`` strings, at most ``limit`` a side."""
        out: list[list[Level]] = []
        for side in (self._bids, self._asks):
            ticks = side.best_first()[:limit]
            out.append([(self.price(t), fmt8(side.qty[t])) for t in ticks])
        return out[0], out[1]

    # -- stepping --------------------------------------------------------------------------------

    def step(self, ts_ns: int) -> MarketEvent:
        """Advance the market by one event stamped ``ts_ns``."""
        rng = self._rng
        changes: dict[bool, dict[int, int]] = {True: {}, False: {}}  # is_bid -> tick -> qty (0: gone)
        trade: MarketTrade | None = None
        if rng.random() < self.trade_ratio:
            trade = self._trade(changes)
        elif rng.random() < _MID_WALK:
            self._walk(changes)
        else:
            self._change(changes)
        self._update_id += 1
        return MarketEvent(
            ts_ns=ts_ns,
            update_id=self._update_id,
            bids=tuple((self.price(t), fmt8(q)) for t, q in changes[True].items()),
            asks=tuple((self.price(t), fmt8(q)) for t, q in changes[False].items()),
            trade=trade,
        )

    def _new_qty(self) -> int:
        rng = self._rng
        return self.lot_units * (1 + rng.randrange(rng.choice(_QTY_SCALES)))

    def _set(self, side: _Book, tick: int, qty: int, changes: dict[bool, dict[int, int]]) -> None:
        side.set(tick, qty)
        changes[side.is_bid][tick] = qty

    def _remove(self, side: _Book, tick: int, changes: dict[bool, dict[int, int]]) -> None:
        side.remove(tick)
        changes[side.is_bid][tick] = 0

    def _trim(self, side: _Book, changes: dict[bool, dict[int, int]]) -> None:
        # A side over its size loses its worst levels, as a real book view falls off the window.
        while len(side) > self.levels:
            self._remove(side, side.worst(), changes)

    def _offset(self) -> int:
        """How far from the top a new level goes: mostly near it, sometimes anywhere in the book."""
        rng = self._rng
        return rng.randrange(rng.choice((2, 8, 2 * self.levels)))

    def _add(self, side: _Book, changes: dict[bool, dict[int, int]]) -> None:
        offset = self._offset()
        tick = self._mid - offset if side.is_bid else self._mid + 1 + offset
        if tick < 1:
            tick = self._mid  # a bid can always sit at the mid itself
        self._set(side, tick, self._new_qty(), changes)
        self._trim(side, changes)

    def _trade(self, changes: dict[bool, dict[int, int]]) -> MarketTrade:
        rng = self._rng
        taker: Side = "buy" if rng.random() < 0.5 else "sell"
        side = self._asks if taker == "buy" else self._bids
        tick = side.best()
        available = side.qty[tick]
        # A third of the trades sweep the whole level, the rest take a random part of it.
        take = available if rng.random() < 0.33 else min(available, self._new_qty())
        if take == available:
            self._remove(side, tick, changes)
            self._refill(side, changes)
        else:
            self._set(side, tick, available - take, changes)
        trade = MarketTrade(self._next_trade_id, self.price(tick), fmt8(take), taker)
        self._next_trade_id += 1
        return trade

    def _refill(self, side: _Book, changes: dict[bool, dict[int, int]]) -> None:
        """Keep a side populated after a level went: a new level at the far end (or near the mid
        if the side is empty)."""
        if not side.ticks:
            self._add(side, changes)
            return
        gap = 1 + self._rng.randrange(3)
        tick = side.worst() - gap if side.is_bid else side.worst() + gap
        if tick >= 1:
            self._set(side, tick, self._new_qty(), changes)

    def _walk(self, changes: dict[bool, dict[int, int]]) -> None:
        """Move the mid one tick; the level the mid passes over changes side (its old level goes and
        a fresh one appears on the other side at the same price)."""
        up = self._rng.random() < 0.5 or self._mid <= 2
        if up:
            self._mid += 1
            if self._mid in self._asks.qty:
                self._remove(self._asks, self._mid, changes)
                if not self._asks.ticks:
                    self._refill(self._asks, changes)
            self._set(self._bids, self._mid, self._new_qty(), changes)
            self._trim(self._bids, changes)
        else:
            old = self._mid
            self._mid -= 1
            if old in self._bids.qty:
                self._remove(self._bids, old, changes)
                if not self._bids.ticks:
                    self._refill(self._bids, changes)
            self._set(self._asks, old, self._new_qty(), changes)
            self._trim(self._asks, changes)

    def _change(self, changes: dict[bool, dict[int, int]]) -> None:
        rng = self._rng
        side = self._bids if rng.random() < 0.5 else self._asks
        r = rng.random()
        # A side below half its size only grows, so the book stays close to full.
        if r < 0.40 or len(side) * 2 < self.levels or len(side) <= 1:
            self._add(side, changes)
        elif r < 0.75:
            tick = side.from_best(min(len(side) - 1, rng.randrange(rng.choice((3, 10, len(side))))))
            qty = self._new_qty()
            if qty == side.qty[tick]:
                qty += self.lot_units  # a change must change something
            self._set(side, tick, qty, changes)
        else:
            self._remove(side, side.from_best(rng.randrange(len(side))), changes)
