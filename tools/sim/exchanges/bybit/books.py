"""The simulated Bybit book topics of one symbol: ``orderbook.{depth}.{symbol}`` views of the market
model, their ``u`` counters, and the two book faults. No I/O: messages are returned as text.

Each depth a client subscribed to is a *view*: the top ``depth`` levels a side as last sent, and its
``u`` (per topic, +1 a message, as Bybit's "Update ID. Is a sequence"). Each clock tick in which the
window changed gives one ``delta``: levels the market deleted with size ``"0"``, levels new or changed
in the window with their size, and, with ``delete_outside`` (the default), levels pushed out of the
window by better ones with size ``"0"`` too (a server-side window, as Bybit's depth-limited topics are
taken to be; off, the client must truncate). A snapshot is the window, best first.

Faults, per symbol (every depth at once): *skip* leaves the next ``count`` delta messages out of the
wire while ``u`` counts them and the window moves on, so their changes really are missing and the
next delta's ``u`` jumps. *restart* restarts the book service: the symbol's next message on every
topic is the whole window as a ``snapshot`` with ``u = 1`` (the tick's changes are in it, never sent
as a delta), and ``u`` counts on from 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from tools.sim.market import MarketView

Level = tuple[str, str]
ZERO = "0"


def native(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTCUSDT``."""
    return symbol.replace("-", "")


def book_topic(depth: int, symbol: str) -> str:
    return f"orderbook.{depth}.{native(symbol)}"


@dataclass(slots=True)
class View:
    depth: int
    bids: list[Level]
    asks: list[Level]
    u: int


@dataclass(slots=True)
class SymbolBooks:
    """Every subscribed depth of one symbol, and its pending faults."""

    symbol: str
    market: MarketView
    delete_outside: bool = True
    views: dict[int, View] = field(default_factory=dict)
    skip: int = 0
    restart: int = 0
    skipped: int = 0
    restarts: int = 0

    def view(self, depth: int) -> View:
        """The view of ``depth``, made current from the market if new (its ``u`` starts anywhere)."""
        view = self.views.get(depth)
        if view is None:
            bids, asks = self.market.book(depth)
            start = 1_000 + (self.market.update_id * 7 + depth) % 1_000_000
            view = self.views[depth] = View(depth, bids, asks, start)
        return view

    def snapshot(self, depth: int, ms: int) -> str:
        view = self.view(depth)
        return _message(self.symbol, "snapshot", depth, view.bids, view.asks, view.u, self.market.update_id, ms)

    def tick(self, ms: int) -> dict[int, str]:
        """Advance every view to the market's book; the message of each view that has one."""
        if not self.views:
            return {}
        full_bids, full_asks = self.market.book()
        alive = ({p for p, _ in full_bids}, {p for p, _ in full_asks})
        changes: dict[int, tuple[list[Level], list[Level]]] = {}
        for depth, view in self.views.items():
            bids, asks = full_bids[:depth], full_asks[:depth]
            diff = (self._diff(view.bids, bids, alive[0]), self._diff(view.asks, asks, alive[1]))
            view.bids, view.asks = bids, asks
            if diff[0] or diff[1]:
                changes[depth] = diff
        seq = self.market.update_id
        if self.restart:
            self.restart -= 1
            self.restarts += 1
            out: dict[int, str] = {}
            for depth, view in self.views.items():
                view.u = 1
                out[depth] = _message(self.symbol, "snapshot", depth, view.bids, view.asks, 1, seq, ms)
            return out
        if not changes:
            return {}
        for depth in changes:
            self.views[depth].u += 1
        if self.skip:
            self.skip -= 1
            self.skipped += 1
            return {}
        return {
            depth: _message(self.symbol, "delta", depth, b, a, self.views[depth].u, seq, ms)
            for depth, (b, a) in changes.items()
        }

    def _diff(self, old: list[Level], new: list[Level], alive: set[str]) -> list[Level]:
        before, now = dict(old), dict(new)
        gone = [p for p, _ in old if p not in now and (self.delete_outside or p not in alive)]
        return [(p, ZERO) for p in gone] + [(p, q) for p, q in new if before.get(p) != q]


def _message(
    symbol: str, kind: str, depth: int, bids: Sequence[Level], asks: Sequence[Level], u: int, seq: int, ms: int
) -> str:
    # Spot's key order: ``ts`` before ``type`` (clients must not care).
    body = {
        "topic": book_topic(depth, symbol),
        "ts": ms,
        "type": kind,
        "data": {
            "s": native(symbol),
            "b": [list(lv) for lv in bids],
            "a": [list(lv) for lv in asks],
            "u": u,
            "seq": seq,
        },
        "cts": ms - 2,
    }
    return orjson.dumps(body).decode()
