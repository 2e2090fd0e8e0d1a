"""Bybit's REST recent trades, for backfilling trades a feed missed (`TradeHistory`).

``GET /v5/market/recent-trade?category=spot&symbol=BTCUSDT&limit=60`` ("Get Public Recent Trading
History", docs v5 market/recent-trade) returns the newest trades of a symbol, at most ``limit``: for
spot ``[1, 60]``, default 60 (other categories up to 1000). There is no cursor: Bybit offers no public
REST history deeper than that (older trades only as daily archive files on its website). A row::

    {"execId": "2100000000007764263", "symbol": "BTCUSDT", "price": "16618.49", "size": "0.00012",
     "side": "Buy", "time": "1672052955758", "isBlockTrade": false}

in ``{"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": [..]}, "time": ..}``.
``side`` is the taker's; ``execId`` is the WebSocket's trade id ``i``.

So a backfill reads one page, the newest 60 trades. When its oldest trade is at or before the trade
the feed last published, the range is covered (whatever ids it lacks never happened). Otherwise more
than 60 trades went by: `next_url` raises `RemoteError`, and the runner publishes the trades it got
and reports the range as a `TradeGap` ("trade history unavailable") rather than let trades go missing
unreported. Pure.
"""

from __future__ import annotations

from ingest.errors import DecodeError, RemoteError
from ingest.events import Trade
from ingest.exchanges.base import TradeHistory
from ingest.exchanges.bybit import messages as m
from ingest.exchanges.bybit.codec import EXCHANGE
from ingest.exchanges.fields import loads_object
from ingest.units import ms_to_ns

PAGE = 60  # Bybit's largest spot ``limit``
CATEGORY = "spot"


def page_url(rest_url: str, native: str, after: Trade, before: Trade) -> str:
    return f"{rest_url.rstrip('/')}/v5/market/recent-trade?category={CATEGORY}&symbol={native}&limit={PAGE}"


def next_url(rest_url: str, native: str, after: Trade, before: Trade, page: list[Trade]) -> str | None:
    """None once the page reaches back to ``after``; there is never a next page to read."""
    ids = [t.trade_id for t in page]
    comparable = ids and after.trade_id.isdigit() and all(i.isdigit() for i in ids)
    if comparable and min(int(i) for i in ids) <= int(after.trade_id):
        return None
    raise RemoteError(f"the {native} recent trades (the newest {PAGE}) no longer reach back to trade {after.trade_id}")


def decode(body: bytes, native: str, symbol: str, ts_recv: int) -> list[Trade]:
    """A page's trades, as the page has them (newest first). `DecodeError` for a refusal
    (``retCode`` not 0) or anything malformed, including a row of another symbol."""
    msg = loads_object(body)
    try:
        resp = m.parse_rest_response(msg)
        if resp.retCode != 0:
            raise DecodeError(f"Bybit refused the recent trades request: {resp.retCode}: {resp.retMsg[:200]}")
        return [_trade(row, native, symbol, ts_recv) for row in m.parse_recent_trades(resp.result)]
    except DecodeError as exc:
        raise DecodeError(str(exc), body) from None


def _trade(row: m.RecentTrade, native: str, symbol: str, ts_recv: int) -> Trade:
    if row.symbol != native:
        raise DecodeError(f"recent trade of {row.symbol[:40]!r} in a page of {native}")
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol,
        native=native,
        trade_id=row.execId,
        price=row.price,
        qty=row.size,
        side="buy" if row.side == "Buy" else "sell",
        ts_exchange=ms_to_ns(row.time),
        ts_recv=ts_recv,
    )


HISTORY = TradeHistory(page_url=page_url, next_url=next_url, decode=decode, max_pages=1)
