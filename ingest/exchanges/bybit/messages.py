"""Bybit v5 public wire messages as frozen typed structs whose fields copy Bybit's keys.

Each ``parse_*`` takes one already JSON-decoded object and returns the struct, or raises
`ingest.errors.DecodeError` if a field is missing, has the wrong type or holds a value Bybit never
sends. Key order is never relied on (spot puts ``ts`` before ``type``; other categories do not).

Values checked: prices and sizes are the exchange's plain decimal strings (`ingest.exchanges.fields.
DECIMAL`), a price is never zero, nor a trade's size; ``u`` is 1 or more (1 marks a restart of the
book service), ``seq`` a non-negative 64-bit integer; times are milliseconds since the epoch that fit
64-bit nanoseconds; a trade's side is ``Buy`` or ``Sell`` and its id ``i`` 1-64 letters, digits and
``-`` (spot ids are digits, ``"2290000000061666327"``; derivatives send UUIDs). Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ingest.errors import DecodeError
from ingest.exchanges.fields import INT64_MAX, MAX_MS, is_zero, ms_time, natural, plain_decimal, positive_decimal
from ingest.exchanges.fields import boolean as _bool
from ingest.exchanges.fields import field as _field
from ingest.exchanges.fields import integer as _int
from ingest.exchanges.fields import list_value as _list
from ingest.exchanges.fields import object_value as _dict
from ingest.exchanges.fields import opt_string as _opt_str
from ingest.exchanges.fields import string as _str

Pair = tuple[str, str]
Side = Literal["Buy", "Sell"]

_TRADE_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class BookData:
    """``data`` of an ``orderbook.{depth}.{symbol}`` push (and ``result`` of REST ``/v5/market/orderbook``).
    ``b`` best (highest) first, ``a`` best (lowest) first; sizes absolute, ``"0"`` deletes."""

    s: str
    b: tuple[Pair, ...]
    a: tuple[Pair, ...]
    u: int
    seq: int | None


@dataclass(frozen=True, slots=True)
class OrderbookPush:
    topic: str
    type: Literal["snapshot", "delta"]
    ts: int
    data: BookData
    cts: int | None


@dataclass(frozen=True, slots=True)
class TradeData:
    """One element of a ``publicTrade.{symbol}`` push. ``S`` is the taker's side; ``i`` the trade id."""

    T: int
    s: str
    S: Side
    v: str
    p: str
    i: str
    BT: bool | None
    L: str | None
    seq: int | None


@dataclass(frozen=True, slots=True)
class PublicTradePush:
    topic: str
    type: str
    ts: int
    data: tuple[TradeData, ...]


@dataclass(frozen=True, slots=True)
class OpResponse:
    """The answer to a request: ``subscribe``/``unsubscribe`` acks (``success`` false: a refusal, the
    reason in ``ret_msg``) and the pong, ``op`` ``"ping"`` (spot, ``ret_msg`` ``"pong"``) or ``"pong"``
    (the private streams' shape)."""

    op: str
    success: bool | None
    ret_msg: str
    conn_id: str | None
    req_id: str | None


@dataclass(frozen=True, slots=True)
class RecentTrade:
    """A row of REST ``/v5/market/recent-trade``: ``side`` the taker's, ``time`` ms as a string."""

    execId: str
    symbol: str
    price: str
    size: str
    side: Side
    time: int
    isBlockTrade: bool | None


@dataclass(frozen=True, slots=True)
class RestResponse:
    """The envelope of every v5 REST answer: ``retCode`` 0 is success, anything else a refusal."""

    retCode: int
    retMsg: str
    result: dict[str, Any]


# -- field readers -----------------------------------------------------------------------------------


def _opt_natural(msg: dict[str, Any], key: str) -> int | None:
    return None if msg.get(key) is None else natural(msg, key)


def _opt_ms(msg: dict[str, Any], key: str) -> int | None:
    return None if msg.get(key) is None else ms_time(msg, key)


def _update_id(msg: dict[str, Any]) -> int:
    value = natural(msg, "u")
    if value < 1:
        raise DecodeError(f"field 'u' must be 1 or more, got {value}")
    return value


def _side(msg: dict[str, Any], key: str) -> Side:
    value = _str(msg, key)
    if value == "Buy":
        return "Buy"
    if value == "Sell":
        return "Sell"
    raise DecodeError(f"field {key!r} must be Buy or Sell, got {value[:40]!r}")


def _trade_id(msg: dict[str, Any], key: str) -> str:
    value = _str(msg, key)
    if not _TRADE_ID.fullmatch(value):
        raise DecodeError(f"field {key!r} is not a trade id: {value[:40]!r}")
    return value


