"""An L2 order book that keeps the exchange's exact decimal strings.

Levels are ordered by the float value of the price (a sort key only: what is stored and handed out
are the exchange's strings); the order is made when first read (see `Side`). Two prices that differ
only beyond float precision (more than ~15 significant digits) would collide; no listed exchange
quotes such prices. Bids are keyed by the negated price so that both sides iterate best first.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

from ingest.events import Level

ZERO = "0"


def canonical_levels(levels: Iterable[list[str] | tuple[str, str]]) -> tuple[Level, ...]:
    """Exchange ``[price, qty]`` pairs as event levels, a zero quantity spelled ``"0"``."""
    return tuple((p, ZERO if float(q) == 0.0 else q) for p, q, *_ in levels)


class Side:
    """One side of a book. ``descending`` for bids.

    Levels live in a dict by sort key; the keys in order (a `SortedList`) are made only when the side
    is first read in order (`best`, `top`, `truncate`), and from then on kept up to date by every
    change. A feed whose books are only written on the hot path (no checksum, no depth cut: Binance)
    pays a dict store per level; one that reads them after every message (a checksum) pays the sorted
    insert and delete as before. `replace` starts over unsorted."""

    __slots__ = ("_levels", "_order", "_sign")

    def __init__(self, descending: bool) -> None:
        self._sign = -1.0 if descending else 1.0
        self._levels: dict[float, Level] = {}
        self._order: SortedList | None = None  # the keys of _levels in order, once read in order

    def set(self, price: str, qty: str) -> None:
        """Set a level to an absolute quantity; a zero quantity deletes it (a missing level is fine)."""
        self.apply(((price, qty),))

    def apply(self, levels: Iterable[Level]) -> None:
        # This runs for every level of every update: the two loops are the same but for the order kept.
        # A level is stored as the (price, qty) tuple it came in (events are immutable).
        book, sign, order = self._levels, self._sign, self._order
        if order is None:
            for level in levels:
                price, qty = level
                if float(qty):
                    book[sign * float(price)] = level
                else:
                    book.pop(sign * float(price), None)
            return
        for level in levels:
            price, qty = level
            key = sign * float(price)
            if float(qty):
                if key not in book:
                    order.add(key)
                book[key] = level
            elif book.pop(key, None) is not None:
                order.remove(key)

    def replace(self, levels: Iterable[Level]) -> None:
        self._levels.clear()
        self._order = None
        self.apply(levels)

    def _sorted(self) -> SortedList:
        order = self._order
        if order is None:
            order = self._order = SortedList(self._levels)
        return order

    def best(self) -> Level | None:
        if not self._levels:
            return None
        return self._levels[self._sorted()[0]]

    def top(self, n: int | None = None) -> list[Level]:
        order, levels = self._sorted(), self._levels
        keys = order if n is None else order.islice(0, n)
        return [levels[k] for k in keys]

    def truncate(self, depth: int) -> list[Level]:
        """Keep only the best ``depth`` levels; return the levels removed."""
        removed: list[Level] = []
        levels = self._levels
        if len(levels) <= depth:
            return removed
        order = self._sorted()
        while len(levels) > depth:
            removed.append(levels.pop(order.pop(-1)))
        return removed

    def __len__(self) -> int:
        return len(self._levels)


class OrderBook:
    """Both sides of one instrument's book."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = Side(descending=True)
        self.asks = Side(descending=False)

    def replace(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.bids.replace(bids)
        self.asks.replace(asks)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.bids.apply(bids)
        self.asks.apply(asks)

    def clear(self) -> None:
        self.replace((), ())

    def depth(self, n: int | None = None) -> tuple[list[Level], list[Level]]:
        return self.bids.top(n), self.asks.top(n)
