"""Kraken's REST trade history, for backfilling trades a feed missed (`TradeHistory`).

``GET /0/public/Trades?pair=XBTUSD&since=<ns>&count=1000`` (Kraken docs, "Get Recent Trades",
https://docs.kraken.com/api/docs/rest-api/get-recent-trades/) returns up to ``count`` (at most 1000)
trades after the time ``since``, oldest first::

    {"error": [], "result": {"XXBTZUSD": [["30243.40000", "0.34507674", 1688669597.8277369, "b", "m", "",
     61044952], ..], "last": "1688671969993150842"}}

Each row is ``[price, volume, time, buy/sell, market/limit, miscellaneous, trade_id]``: price and
volume are decimal strings, ``time`` a JSON number of seconds, ``"b"``/``"s"`` the taker's side and
``trade_id`` the same per-pair sequence number as the WebSocket v2 ``trade`` channel's ``trade_id``.
The result's key is Kraken's own name for the pair (``XXBTZUSD``), not the one asked for, so the one
list in the result is the page whatever its key. A failure is ``{"error": ["EQuery:Unknown asset
pair"]}`` (HTTP 200), which `decode` raises as a `DecodeError`.

Pairs are asked for by their REST *altname*: the v2 name without the ``/`` and with Kraken's legacy
asset codes (``BTC/USD`` -> ``XBTUSD``, ``DOGE/USD`` -> ``XDGUSD``), the form Kraken's REST API has
always accepted.

Paging is by time, ids are checked by the runner: ``since`` is exclusive (trades strictly after it),
so the first page asks from one nanosecond before the ``after`` trade's time (trades sharing its
timestamp are not skipped; the runner keeps only ids strictly between ``after`` and ``before``), and
each next page from one nanosecond before the newest time in the page (again so that trades sharing
it are read), or from that time itself when the whole page shares one timestamp (so paging always
moves on). Reading stops at an empty page or once a page reaches the trade before ``before``.

Times are converted exactly: the body is parsed with floats as `Decimal` (the number's own digits,
never a binary float), so ``1688669597.8277369`` is ``1688669597827736900`` ns. Pure.
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from typing import Any, NoReturn

from ingest.errors import DecodeError
from ingest.events import Trade
from ingest.exchanges.base import TradeHistory
from ingest.exchanges.fields import INT64_MAX, is_zero, plain_decimal
from ingest.exchanges.kraken.symbols import LEGACY_ASSETS
from ingest.units import NS_PER_S

EXCHANGE = "kraken"
PAGE = 1000  # Kraken's largest ``count``
# Common asset codes -> the legacy codes Kraken's REST altnames use.
_REST_ASSETS = {common: legacy for legacy, common in LEGACY_ASSETS.items()}
_SIDES = {"b": "buy", "s": "sell"}
_ROW_LEN = 7
_MAX_SECONDS = INT64_MAX // NS_PER_S + 1


def rest_pair(native: str) -> str:
    """The REST altname of a v2 pair: ``"BTC/USD"`` -> ``"XBTUSD"``, ``"ETH/USDT"`` -> ``"ETHUSDT"``."""
    base, _, quote = native.upper().partition("/")
    return _REST_ASSETS.get(base, base) + _REST_ASSETS.get(quote, quote)


def page_url(rest_url: str, native: str, after: Trade, before: Trade) -> str:
    return _url(rest_url, native, max(after.ts_exchange - 1, 0))


def next_url(rest_url: str, native: str, after: Trade, before: Trade, page: list[Trade]) -> str | None:
    if not page:
        return None
    if max(int(t.trade_id) for t in page) >= int(before.trade_id) - 1:
        return None
    newest, oldest = max(t.ts_exchange for t in page), min(t.ts_exchange for t in page)
    return _url(rest_url, native, newest - 1 if oldest < newest else newest)


def _url(rest_url: str, native: str, since: int) -> str:
    return f"{rest_url.rstrip('/')}/0/public/Trades?pair={rest_pair(native)}&since={since}&count={PAGE}"


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def decode(body: bytes, native: str, symbol: str, ts_recv: int) -> list[Trade]:
    """A page's trades, as the page has them (oldest first). `DecodeError` for an error body or
    anything malformed."""
    try:
        msg = json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, TypeError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        # RecursionError: the json module recurses per nesting level ([[[[... a thousand deep).
        raise DecodeError(f"trade history is not JSON: {e}", body) from None
    if not isinstance(msg, dict):
        raise DecodeError("trade history is not an object", body)
    errors = msg.get("error")
    if not isinstance(errors, list):
        raise DecodeError("trade history has no 'error' list", body)
    if errors:
        raise DecodeError(f"Kraken refused the trade history request: {'; '.join(map(str, errors))}", body)
    result = msg.get("result")
    if not isinstance(result, dict):
        raise DecodeError("trade history has no 'result' object", body)
    pages = [v for k, v in result.items() if k != "last"]
    if len(pages) != 1 or not isinstance(pages[0], list):
        raise DecodeError("trade history result must hold exactly one pair's list of trades", body)
    return [_trade(row, native, symbol, ts_recv) for row in pages[0]]


def _bad(problem: str, row: Any) -> NoReturn:
    raise DecodeError(f"trade history row {problem}", str(row))


def _decimal(row: list[Any], i: int, name: str) -> str:
    value = row[i]
    if not isinstance(value, str) or not plain_decimal(value) or is_zero(value):
        _bad(f"has a bad {name} (a non-zero decimal string is expected)", row)
    return value


def _time_ns(row: list[Any]) -> int:
    value = row[2]
    if not (isinstance(value, Decimal) or type(value) is int):
        _bad("has a bad time (seconds as a number are expected)", row)
    if not 0 <= value < _MAX_SECONDS:  # before converting: an absurd exponent would make a huge int
        _bad("has a time out of range", row)
    ns = int((Decimal(value) * NS_PER_S).to_integral_value(rounding=ROUND_DOWN))
    if not 0 <= ns <= INT64_MAX:
        _bad("has a time out of range", row)
    return ns


def _trade(row: Any, native: str, symbol: str, ts_recv: int) -> Trade:
    if not isinstance(row, list) or len(row) < _ROW_LEN:
        _bad(f"is not a list of {_ROW_LEN} fields", row)
    side = _SIDES.get(row[3]) if isinstance(row[3], str) else None
    if side is None:
        _bad("has a bad side (b or s is expected)", row)
    if row[4] not in ("m", "l"):
        _bad("has a bad order type (m or l is expected)", row)
    trade_id = row[6]
    if type(trade_id) is not int or not 0 <= trade_id <= INT64_MAX:
        _bad("has a bad trade_id (a non-negative integer is expected)", row)
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol,
        native=native,
        trade_id=str(trade_id),
        price=_decimal(row, 0, "price"),
        qty=_decimal(row, 1, "volume"),
        side="buy" if side == "buy" else "sell",
        ts_exchange=_time_ns(row),
        ts_recv=ts_recv,
    )


HISTORY = TradeHistory(page_url=page_url, next_url=next_url, decode=decode)
