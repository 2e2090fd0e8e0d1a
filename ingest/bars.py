"""1-minute OHLCV bars from the published trades, in exchange time (pure: no I/O, no clock).

`BarBuilder` takes every `Trade` and `TradeGap` a shard publishes, in publication order, and returns
the `Bar` events to publish after them:

- A bar holds the trades with ``start <= ts_exchange < start + 60 s``; it is **closed** (published,
  revision 0) when a trade of a later minute of the same symbol arrives, or when the exchange's
  watermark passes ``start + 60 s + grace`` (`advance`, called by the shard with its estimate of
  the exchange's clock: exchange time from the events, carried forward by the local clock).
- A trade for a minute whose bar is closed (a backfill after a reconnect, a late copy) publishes the
  bar again with ``revision`` + 1: the newest revision of a ``start`` is the bar. Closed bars are
  kept ``keep`` seconds after their minute ends; a trade older than that is left out (and counted in
  `BarBuilder.late`), never folded into a wrong bar.
- A trade already in the bar (same trade id) is ignored: a bar is the set of distinct trades.
- ``partial`` flags a bar that may lack trades: ``1`` (`PARTIAL_START`) a symbol's first bar, whose
  minute may have begun before the subscription; ``2`` (`PARTIAL_END`) a bar published when the
  shard stopped before its minute was over (a stop publishes the open bars at once); ``3`` both.
- Minutes without trades have no bar: no trade, no price. A consumer that wants a continuous series
  carries the previous close forward; a hole in the data is never silent either way (`TradeGap`s are
  counted in ``missing``).
- Open and close are the first and last trade in trade-id order (numeric ids), or in exchange time
  then arrival order where ids are not numbers.

Arithmetic is exact: per trade in scaled integers (a decimal string is an integer and a number of
places; sums keep the finest places seen, as `decimal` sums do), turned into `decimal` (a precision far
above any decimal the codecs accept, the Inexact trap set) only when a bar is made; only ``vwap``, a
quotient, is rounded, half-even to 4 more decimal places than the finest price in the bar. `bar_of`
computes the bar of a list of trades with the same code, for the verifier and tests.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation

from ingest.events import Bar, Trade, TradeGap

MINUTE_NS = 60_000_000_000
PARTIAL_START = 1
PARTIAL_END = 2
VWAP_EXTRA_PLACES = 4

# 40 digits either side of the point at most (the codecs' bound): a product has at most 160 digits,
# a sum of a minute's trades a few more. Inexact would mean a bug, so it raises.
_EXACT = Context(prec=400, traps=[Inexact, InvalidOperation])
_ROUND = Context(prec=400, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])

Key = tuple[int, int]


def minute_start(ts_ns: int) -> int:
    """The first nanosecond of the minute ``ts_ns`` falls in."""
    return ts_ns - ts_ns % MINUTE_NS


def _text(d: Decimal) -> str:
    return format(d, "f")


Scaled = tuple[int, int]  # (n, places): the number n * 10**-places; places < 0 only for "1E+2" forms


def scaled(text: str) -> Scaled:
    """A decimal string as an exact scaled integer, with the places `Decimal(text)` has:
    ``"12.50"`` -> ``(1250, 2)``, ``"7"`` -> ``(7, 0)``. Plain decimals (all the codecs hand out) are read
    directly; anything else `Decimal` accepts goes through it (and what it refuses raises as it does)."""
    point = text.find(".")
    digits = text if point < 0 else text.replace(".", "", 1)  # one new object (partition and + made four)
    if digits.isdigit() and digits.isascii():
        return int(digits), 0 if point < 0 else len(text) - point - 1
    sign, nums, exponent = Decimal(text).as_tuple()
    if not isinstance(exponent, int):
        raise InvalidOperation(f"not a finite number: {text[:40]!r}")
    n = int("".join(map(str, nums)) or "0")
    return (-n if sign else n), -exponent


def _at(n: int, places: int, target: int) -> int:
    """``n`` (at ``places``) at ``target`` places, ``target >= places``."""
    return n if target == places else n * 10 ** (target - places)


def _less(a: int, a_places: int, b: int, b_places: int) -> bool:
    if a_places == b_places:
        return a < b
    top = max(a_places, b_places)
    return _at(a, a_places, top) < _at(b, b_places, top)


def _before(a: Key, b: Key) -> bool:
    """``a < b``, spelled out: compiled, a comparison of two tuples boxes both."""
    return a[0] < b[0] or (a[0] == b[0] and a[1] < b[1])


def _decimal(n: int, places: int) -> Decimal:
    return _EXACT.scaleb(Decimal(n), -places)


class TradeIds:
    """The distinct trade ids of a bar, small however many: decimal ids (``"12345"``, no leading zero)
    as sorted, disjoint, inclusive ranges of integers (a minute's trades are nearly always one run of
    consecutive ids, so one range), any other id in a set. Bars are kept ``keep`` seconds (10 minutes
    by default) for revisions: a set of every id string would grow by ~160 bytes per trade until then."""

    __slots__ = ("_hi", "_lo", "_other")

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        self._other: set[str] = set()

    def add(self, tid: str) -> bool:
        """Add ``tid``; False if it is already there."""
        if not (tid.isdigit() and tid.isascii() and (tid[0] != "0" or tid == "0")):
            if tid in self._other:
                return False
            self._other.add(tid)
            return True
        n, lo, hi = int(tid), self._lo, self._hi
        if hi and n == hi[-1] + 1:  # the next id: by far the most common case
            hi[-1] = n
            return True
        i = bisect_right(lo, n) - 1  # the range starting at or before n
        if i >= 0 and n <= hi[i]:
            return False
        after = i >= 0 and hi[i] == n - 1
        before = i + 1 < len(lo) and lo[i + 1] == n + 1
        if after and before:  # n joins two ranges
            hi[i] = hi[i + 1]
            del lo[i + 1], hi[i + 1]
        elif after:
            hi[i] = n
        elif before:
            lo[i + 1] = n
        else:
            lo.insert(i + 1, n)
            hi.insert(i + 1, n)
        return True

    def __contains__(self, tid: str) -> bool:
        if not (tid.isdigit() and tid.isascii() and (tid[0] != "0" or tid == "0")):
            return tid in self._other
        n = int(tid)
        i = bisect_right(self._lo, n) - 1
        return i >= 0 and n <= self._hi[i]


@dataclass(slots=True)
class _Acc:
    """One minute's trades, folded incrementally; ``revision`` is -1 until the bar is published.
    Values are `scaled` integers: ``high``/``low`` at ``*_places``, ``volume``/``notional`` at
    ``volume_places``/``notional_places`` (never below 0: as a `decimal` sum starting from ``0``)."""

    start: int
    ids: TradeIds = field(default_factory=TradeIds)
    count: int = 0
    open_key: Key = (0, 0)
    open: str = ""
    close_key: Key = (0, 0)
    close: str = ""
    high: int = 0
    high_places: int = 0
    high_s: str = ""
    high_key: Key = (0, 0)
    low: int = 0
    low_places: int = 0
    low_s: str = ""
    low_key: Key = (0, 0)
    first_id: str = ""
    last_id: str = ""
    volume: int = 0
    volume_places: int = 0
    notional: int = 0
    notional_places: int = 0
    places: int = 0  # decimal places of the finest price
    backfilled: int = 0
    missing: int = 0
    revision: int = -1
    cut: bool = False  # published before its minute was over (the shard stopped): partial

    @property
    def published(self) -> bool:
        return self.revision >= 0

    def add(self, trade: Trade, key: Key) -> bool:
        """Fold a trade in; False if its id is already in the bar."""
        tid = trade.trade_id
        if not self.ids.add(tid):
            return False
        price_s = trade.price
        price, pp = scaled(price_s)
        qty, qp = scaled(trade.qty)
        if self.count == 0:
            self.open_key = self.close_key = self.high_key = self.low_key = key
            self.open = self.close = self.high_s = self.low_s = price_s
            self.first_id = self.last_id = tid
            self.high, self.high_places, self.low, self.low_places = price, pp, price, pp
        else:
            if _before(key, self.open_key):
                self.open_key, self.open, self.first_id = key, price_s, tid
            if _before(self.close_key, key):
                self.close_key, self.close, self.last_id = key, price_s, tid
            # Equal prices spelled differently: the spelling of the earlier trade wins. (Prices at the
            # same places, nearly always, compare as they are.)
            high, hp = self.high, self.high_places
            if (
                (price > high or (price == high and _before(key, self.high_key)))
                if pp == hp
                else _less(high, hp, price, pp) or (_before(key, self.high_key) and not _less(price, pp, high, hp))
            ):
                self.high, self.high_places, self.high_s, self.high_key = price, pp, price_s, key
            low, lp = self.low, self.low_places
            if (
                (price < low or (price == low and _before(key, self.low_key)))
                if pp == lp
                else _less(price, pp, low, lp) or (_before(key, self.low_key) and not _less(low, lp, price, pp))
            ):
                self.low, self.low_places, self.low_s, self.low_key = price, pp, price_s, key
        # The sums at the finest places seen (nearly always the places every trade has: no scaling).
        vp = self.volume_places
        if qp == vp:
            self.volume += qty
        elif qp > vp:
            self.volume, self.volume_places = self.volume * 10 ** (qp - vp) + qty, qp
        else:
            self.volume += qty * 10 ** (vp - qp)
        np_, product_places = self.notional_places, pp + qp
        if product_places == np_:
            self.notional += price * qty
        elif product_places > np_:
            self.notional = self.notional * 10 ** (product_places - np_) + price * qty
            self.notional_places = product_places
        else:
            self.notional += price * qty * 10 ** (np_ - product_places)
        if pp > self.places:
            self.places = pp
        self.count += 1
        if trade.origin == "backfill":
            self.backfilled += 1
        return True

    def bar(self, exchange: str, symbol: str, native: str, partial: int, ts_recv: int) -> Bar:
        volume, notional = _decimal(self.volume, self.volume_places), _decimal(self.notional, self.notional_places)
        quantum = Decimal(1).scaleb(-(self.places + VWAP_EXTRA_PLACES))
        vwap = _ROUND.quantize(_ROUND.divide(notional, volume), quantum)
        return Bar(
            exchange, symbol, native, self.start, self.open, self.high_s, self.low_s, self.close,
            _text(volume), _text(notional), _text(vwap), self.count, self.first_id, self.last_id,
            self.backfilled, self.missing, partial, max(self.revision, 0), ts_recv,
        )  # fmt: skip


def order_key(trade: Trade, arrival: int) -> Key:
    """Where a trade sits in its minute: its numeric id, else its exchange time and arrival."""
    tid = trade.trade_id
    if tid.isdigit():
        return (int(tid), 0)
    return (trade.ts_exchange, arrival)


def content(bar: Bar) -> tuple[object, ...]:
    """What a bar says about the market (the fields the verifier compares): not its revision,
    publication time or the bookkeeping flags."""
    return (bar.exchange, bar.symbol, bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume,
            bar.notional, bar.vwap, bar.trades, bar.first_trade_id, bar.last_trade_id)  # fmt: skip


def bar_of(trades: Iterable[Trade]) -> Bar:
    """The bar of some trades of one symbol and minute (duplicates by id count once)."""
    acc: _Acc | None = None
    first: Trade | None = None
    for n, t in enumerate(trades):
        if acc is None:
            first, acc = t, _Acc(minute_start(t.ts_exchange))
        acc.add(t, order_key(t, n))
    if acc is None or first is None:
        raise ValueError("a bar needs at least one trade")
    return acc.bar(first.exchange, first.symbol, first.native, 0, 0)


@dataclass(slots=True)
class _Symbol:
    exchange: str
    symbol: str
    native: str
    known: bool  # earlier trades are known (restored): its first bar is not partial
    bars: dict[int, _Acc] = field(default_factory=dict)  # start -> bar, open and kept ones
    last_start: int | None = None  # the bar of the last trade folded (a TradeGap after it counts there)
    arrivals: int = 0
    partial_start: int | None = None
    floor: int | None = None  # minutes up to this one have no bar here to revise (restored from their tail)
    # The open bar of the newest minute while every earlier bar is published: a trade of its minute
    # closes nothing and publishes nothing. Set by `on_trade` when it has checked that; any publication
    # (and a restore) clears it.
    hot: _Acc | None = None


class BarBuilder:
    """Bars of every symbol of a shard; see the module docstring.

    ``grace_ns``: how long after a minute's end its bar waits for the watermark; ``keep_ns``: how
    long after a minute's end a late trade still revises its bar."""

    def __init__(self, grace_ns: int, keep_ns: int) -> None:
        self.grace_ns = grace_ns
        self.keep_ns = keep_ns
        self.late = 0  # trades too old to revise their bar (left out)
        self._symbols: dict[tuple[str, str], _Symbol] = {}
        self._watermarks: dict[str, int] = {}

    # -- feeding ----------------------------------------------------------------------------------

    def on_event(self, event: Trade | TradeGap) -> list[Bar]:
        """Fold a published trade (or a gap report) in; the bars to publish after it."""
        if isinstance(event, TradeGap):
            return self._gap(event)
        return self.on_trade(event)

    def _sym(self, exchange: str, symbol: str, native: str) -> _Symbol:
        s = self._symbols.get((exchange, symbol))
        if s is None:
            s = self._symbols[(exchange, symbol)] = _Symbol(exchange, symbol, native, known=False)
        return s

    def on_trade(self, trade: Trade) -> list[Bar]:
        """`on_event` for a trade."""
        ts = trade.ts_exchange
        start = ts - ts % MINUTE_NS
        ex = trade.exchange
        wm = self._watermarks.get(ex)
        if wm is None or ts > wm:
            self._watermarks[ex] = ts
        s = self._symbols.get((ex, trade.symbol))
        if s is None:
            s = self._sym(ex, trade.symbol, trade.native)
        hot = s.hot  # when set, the bar of its start in s.bars
        if hot is not None and hot.start == start:  # nearly every trade: no other bar to look at
            s.arrivals += 1
            if hot.add(trade, order_key(trade, s.arrivals)):
                s.last_start = start
            return []
        acc = s.bars.get(start)
        out: list[Bar] = []
        if acc is None:
            if start + MINUTE_NS + self.keep_ns <= self._watermarks[ex] or (s.floor is not None and start <= s.floor):
                self.late += 1  # its minute is beyond revision (forgotten, or older than what was restored)
                return out
            acc = s.bars[start] = _Acc(start)
            if not s.known and s.partial_start is None:
                s.partial_start = start
        # Every open bar before this minute is complete now: a later trade arrived.
        for earlier in sorted(b for b in s.bars if b < start and not s.bars[b].published):
            out.append(self._publish(s, s.bars[earlier], trade.ts_recv))
        s.arrivals += 1
        later = any(b > start for b in s.bars)
        if acc.add(trade, order_key(trade, s.arrivals)):
            s.last_start = start
            if acc.published or later:  # a closed minute, or an empty one now late
                out.append(self._publish(s, acc, trade.ts_recv))
        if not (acc.published or later):
            s.hot = acc
        return out

    def _gap(self, gap: TradeGap) -> list[Bar]:
        s = self._sym(gap.exchange, gap.symbol, gap.native)
        acc = s.bars.get(s.last_start) if s.last_start is not None else None
        if acc is None:
            return []
        acc.missing += gap.gap_to - gap.gap_from + 1
        return [self._publish(s, acc, gap.ts_recv)] if acc.published else []

    def _publish(self, s: _Symbol, acc: _Acc, ts_recv: int) -> Bar:
        s.hot = None
        acc.revision += 1
        partial = (PARTIAL_START if acc.start == s.partial_start else 0) | (PARTIAL_END if acc.cut else 0)
        return acc.bar(s.exchange, s.symbol, s.native, partial, ts_recv)

    def flush(self, now: int) -> list[Bar]:
        """The shard stops: publish every open bar now, marked `PARTIAL_END` (the trades of the rest of
        its minute will not be seen), so a stop never leaves a minute without its bar."""
        out: list[Bar] = []
        for s in self._symbols.values():
            for start in sorted(s.bars):
                acc = s.bars[start]
                if not acc.published:
                    acc.cut = True
                    out.append(self._publish(s, acc, now))
        return out

    def advance(self, exchange: str, watermark: int, now: int) -> list[Bar]:
        """The exchange's clock reached ``watermark`` (ns): close the bars whose minute ended more than
        ``grace`` before it, and forget closed bars past ``keep``. ``now`` stamps the bars."""
        wm = max(self._watermarks.get(exchange, watermark), watermark)
        self._watermarks[exchange] = wm
        out: list[Bar] = []
        for s in self._symbols.values():
            if s.exchange != exchange:
                continue
            for start in sorted(s.bars):
                acc = s.bars[start]
                end = start + MINUTE_NS
                if not acc.published and end + self.grace_ns <= wm:
                    out.append(self._publish(s, acc, now))
                if acc.published and end + self.keep_ns <= wm and start != s.last_start:
                    del s.bars[start]
        return out

    # -- a restarted shard ------------------------------------------------------------------------

    def restore(
        self, exchange: str, symbol: str, native: str, events: Sequence[Trade | TradeGap],
        published: Sequence[Bar], now: int,
    ) -> list[Bar]:  # fmt: skip
        """Take up a symbol where a previous life of the shard left it.

        ``events``: the tail of the symbol's trade stream in stream order (at least from the minute of
        the newest bar in ``published``, which is the tail of its bar stream). Bars of minutes from
        that newest published one on are rebuilt from the trades; the newest published minute keeps
        its revision number and is published again (revised) if the trades say otherwise (a trade
        whose revision the previous life did not get out); later minutes before the last trade's are
        complete, and published. The last trade's minute stays open. Without any bar published, the
        first minute is the symbol's first bar (`PARTIAL_START`)."""
        s = self._sym(exchange, symbol, native)
        s.hot = None
        s.known = s.known or bool(events) or bool(published)
        last_pub: dict[int, Bar] = {}
        for b in published:
            if b.start not in last_pub or b.revision >= last_pub[b.start].revision:
                last_pub[b.start] = b
        newest = max(last_pub) if last_pub else None
        for ev in events:
            if isinstance(ev, TradeGap):
                acc = s.bars.get(s.last_start) if s.last_start is not None else None
                if acc is not None:
                    acc.missing += ev.gap_to - ev.gap_from + 1
                continue
            start = minute_start(ev.ts_exchange)
            if newest is not None and start < newest:
                continue
            s.arrivals += 1
            acc = s.bars.setdefault(start, _Acc(start))
            if acc.add(ev, order_key(ev, s.arrivals)):
                s.last_start = start
            self._watermarks[exchange] = max(self._watermarks.get(exchange, ev.ts_exchange), ev.ts_exchange)
        if not last_pub and s.bars and s.partial_start is None:
            s.partial_start = min(s.bars)  # no bar out yet: the first one of the symbol, begun before us
        out: list[Bar] = []
        last_trade_minute = max(s.bars) if s.bars else None  # the newest minute stays open
        for start in sorted(s.bars):
            acc = s.bars[start]
            if start == newest:
                prev = last_pub[start]
                acc.revision = prev.revision
                if prev.partial & PARTIAL_START:
                    s.partial_start = start
                mine = acc.bar(exchange, symbol, native, prev.partial & PARTIAL_START, now)
                if content(mine) != content(prev) or (mine.backfilled, mine.missing) != (
                    prev.backfilled, prev.missing
                ):
                    out.append(self._publish(s, acc, now))
            elif start != last_trade_minute and (newest is None or start > newest):
                out.append(self._publish(s, acc, now))
        if newest is not None:
            s.floor = newest - 1 if newest in s.bars else newest
        return out
