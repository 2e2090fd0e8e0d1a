"""OKX v5 public wire messages as frozen typed structs whose fields copy OKX's keys.

Each ``parse_*`` takes one already JSON-decoded message and returns the struct, or raises
`ingest.errors.DecodeError` if a field is missing, has the wrong type or a value OKX never sends.
Prices and sizes stay the exchange's decimal strings (checked to be plain non-negative decimals; a
price is never zero, nor a trade's size); OKX's millisecond timestamps arrive as strings of digits
and are kept as integers that fit 64-bit nanoseconds; trade ids are strings of digits; seqIds are
non-negative (``prevSeqId`` -1 in a snapshot) and the checksum a signed 32-bit integer. Pure: no
I/O, no clock.

Optional fields are the ones older sessions lack: ``seqId``/``prevSeqId`` (book messages before about
2023), ``checksum`` (REST books), ``count``/``source``/``seqId`` (trades before their introduction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ingest.errors import DecodeError
from ingest.exchanges.fields import INT64_MAX, MAX_MS, plain_decimal
from ingest.exchanges.fields import field as _field
from ingest.exchanges.fields import is_zero as _is_zero
from ingest.exchanges.fields import list_value as _list
from ingest.exchanges.fields import object_value as _dict
from ingest.exchanges.fields import opt_integer as _opt_int
from ingest.exchanges.fields import opt_string as _opt_str
from ingest.exchanges.fields import positive_decimal as _positive
from ingest.exchanges.fields import string as _str

Pair = tuple[str, str]
Action = Literal["snapshot", "update"]
Side = Literal["buy", "sell"]

_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class Arg:
    """The channel a push or an ack is about."""

    channel: str
    instId: str


@dataclass(frozen=True, slots=True)
class BookData:
    """One element of a ``books`` push (or a REST books row).

    Levels are ``[px, sz, liquidated orders (deprecated, "0"), numOrders]`` on the wire; only
    ``(px, sz)`` is kept. ``sz`` is absolute, ``"0"`` deletes. ``checksum`` 0 means "not provided"
    (the field is deprecated); ``prevSeqId`` is -1 in a snapshot."""

    asks: tuple[Pair, ...]
    bids: tuple[Pair, ...]
    ts: int
    checksum: int | None
    prevSeqId: int | None
    seqId: int | None


@dataclass(frozen=True, slots=True)
class BooksPush:
    """``{"arg":{"channel":"books",..},"action":"snapshot"|"update","data":[..]}``."""

    arg: Arg
    action: Action
    data: tuple[BookData, ...]


@dataclass(frozen=True, slots=True)
class TradeData:
    """One element of a ``trades`` push: the fills of one taker order at one price, aggregated.

    ``tradeId`` is the last fill's id and ``count`` the number of fills, so ids
    ``tradeId - count + 1`` .. ``tradeId`` are covered (``count`` is 1 where it is absent). ``side`` is
    the taker's."""

    instId: str
    tradeId: str
    px: str
    sz: str
    side: Side
    ts: int
    count: int
    source: str | None
    seqId: int | None


@dataclass(frozen=True, slots=True)
class TradesPush:
    arg: Arg
    data: tuple[TradeData, ...]


