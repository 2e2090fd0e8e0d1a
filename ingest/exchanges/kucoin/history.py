"""KuCoin's REST trade history, for backfilling trades a feed missed (`TradeHistory`).

``GET /api/v1/market/histories?symbol=BTC-USDT`` returns the symbol's **last 100 trades** and takes no
other parameter: no paging, no ``from`` id (KuCoin docs, "Get Trade Histories",
https://www.kucoin.com/docs/rest/spot-trading/market-data/get-trade-histories)::

    {"code":"200000","data":[{"sequence":"1545896668571","price":"0.07","size":"0.004","side":"buy",
     "time":1545904567062140823}, ..]}

``side`` is the taker's, ``time`` nanoseconds. The rows carry no ``tradeId``: the only key they share
with the ``/market/match`` stream is ``sequence``, which is why the codec makes a match's
``sequence`` its ``trade_id`` (both name a fill by its place in the symbol's book sequence [INFER:
the docs give the same field name and magnitude in both; to confirm on live data]). Sequences grow
per symbol but are not consecutive (orders placed and cancelled take sequences too), so the runner
backfills after every spell without a session (``trade_ids_contiguous`` is false).

One page is all there is. It covers the range between two trades when its oldest row is at or
before the ``after`` trade; then `next_url` says the range is read. When even the oldest of the
last 100 trades is newer than ``after`` (more than 100 trades went by), the history no longer holds
the start of the range: `next_url` raises `RemoteError`, and the runner publishes what it got and
reports the range as a `TradeGap` rather than let trades go missing unreported. Pure.
"""

from __future__ import annotations

from typing import Any

from ingest.errors import DecodeError, RemoteError
from ingest.events import Trade
from ingest.exchanges.base import TradeHistory
from ingest.exchanges.fields import loads_object
from ingest.exchanges.kucoin import messages as m
from ingest.exchanges.kucoin.codec import EXCHANGE

PAGE = 100  # what KuCoin returns, always


def page_url(rest_url: str, native: str, after: Trade, before: Trade) -> str:
    return f"{rest_url.rstrip('/')}/api/v1/market/histories?symbol={native}"


def next_url(rest_url: str, native: str, after: Trade, before: Trade, page: list[Trade]) -> str | None:
    if not page or min(int(t.trade_id) for t in page) > int(after.trade_id):
        raise RemoteError(
            f"the {native} trade history (the last {PAGE} trades) no longer reaches back to trade {after.trade_id}"
        )
    return None


def decode(body: bytes, native: str, symbol: str, ts_recv: int) -> list[Trade]:
    """A page's trades. `DecodeError` for a refusal or anything malformed."""
    try:
        rows = m.parse_response(loads_object(body), "trade history")
        if not isinstance(rows, list):
            raise DecodeError("trade history 'data' is not a list")
        return [_trade(row, native, symbol, ts_recv) for row in rows]
    except DecodeError as exc:
        raise DecodeError(str(exc), body) from None


def _trade(raw: Any, native: str, symbol: str, ts_recv: int) -> Trade:
    row = m.parse_history_row(raw)
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol,
        native=native,
        trade_id=str(row.sequence),
        price=row.price,
        qty=row.size,
        side=row.side,
        ts_exchange=row.time,
        ts_recv=ts_recv,
    )


HISTORY = TradeHistory(page_url=page_url, next_url=next_url, decode=decode, max_pages=1)
