"""An L2 order book that keeps the exchange's exact decimal strings.

Levels are ordered by the float value of the price (a sort key only: what is stored and handed out
are the exchange's strings). Two prices that differ only beyond float precision (more than ~15
significant digits) would collide; no listed exchange quotes such prices. Bids are keyed by the
negated price so that both sides iterate best first.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from sortedcontainers import SortedDict

from ingest.events import Level

ZERO = "0"


def canonical_levels(levels: Iterable[list[str] | tuple[str, str]]) -> tuple[Level, ...]:
    """Exchange ``[price, qty]`` pairs as event levels, a zero quantity spelled ``"0"``."""
    return tuple((p, ZERO if float(q) == 0.0 else q) for p, q, *_ in levels)


class Side:
    """One side of a book. ``descending`` for bids."""

    __slots__ = ("_levels", "_sign")

    def __init__(self, descending: bool) -> None:
        self._sign = -1.0 if descending else 1.0
        self._levels: SortedDict = SortedDict()

    def set(self, price: str, qty: str) -> None:
        """Set a level to an absolute quantity; a zero quantity deletes it (a missing level is fine)."""
        key = self._sign * float(price)
        if float(qty) == 0.0:
            self._levels.pop(key, None)
        else:
            self._levels[key] = (price, qty)

    def apply(self, levels: Iterable[Level]) -> None:
        # `set` inlined: this runs for every level of every update.
        book, sign = self._levels, self._sign
        for price, qty in levels:
            if float(qty) == 0.0:
                book.pop(sign * float(price), None)
            else:
                book[sign * float(price)] = (price, qty)

    def replace(self, levels: Iterable[Level]) -> None:
        self._levels.clear()
        self.apply(levels)

    def best(self) -> Level | None:
        if not self._levels:
            return None
        value: Level = self._levels.peekitem(0)[1]
        return value

    def top(self, n: int | None = None) -> list[Level]:
        values = self._levels.values()
        return list(values if n is None else islice(values, n))

    def truncate(self, depth: int) -> list[Level]:
        """Keep only the best ``depth`` levels; return the levels removed."""
        removed: list[Level] = []
        while len(self._levels) > depth:
            removed.append(self._levels.popitem(-1)[1])
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
