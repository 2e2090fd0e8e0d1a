"""Compare what landed in Redis with the simulator's ground truth.

Trades: every trade the simulator generated after a symbol's first subscription must be in that
symbol's trade stream exactly once, in id order, with the same price, quantity and side, or inside
a published trade gap (counted as ``lost_reported``, never as ``lost``); every gap must cover real
trades that are not in the stream (else it counts in ``gaps_false``). Books: the
book rebuilt from its stream (last snapshot plus the deltas after it) must equal the simulator's
final book at every level, at the depth the simulated exchange serves it (the whole book where the
exchange's snapshots cover it, the subscribed depth where the exchange truncates).

Bars (when ``bar_grace`` is given, i.e. ``[bars] enabled``): the newest entry of each minute in a
symbol's bar stream must equal the bar of the simulator's trades of that minute (less the trades a
published gap reported lost): open, high, low, close, volume, notional, VWAP, trade count, first and
last trade id. A minute that ended ``grace`` before the market froze must have a bar; a bar for a
minute without trades is wrong. Each minute compared counts in ``bars_checked``, each difference
(or missing bar) in ``bars_mismatched``.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import redis

from bus import wire
from ingest.bars import MINUTE_NS, bar_of, content, minute_start
from ingest.book.book import OrderBook
from ingest.events import Bar, BookDelta, BookSnapshot, Trade, TradeGap
from tools.sim.truth import GroundTruth, TruthBook, TruthTrade, load_truth

PAGE = 10_000
Rows = list[tuple[bytes, dict[bytes, bytes]]]


def stream_entries(client: redis.Redis, key: str, since: str = "-") -> Iterator[dict[str, str]]:
    """Every entry of a stream from ``since`` on, decoded to str fields, in order."""
    start = since
    while True:
        rows = cast(Rows, client.xrange(key, min=start, max="+", count=PAGE))
        for entry_id, fields in rows:
            yield {k.decode(): v.decode() for k, v in fields.items()} | {"_id": entry_id.decode()}
        if len(rows) < PAGE:
            return
        start = "(" + rows[-1][0].decode()  # exclusive: the page after the last entry read


def rebuild_book(client: redis.Redis, key: str, since: str = "-") -> OrderBook:
    """The book as a consumer rebuilds it from its stream: the last snapshot, then its deltas."""
    book = OrderBook()
    for fields in stream_entries(client, key, since):
        if fields["type"] not in ("snapshot", "delta"):
            continue
        ev = wire.decode_fields(fields)
        if isinstance(ev, BookSnapshot):
            book.replace(ev.bids, ev.asks)
        elif isinstance(ev, BookDelta):
            book.apply(ev.bids, ev.asks)
    return book


def verify(
    client: redis.Redis, prefix: str, truth: GroundTruth, since: str = "-", bar_grace: float | None = None
) -> dict[str, Any]:
    """The verdict (README "--verify output"); bars are checked when ``bar_grace`` (seconds) is given."""
    result = {
        "verified": False,
        "trades_expected": 0,
        "trades_found": 0,
        "lost": 0,
        "duplicated": 0,
        "out_of_order": 0,
        "trades_mismatched": 0,
        "lost_reported": 0,
        "gaps_false": 0,
        "books_checked": 0,
        "books_mismatched": 0,
        "bars_checked": 0,
        "bars_mismatched": 0,
    }
    reported_lost: dict[tuple[str, str], set[str]] = {}
    for (exchange, symbol), expected in sorted(truth.trades.items()):
        key = f"{prefix}:trade:{exchange}:{symbol}"
        want = {str(t.trade_id): t for t in expected}
        seen: list[str] = []
        gaps: list[TradeGap] = []
        for fields in stream_entries(client, key, since):
            ev = wire.decode_fields(fields)
            if isinstance(ev, TradeGap):
                gaps.append(ev)
                continue
            assert isinstance(ev, Trade)
            seen.append(ev.trade_id)
            t = want.get(ev.trade_id)
            if t is not None and (ev.price, ev.qty, ev.side) != (t.price, t.qty, t.side):
                result["trades_mismatched"] += 1
        counts = Counter(seen)
        reported = {str(i) for g in gaps for i in range(g.gap_from, g.gap_to + 1)}
        reported_lost[(exchange, symbol)] = reported
        result["gaps_false"] += sum(1 for i in reported if i in counts or i not in want)
        result["trades_expected"] += len(want)
        result["trades_found"] += sum(1 for i in want if i in counts)
        result["lost"] += sum(1 for i in want if i not in counts and i not in reported)
        result["lost_reported"] += sum(1 for i in want if i not in counts and i in reported)
        result["duplicated"] += sum(c - 1 for c in counts.values() if c > 1)
        result["out_of_order"] += sum(1 for a, b in itertools.pairwise(seen) if int(b) < int(a))
    for (exchange, symbol), tb in sorted(truth.books.items()):
        result["books_checked"] += 1
        if not _same_book(rebuild_book(client, f"{prefix}:book:{exchange}:{symbol}", since), tb):
            result["books_mismatched"] += 1
    if bar_grace is not None:
        for sym, truth_trades in sorted(truth.trades.items()):
            checked, mismatched = _check_bars(client, prefix, sym, truth_trades, reported_lost.get(sym, set()),
                                              truth.frozen_ts, int(bar_grace * 1e9), since)  # fmt: skip
            result["bars_checked"] += checked
            result["bars_mismatched"] += mismatched
    result["verified"] = (
        result["books_checked"] > 0
        and result["trades_expected"] > 0
        and (bar_grace is None or result["bars_checked"] > 0)
        and all(
            result[k] == 0
            for k in ("lost", "duplicated", "out_of_order", "trades_mismatched", "gaps_false", "books_mismatched",
                      "bars_mismatched")
        )
    )  # fmt: skip
    return result


def truth_bars(exchange: str, symbol: str, trades: list[TruthTrade], leave_out: set[str]) -> dict[int, Bar]:
    """The bar of every minute of the simulator's trades (less ``leave_out`` ids), by minute start."""
    by_minute: dict[int, list[Trade]] = {}
    for t in trades:
        if str(t.trade_id) in leave_out:
            continue
        trade = Trade(exchange, symbol, "", str(t.trade_id), t.price, t.qty, t.side, t.ts, 0)
        by_minute.setdefault(minute_start(t.ts), []).append(trade)
    return {start: bar_of(ts) for start, ts in by_minute.items()}


