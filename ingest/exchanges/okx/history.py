"""OKX's REST trade history, for backfilling trades a feed missed (`TradeHistory`).

``GET /api/v5/market/history-trades?instId=BTC-USDT&type=1&after=<tradeId>&limit=100`` (OKX v5 docs,
"Get trades history", https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-trades-history)
pages by trade id (``type=1``): ``after`` asks for "records earlier than the requested tradeId", at most
``limit`` (100) of them, newest first::

    {"code": "0", "msg": "", "data": [{"instId": "BTC-USDT", "side": "sell", "sz": "0.00001",
     "px": "29963.2", "tradeId": "242720720", "ts": "1654161646974"}, ..]}

``side`` is the taker's, ``ts`` milliseconds as a string of digits; rows have the fields of a
``trades`` push element (`ingest.exchanges.okx.messages.parse_trade_data` reads them). A ``code``
other than ``"0"`` (``51001`` for an unknown instId) is a refusal, raised by `decode` as a `DecodeError`.

OKX trade ids grow but are not consecutive, so the runner backfills after any spell with no session
connected, whether or not anything was missed. Reading goes backwards: the first page asks for the
trades before the ``before`` trade, each next page for those before the oldest id of the last one,
until a page reaches the ``after`` trade's id (the range is then read completely: no trade is missing
from it, whatever ids it lacks).

A history that ends before it reaches the ``after`` trade (an empty page before then) no longer holds
the start of the range, so what it lacked cannot be told from what never happened; `next_url` then
raises `RemoteError` instead of reporting the range as read, and the runner publishes the range as a
`TradeGap` ("trade history unavailable") after the trades it did get, rather than let trades go
missing unreported. Pure.
"""

from __future__ import annotations

from typing import Any

from ingest.errors import DecodeError, RemoteError
from ingest.events import Trade
from ingest.exchanges.base import TradeHistory
from ingest.exchanges.fields import loads_object
from ingest.exchanges.okx import messages as m
from ingest.exchanges.okx.codec import EXCHANGE
from ingest.units import ms_to_ns

PAGE = 100  # OKX's largest ``limit``


def page_url(rest_url: str, native: str, after: Trade, before: Trade) -> str:
    return _url(rest_url, native, int(before.trade_id))


def next_url(rest_url: str, native: str, after: Trade, before: Trade, page: list[Trade]) -> str | None:
    if not page:
        raise RemoteError(f"the {native} trade history ends before trade {after.trade_id}: it no longer holds it")
    oldest = min(int(t.trade_id) for t in page)
    return None if oldest <= int(after.trade_id) else _url(rest_url, native, oldest)


def _url(rest_url: str, native: str, earlier_than: int) -> str:
    base = f"{rest_url.rstrip('/')}/api/v5/market/history-trades"
    return f"{base}?instId={native}&type=1&after={earlier_than}&limit={PAGE}"


def decode(body: bytes, native: str, symbol: str, ts_recv: int) -> list[Trade]:
    """A page's trades, as the page has them (newest first). `DecodeError` for a refusal or anything
    malformed, including a row of another instrument."""
    msg = loads_object(body)
    code = msg.get("code")
    if code != "0":
        raise DecodeError(f"OKX refused the trade history request: code {code!r}, msg {msg.get('msg')!r}", body)
    rows = msg.get("data")
    if not isinstance(rows, list):
        raise DecodeError("trade history has no 'data' list", body)
    return [_trade(row, native, symbol, ts_recv) for row in rows]


def _trade(row: Any, native: str, symbol: str, ts_recv: int) -> Trade:
    if not isinstance(row, dict):
        raise DecodeError("trade history row is not an object", str(row))
    t = m.parse_trade_data(row)
    if t.instId != native:
        raise DecodeError(f"trade history row of {t.instId[:40]!r} in a page of {native}", str(row))
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol,
        native=native,
        trade_id=t.tradeId,
        price=t.px,
        qty=t.sz,
        side=t.side,
        ts_exchange=ms_to_ns(t.ts),
        ts_recv=ts_recv,
    )


HISTORY = TradeHistory(page_url=page_url, next_url=next_url, decode=decode)