@dataclass(frozen=True, slots=True)
class SubscriptionEvent:
    """An ack: ``{"id":..,"event":"subscribe"|"unsubscribe","arg":{..},"connId":..}``."""

    event: str
    arg: Arg | None
    id: str | None
    connId: str | None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A refused request: ``{"id":..,"event":"error","code":"60012","msg":"..","connId":..}``."""

    event: str
    code: str
    msg: str
    id: str | None
    connId: str | None


@dataclass(frozen=True, slots=True)
class NoticeEvent:
    """``{"event":"notice","code":"64008","msg":..,"connId":..}``: 64008 announces a disconnect for a
    service upgrade (about 60 s ahead)."""

    event: str
    code: str
    msg: str
    connId: str | None


@dataclass(frozen=True, slots=True)
class RestBooks:
    """REST ``GET /api/v5/market/books``: ``{"code":"0","msg":"","data":[{asks,bids,ts,seqId}]}``."""

    code: str
    msg: str
    data: tuple[BookData, ...]


# -- field readers -----------------------------------------------------------------------------------


def _code(msg: dict[str, Any], key: str) -> str:
    """OKX codes are strings of digits (``"60012"``); an integer is accepted too."""
    value = _field(msg, key)
    if type(value) is int:
        return str(value)
    if not isinstance(value, str):
        raise DecodeError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _ms(msg: dict[str, Any], key: str) -> int:
    """A millisecond timestamp, a string of digits on the wire."""
    value = _str(msg, key)
    if not _DIGITS.fullmatch(value) or int(value) > MAX_MS:
        raise DecodeError(f"field {key!r} is not a millisecond timestamp: {value[:40]!r}")
    return int(value)


def _opt_ranged(msg: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = _opt_int(msg, key)
    if value is not None and not lo <= value <= hi:
        raise DecodeError(f"field {key!r} out of range [{lo}, {hi}]: {value}")
    return value


def _levels(msg: dict[str, Any], key: str) -> tuple[Pair, ...]:
    out: list[Pair] = []
    for level in _list(_field(msg, key), key):
        if not isinstance(level, list) or len(level) < 2:
            raise DecodeError(f"field {key!r} holds a level that is not [px, sz, ..]")
        px, sz = level[0], level[1]
        if not (isinstance(px, str) and isinstance(sz, str)):
            raise DecodeError(f"field {key!r} holds a level whose px or sz is not a string")
        if not (plain_decimal(px) and plain_decimal(sz)):
            raise DecodeError(f"field {key!r} holds a level that is not decimal: {_excerpt(level)}")
        if _is_zero(px):
            raise DecodeError(f"field {key!r} holds a level at price zero: {_excerpt(level)}")
        out.append((px, sz))
    return tuple(out)


def _excerpt(level: list[Any]) -> str:
    return repr([str(v)[:40] for v in level[:2]])


def _arg(msg: dict[str, Any]) -> Arg:
    arg = _dict(_field(msg, "arg"), "arg")
    return Arg(channel=_str(arg, "channel"), instId=_str(arg, "instId"))


def _opt_arg(msg: dict[str, Any]) -> Arg | None:
    if msg.get("arg") is None:
        return None
    arg = _dict(msg["arg"], "arg")
    # Acks for channels without an instrument (``status``...) carry no instId.
    return Arg(channel=_str(arg, "channel"), instId=_opt_str(arg, "instId") or "")


def _elements(msg: dict[str, Any]) -> list[dict[str, Any]]:
    return [_dict(e, "data") for e in _list(_field(msg, "data"), "data")]


# -- parsers -----------------------------------------------------------------------------------------


def parse_book_data(msg: dict[str, Any]) -> BookData:
    return BookData(
        asks=_levels(msg, "asks"),
        bids=_levels(msg, "bids"),
        ts=_ms(msg, "ts"),
        checksum=_opt_ranged(msg, "checksum", -(2**31), 2**31 - 1),
        prevSeqId=_opt_ranged(msg, "prevSeqId", -1, INT64_MAX),
        seqId=_opt_ranged(msg, "seqId", 0, INT64_MAX),
    )


def parse_books_push(msg: dict[str, Any]) -> BooksPush:
    action = _str(msg, "action")
    if action not in ("snapshot", "update"):
        raise DecodeError(f"field 'action' must be snapshot or update, got {action[:40]!r}")
    return BooksPush(
        arg=_arg(msg),
        action="snapshot" if action == "snapshot" else "update",
        data=tuple(parse_book_data(e) for e in _elements(msg)),
    )


def parse_trade_data(msg: dict[str, Any]) -> TradeData:
    side = _str(msg, "side")
    if side not in ("buy", "sell"):
        raise DecodeError(f"field 'side' must be buy or sell, got {side[:40]!r}")
    count = 1
    if msg.get("count") is not None:
        raw = _str(msg, "count")
        if not _DIGITS.fullmatch(raw) or int(raw) < 1:
            raise DecodeError(f"field 'count' must be a whole number >= 1, got {raw[:40]!r}")
        count = int(raw)
    trade_id = _str(msg, "tradeId")
    if not _DIGITS.fullmatch(trade_id):
        raise DecodeError(f"field 'tradeId' is not a string of digits: {trade_id[:40]!r}")
    return TradeData(
        instId=_str(msg, "instId"),
        tradeId=trade_id,
        px=_positive(msg, "px"),
        sz=_positive(msg, "sz"),
        side="buy" if side == "buy" else "sell",
        ts=_ms(msg, "ts"),
        count=count,
        source=_opt_str(msg, "source"),
        seqId=_opt_ranged(msg, "seqId", 0, INT64_MAX),
    )


def parse_trades_push(msg: dict[str, Any]) -> TradesPush:
    return TradesPush(arg=_arg(msg), data=tuple(parse_trade_data(e) for e in _elements(msg)))


def parse_subscription_event(msg: dict[str, Any]) -> SubscriptionEvent:
    return SubscriptionEvent(
        event=_str(msg, "event"), arg=_opt_arg(msg), id=_opt_str(msg, "id"), connId=_opt_str(msg, "connId")
    )


def parse_error_event(msg: dict[str, Any]) -> ErrorEvent:
    return ErrorEvent(
        event=_str(msg, "event"),
        code=_code(msg, "code"),
        msg=_str(msg, "msg"),
        id=_opt_str(msg, "id"),
        connId=_opt_str(msg, "connId"),
    )


def parse_notice_event(msg: dict[str, Any]) -> NoticeEvent:
    return NoticeEvent(
        event=_str(msg, "event"), code=_code(msg, "code"), msg=_str(msg, "msg"), connId=_opt_str(msg, "connId")
    )


def parse_rest_books(msg: dict[str, Any]) -> RestBooks:
    return RestBooks(
        code=_code(msg, "code"),
        msg=_str(msg, "msg"),
        data=tuple(parse_book_data(e) for e in _elements(msg)),
    )