def _required(starts: Iterable[int], frozen_ts: int | None, grace_ns: int) -> set[int]:
    """The minutes (of those with trades) that must have a bar: they ended ``grace`` before the market froze."""
    if frozen_ts is None:
        return set()
    return {start for start in starts if start + MINUTE_NS + grace_ns <= frozen_ts}


def _check_bars(
    client: redis.Redis, prefix: str, key: tuple[str, str], trades: list[TruthTrade], leave_out: set[str],
    frozen_ts: int | None, grace_ns: int, since: str,
) -> tuple[int, int]:  # fmt: skip
    """(minutes checked, minutes whose newest bar is wrong or missing) of one symbol."""
    exchange, symbol = key
    expected = truth_bars(exchange, symbol, trades, leave_out)
    got: dict[int, Bar] = {}
    for fields in stream_entries(client, f"{prefix}:bar:{exchange}:{symbol}", since):
        ev = wire.decode_fields(fields)
        if isinstance(ev, Bar):
            got[ev.start] = ev  # the newest entry of a minute is its bar
    starts = _required(expected, frozen_ts, grace_ns) | got.keys()
    mismatched = sum(1 for s in starts if s not in got or s not in expected or content(got[s]) != content(expected[s]))
    return len(starts), mismatched


def caught_up(
    client: redis.Redis, prefix: str, truth: GroundTruth, since: str = "-", bar_grace: float | None = None
) -> bool:
    """True once every symbol's last trade and last book update from the simulator is in Redis (and,
    with ``bar_grace``, the bar of the last minute that must have one)."""
    for (exchange, symbol), trades in truth.trades.items():
        if trades:
            rows = cast(Rows, client.xrevrange(f"{prefix}:trade:{exchange}:{symbol}", max="+", min=since, count=1))
            if not rows:
                return False
            last = rows[0][1]
            if int(last.get(b"trade_id") or last[b"gap_to"]) < trades[-1].trade_id:
                return False
            if bar_grace is not None and not _bars_caught_up(client, prefix, (exchange, symbol), trades, truth,
                                                             int(bar_grace * 1e9), since):  # fmt: skip
                return False
    for (exchange, symbol), tb in truth.books.items():
        key = f"{prefix}:book:{exchange}:{symbol}"
        rows = cast(Rows, client.xrevrange(key, max="+", min=since, count=20))
        books = [f for _, f in rows if f[b"type"] in (b"snapshot", b"delta")]
        if not books:
            return False
        if books[0][b"seq"] and max(int(f[b"seq"]) for f in books if f[b"seq"]) >= tb.update_id:
            continue
        # No update ids, or ids of the exchange's own (Bybit's per-topic `u` is not the market's update
        # id): compare the books themselves.
        if not _same_book(rebuild_book(client, key, since), tb):
            return False
    return True


def _bars_caught_up(client: redis.Redis, prefix: str, key: tuple[str, str], trades: list[TruthTrade],
                    truth: GroundTruth, grace_ns: int, since: str) -> bool:  # fmt: skip
    required = _required({minute_start(t.ts) for t in trades}, truth.frozen_ts, grace_ns)
    if not required:
        return True
    rows = cast(Rows, client.xrevrange(f"{prefix}:bar:{key[0]}:{key[1]}", max="+", min=since, count=20))
    return max((int(f[b"start"]) for _, f in rows), default=-1) >= max(required)  # revisions come late


def _same_book(book: OrderBook, tb: TruthBook) -> bool:
    bids, asks = book.depth()
    return bids == [tuple(x) for x in tb.bids] and asks == [tuple(x) for x in tb.asks]


def wait_caught_up(
    client: redis.Redis, prefix: str, truth_path: Path, since: str, timeout: float, bar_grace: float | None = None
) -> bool:
    """Wait until the cluster has written everything a frozen simulator sent (False on timeout)."""
    truth = load_truth(truth_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if caught_up(client, prefix, truth, since, bar_grace):
            return True
        time.sleep(0.2)
    return False
