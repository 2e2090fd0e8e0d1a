"""Compare what landed in Redis with the simulator's ground truth.

Trades: every trade the simulator generated after a symbol's first subscription must be in that
symbol's trade stream exactly once, in id order, with the same price, quantity and side, or inside
a published trade gap (counted as ``lost_reported``, never as ``lost``); every gap must cover real
trades that are not in the stream (else it counts in ``gaps_false``). Books: the
book rebuilt from its stream (last snapshot plus the deltas after it) must equal the simulator's
final book at every level, at the depth the simulated exchange serves it (the whole book where the
exchange's snapshots cover it, the subscribed depth where the exchange truncates).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import redis

from bus import wire
from ingest.book.book import OrderBook
from ingest.events import BookDelta, BookSnapshot, Trade, TradeGap
from tools.sim.truth import GroundTruth, TruthBook, load_truth

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


def verify(client: redis.Redis, prefix: str, truth: GroundTruth, since: str = "-") -> dict[str, Any]:
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
    }
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
    result["verified"] = (
        result["books_checked"] > 0
        and result["trades_expected"] > 0
        and all(
            result[k] == 0
            for k in ("lost", "duplicated", "out_of_order", "trades_mismatched", "gaps_false", "books_mismatched")
        )
    )
    return result


def caught_up(client: redis.Redis, prefix: str, truth: GroundTruth, since: str = "-") -> bool:
    """True once every symbol's last trade and last book update from the simulator is in Redis."""
    for (exchange, symbol), trades in truth.trades.items():
        if trades:
            rows = cast(Rows, client.xrevrange(f"{prefix}:trade:{exchange}:{symbol}", max="+", min=since, count=1))
            if not rows:
                return False
            last = rows[0][1]
            if int(last.get(b"trade_id") or last[b"gap_to"]) < trades[-1].trade_id:
                return False
    for (exchange, symbol), tb in truth.books.items():
        key = f"{prefix}:book:{exchange}:{symbol}"
        rows = cast(Rows, client.xrevrange(key, max="+", min=since, count=20))
        books = [f for _, f in rows if f[b"type"] in (b"snapshot", b"delta")]
        if not books:
            return False
        if books[0][b"seq"]:
            if max(int(f[b"seq"]) for f in books if f[b"seq"]) < tb.update_id:
                return False
        elif not _same_book(rebuild_book(client, key, since), tb):  # no update ids: compare the books
            return False
    return True


def _same_book(book: OrderBook, tb: TruthBook) -> bool:
    bids, asks = book.depth()
    return bids == [tuple(x) for x in tb.bids] and asks == [tuple(x) for x in tb.asks]


def wait_caught_up(client: redis.Redis, prefix: str, truth_path: Path, since: str, timeout: float) -> bool:
    """Wait until the cluster has written everything a frozen simulator sent (False on timeout)."""
    truth = load_truth(truth_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if caught_up(client, prefix, truth, since):
            return True
        time.sleep(0.2)
    return False
