"""Coinbase's REST public market trades, for backfilling trades a feed missed (`TradeHistory`).

``GET /api/v3/brokerage/market/products/{product_id}/ticker?limit=N[&start=S][&end=E]`` (Advanced
Trade "Get Public Market Trades"; no authentication; the authenticated twin is
``/api/v3/brokerage/products/{product_id}/ticker``, docs.cdp.coinbase.com "Get Market Trades"). What
this module relies on, from those pages: ``limit`` (required) is the number of trades returned, the
newest ones; ``start`` and ``end`` are optional UNIX timestamps (seconds) bounding the interval; the
body is ``{"trades":[{"trade_id","product_id","price","size","time","side","exchange"}..],
"best_bid":..,"best_ask":..}`` with ``time`` in RFC 3339. The docs name no largest ``limit`` and do
not say whether ``end`` is inclusive. ``side`` is read as in the ``market_trades`` channel (the
maker's, see `ingest.exchanges.coinbase.codec.SIDE_IS_MAKER`).

Real trade ids are consecutive integers per product (a ``market_trades`` capture, ccxt issue #27606:
929248657, ..658, ..659, then ..660-663 in one message), so the spec declares them contiguous and
this history is read until it holds every id of the hole. Pages go backwards in time: the first is
the newest ``PAGE`` trades; each next one asks for those up to the oldest trade's second (``end`` =
that second + 1, so the second is covered whether ``end`` is inclusive or not; trades read twice are
merged by id) until a page reaches the ``after`` trade. An empty page before then means the history
no longer holds the hole's start: `next_url` raises `RemoteError` and the runner reports the rest as
a `TradeGap`. So does a page whose trades all fall in one second (more than ``PAGE`` trades in one
second: asking again for that second would return the same page). Pure.
"""

from __future__ import annotations

from ingest.errors import DecodeError, RemoteError
from ingest.events import Trade
from ingest.exchanges.base import TradeHistory
from ingest.exchanges.coinbase import messages as m
from ingest.exchanges.coinbase.codec import CoinbaseCodec
from ingest.exchanges.fields import loads_object

PAGE = 1000  # trades a page asks for; the docs name no maximum
NS_PER_S = 1_000_000_000


def page_url(rest_url: str, native: str, after: Trade, before: Trade) -> str:
    return _url(rest_url, native, None)


def next_url(rest_url: str, native: str, after: Trade, before: Trade, page: list[Trade]) -> str | None:
    if not page:
        raise RemoteError(f"the {native} trade history ends before trade {after.trade_id}: it no longer holds it")
    numeric = [int(t.trade_id) for t in page if t.trade_id.isdigit()]
    if numeric and min(numeric) <= int(after.trade_id):
        return None
    oldest = min(t.ts_exchange for t in page) // NS_PER_S
    if max(t.ts_exchange for t in page) // NS_PER_S == oldest:
        raise RemoteError(f"more than {len(page)} {native} trades in one second: the history cannot page past them")
    return _url(rest_url, native, oldest + 1)


def _url(rest_url: str, native: str, end: int | None) -> str:
    url = f"{rest_url.rstrip('/')}/api/v3/brokerage/market/products/{native}/ticker?limit={PAGE}"
    return url if end is None else f"{url}&end={end}"


def decode(body: bytes, native: str, symbol: str, ts_recv: int) -> list[Trade]:
    """A page's trades (newest first, as sent). `DecodeError` for anything malformed, including a row
    of another product or a body without ``trades`` (an error answer)."""
    msg = loads_object(body)
    try:
        rows = m.parse_trades_page(msg)
    except DecodeError as exc:
        raise DecodeError(f"not a public market trades page: {exc}", body) from None
    codec = CoinbaseCodec({native: symbol})
    out: list[Trade] = []
    for row in rows:
        if row.product_id != native:
            raise DecodeError(f"trade history row of {row.product_id[:40]!r} in a page of {native}", body)
        out.append(codec.trade(row, ts_recv))
    return out


HISTORY = TradeHistory(page_url=page_url, next_url=next_url, decode=decode)
