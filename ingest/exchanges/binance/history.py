"""Binance's REST trade history, for backfilling trades a feed missed (`TradeHistory`).

``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=N&limit=1000`` returns the trades from id ``N``
on, oldest first: ``[{"id","price","qty","quoteQty","time","isBuyerMaker","isBestMatch"}, ..]``. The
ids are the ``t`` of the ``@trade`` stream, consecutive per symbol, so a range is read page after
page from its first id until the page reaches the end of the range. Pure.
"""

from __future__ import annotations

from typing import Any

import orjson

from ingest.errors import DecodeError
from ingest.events import Trade
from ingest.exchanges.base import TradeHistory
from ingest.exchanges.fields import boolean, ms_time, natural, positive_decimal
from ingest.units import ms_to_ns

EXCHANGE = "binance"
PAGE = 1000


def page_url(rest_url: str, native: str, after: Trade, before: Trade) -> str:
    return _url(rest_url, native, int(after.trade_id) + 1)


def next_url(rest_url: str, native: str, after: Trade, before: Trade, page: list[Trade]) -> str | None:
    if not page:
        return None
    last = max(int(t.trade_id) for t in page)
    return None if last + 1 >= int(before.trade_id) else _url(rest_url, native, last + 1)


def _url(rest_url: str, native: str, from_id: int) -> str:
    return f"{rest_url.rstrip('/')}/api/v3/historicalTrades?symbol={native.upper()}&fromId={from_id}&limit={PAGE}"


def decode(body: bytes, native: str, symbol: str, ts_recv: int) -> list[Trade]:
    try:
        rows = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"trade history is not JSON: {e}", body) from None
    if not isinstance(rows, list):
        raise DecodeError("trade history is not a list", body)
    return [_trade(row, native, symbol, ts_recv) for row in rows]


def _trade(row: Any, native: str, symbol: str, ts_recv: int) -> Trade:
    if not isinstance(row, dict):
        raise DecodeError("trade history entry is not an object", orjson.dumps(row))
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol,
        native=native,
        trade_id=str(natural(row, "id")),
        price=positive_decimal(row, "price"),
        qty=positive_decimal(row, "qty"),
        side="sell" if boolean(row, "isBuyerMaker") else "buy",  # the buyer made, so the taker sold
        ts_exchange=ms_to_ns(ms_time(row, "time")),
        ts_recv=ts_recv,
    )


HISTORY = TradeHistory(page_url=page_url, next_url=next_url, decode=decode)