def _ms_string(msg: dict[str, Any], key: str) -> int:
    """A millisecond time spelt as a string of digits (REST rows)."""
    value = _str(msg, key)
    if not _DIGITS.fullmatch(value) or int(value) > MAX_MS:
        raise DecodeError(f"field {key!r} is not a millisecond timestamp: {value[:40]!r}")
    return int(value)


def _levels(msg: dict[str, Any], key: str) -> tuple[Pair, ...]:
    out: list[Pair] = []
    for level in _list(_field(msg, key), key):
        if not isinstance(level, list) or len(level) != 2:
            raise DecodeError(f"field {key!r} holds a level that is not [price, size]")
        px, sz = level
        if not (isinstance(px, str) and isinstance(sz, str)):
            raise DecodeError(f"field {key!r} holds a level whose price or size is not a string")
        if not (plain_decimal(px) and plain_decimal(sz)):
            raise DecodeError(f"field {key!r} holds a level that is not decimal: {[px[:40], sz[:40]]!r}")
        if is_zero(px):
            raise DecodeError(f"field {key!r} holds a level at price zero: {[px[:40], sz[:40]]!r}")
        out.append((px, sz))
    return tuple(out)


# -- parsers -------------------------------------------------------------------------------------------


def parse_book_data(msg: dict[str, Any]) -> BookData:
    return BookData(
        s=_str(msg, "s"), b=_levels(msg, "b"), a=_levels(msg, "a"), u=_update_id(msg), seq=_opt_natural(msg, "seq")
    )


def parse_orderbook_push(msg: dict[str, Any]) -> OrderbookPush:
    kind = _str(msg, "type")
    if kind not in ("snapshot", "delta"):
        raise DecodeError(f"field 'type' must be snapshot or delta, got {kind[:40]!r}")
    return OrderbookPush(
        topic=_str(msg, "topic"),
        type="snapshot" if kind == "snapshot" else "delta",
        ts=ms_time(msg, "ts"),
        data=parse_book_data(_dict(_field(msg, "data"), "data")),
        cts=_opt_ms(msg, "cts"),
    )


def parse_trade_data(msg: dict[str, Any]) -> TradeData:
    return TradeData(
        T=ms_time(msg, "T"),
        s=_str(msg, "s"),
        S=_side(msg, "S"),
        v=positive_decimal(msg, "v"),
        p=positive_decimal(msg, "p"),
        i=_trade_id(msg, "i"),
        BT=None if msg.get("BT") is None else _bool(msg, "BT"),
        L=_opt_str(msg, "L"),
        seq=_opt_natural(msg, "seq"),
    )


def parse_public_trade_push(msg: dict[str, Any]) -> PublicTradePush:
    rows = _list(_field(msg, "data"), "data")
    return PublicTradePush(
        topic=_str(msg, "topic"),
        type=_str(msg, "type"),
        ts=ms_time(msg, "ts"),
        data=tuple(parse_trade_data(_dict(row, "data")) for row in rows),
    )


def parse_op_response(msg: dict[str, Any]) -> OpResponse:
    success = None if msg.get("success") is None else _bool(msg, "success")
    return OpResponse(
        op=_str(msg, "op"),
        success=success,
        ret_msg=_opt_str(msg, "ret_msg") or "",
        conn_id=_opt_str(msg, "conn_id"),
        req_id=_opt_str(msg, "req_id"),
    )


def parse_rest_response(msg: dict[str, Any]) -> RestResponse:
    code = _int(msg, "retCode")
    if not -INT64_MAX <= code <= INT64_MAX:
        raise DecodeError(f"field 'retCode' out of range: {code}")
    result = msg.get("result")
    return RestResponse(
        retCode=code,
        retMsg=_opt_str(msg, "retMsg") or "",
        result={} if result is None or result == {} else _dict(result, "result"),
    )


def parse_recent_trade(msg: dict[str, Any]) -> RecentTrade:
    return RecentTrade(
        execId=_trade_id(msg, "execId"),
        symbol=_str(msg, "symbol"),
        price=positive_decimal(msg, "price"),
        size=positive_decimal(msg, "size"),
        side=_side(msg, "side"),
        time=_ms_string(msg, "time"),
        isBlockTrade=None if msg.get("isBlockTrade") is None else _bool(msg, "isBlockTrade"),
    )


def parse_recent_trades(result: dict[str, Any]) -> tuple[RecentTrade, ...]:
    """``result`` of ``/v5/market/recent-trade``: ``{"category":..,"list":[..]}``."""
    return tuple(parse_recent_trade(_dict(row, "list")) for row in _list(_field(result, "list"), "list"))
