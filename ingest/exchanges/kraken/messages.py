"""Kraken Spot wire messages (WebSocket v2, and v1 for recorded sessions) as frozen typed structs
whose fields copy Kraken's keys.

Each ``parse_*`` takes one already JSON-decoded message (or the part of it named in its docstring)
and returns the struct, or raises `ingest.errors.DecodeError` if a field is missing or has the wrong
type. v2 sends prices and quantities as JSON numbers: they must be decoded with
``parse_float=Decimal`` so that the literal digits survive (``0.10000000`` stays ten digits, never a
binary float), and they arrive here as `Decimal` (or `int` for a literal without a point); they are
checked to be finite, non-negative and of a sane size (at most 28 significant digits, no digit
beyond the 40th decimal or before the 31st integer one: no exchange sends more, and a
``1e99999999`` must not become a string of a hundred million digits). v1 sends fixed-decimal
strings, kept as they are and checked to be plain decimals (``"354.11000000"``). In both versions a
price is never zero (nor a trade's quantity), trade ids are non-negative, and times fit 64-bit
nanoseconds since the epoch. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from ingest.errors import DecodeError
from ingest.exchanges.fields import INT64_MAX, plain_decimal
from ingest.exchanges.fields import boolean as _bool
from ingest.exchanges.fields import field as _field
from ingest.exchanges.fields import integer as _int
from ingest.exchanges.fields import is_zero as _is_zero
from ingest.exchanges.fields import natural as _nat
from ingest.exchanges.fields import opt_integer as _opt_int
from ingest.exchanges.fields import opt_string as _opt_str
from ingest.exchanges.fields import string as _str

# -- v2 ------------------------------------------------------------------------------------------------

Entry = tuple[Decimal, Decimal]  # one {"price": .., "qty": ..} of a book message


@dataclass(frozen=True, slots=True)
class Envelope:
    """``{"channel": .., "type": .., "data": ..}``: every v2 channel message. ``type`` is
    ``"snapshot"`` or ``"update"`` (absent on ``heartbeat``)."""

    channel: str
    type: str | None
    data: Any


@dataclass(frozen=True, slots=True)
class Book:
    """One element of ``data`` in a ``book`` snapshot or update. Quantities are absolute, 0 deletes;
    ``checksum`` is the CRC32 of the book after this message. Snapshots may omit ``timestamp``."""

    symbol: str
    bids: tuple[Entry, ...]
    asks: tuple[Entry, ...]
    checksum: int
    timestamp: str | None


@dataclass(frozen=True, slots=True)
class Trade:
    """One element of ``data`` in a ``trade`` message. ``side`` is the taker's; ``trade_id`` is a
    sequence number, unique per book."""

    symbol: str
    side: Literal["buy", "sell"]
    price: Decimal
    qty: Decimal
    ord_type: str
    trade_id: int
    timestamp: str


@dataclass(frozen=True, slots=True)
class Pair:
    """One element of ``data.pairs`` in an ``instrument`` message (the keys we use)."""

    symbol: str
    price_precision: int
    qty_precision: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """``data`` of an ``instrument`` snapshot or update: the pairs that carry both precisions."""

    pairs: tuple[Pair, ...]


@dataclass(frozen=True, slots=True)
class MethodResponse:
    """The answer to a request (``subscribe``, ``unsubscribe``, ``ping`` -> ``pong``...):
    ``{"method":..,"success":..,"result":{..},"error":"..","req_id":..}``. ``pong`` has no
    ``success``: it is read as true."""

    method: str
    success: bool
    result: dict[str, Any] | None
    error: str | None
    req_id: int | None


# -- v1 ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelV1:
    """``[price, volume, timestamp]``, with a 4th element ``"r"`` when the level is republished."""

    price: str
    volume: str
    timestamp: str
    republish: bool


@dataclass(frozen=True, slots=True)
class EventV1:
    """An event message: ``systemStatus``, ``heartbeat``, ``pong``, ``error``, ``subscriptionStatus``.
    ``channelID``/``channelName``/``pair`` are set on a subscriptionStatus."""

    event: str
    status: str | None
    reqid: int | None
    errorMessage: str | None
    channelID: int | None
    channelName: str | None
    pair: str | None


@dataclass(frozen=True, slots=True)
class BookSnapshotV1:
    """``{"as": [...], "bs": [...]}``: asks and bids, best first."""

    as_: tuple[LevelV1, ...]  # Kraken's key is "as", a Python keyword
    bs: tuple[LevelV1, ...]


@dataclass(frozen=True, slots=True)
class BookUpdateV1:
    """One or two dicts ``{"a": [...]}``, ``{"b": [...], "c": "<crc>"}`` merged in order; ``c`` (the
    checksum, a quoted unsigned integer) is in the last dict."""

    a: tuple[LevelV1, ...]
    b: tuple[LevelV1, ...]
    c: str | None


@dataclass(frozen=True, slots=True)
class TradeV1:
    """``[price, volume, time, side, orderType, misc]``; ``side`` ``b``/``s`` is the taker's."""

    price: str
    volume: str
    time: str
    side: Literal["b", "s"]
    orderType: str
    misc: str


# -- field readers -------------------------------------------------------------------------------------


def _list(msg: dict[str, Any], key: str) -> list[Any]:
    value = _field(msg, key)
    if not isinstance(value, list):
        raise DecodeError(f"field {key!r} must be a list, got {type(value).__name__}")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be an object, got {type(value).__name__}")
    return value


MAX_DIGITS = 28  # significant digits: Decimal's default context, which normalize() rounds to
MAX_PLACES = 40  # decimals
MAX_INTEGER_DIGITS = 30


def _number(msg: dict[str, Any], key: str, positive: bool = False) -> Decimal:
    """A v2 price or quantity: a JSON number decoded exactly, finite, non-negative (not zero if
    ``positive``) and of a sane size (see the module docstring)."""
    value = _field(msg, key)
    if type(value) is int:
        if value.bit_length() > 100:  # 10**30 < 2**100
            raise DecodeError(f"field {key!r} is too large a number: {str(value)[:40]}")
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise DecodeError(f"field {key!r} must be a number, got {type(value).__name__}")
    if not value.is_finite() or value.is_signed():
        raise DecodeError(f"field {key!r} must be a finite non-negative number, got {str(value)[:40]}")
    digits, exponent = value.as_tuple()[1:]
    assert isinstance(exponent, int)  # finite
    if len(digits) > MAX_DIGITS or exponent < -MAX_PLACES or value.adjusted() >= MAX_INTEGER_DIGITS:
        raise DecodeError(f"field {key!r} is not a price or quantity of a sane size: {str(value)[:40]}")
    if positive and value.is_zero():
        raise DecodeError(f"field {key!r} must not be zero")
    return value


def _decimal_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not plain_decimal(value):
        raise DecodeError(f"{what} must be a decimal string, got {str(value)[:40]!r}")
    return value


def _price_text(value: Any, what: str) -> str:
    text = _decimal_text(value, what)
    if _is_zero(text):
        raise DecodeError(f"{what} must not be zero")
    return text


def _time_text(value: Any, what: str) -> str:
    """Seconds since the epoch as a decimal string whose nanoseconds fit a 64-bit integer."""
    text = _decimal_text(value, what)
    if int(text.partition(".")[0]) > INT64_MAX // 1_000_000_000:
        raise DecodeError(f"{what} is not a time since the epoch: {text[:40]!r}")
    return text


# -- v2 parsers ----------------------------------------------------------------------------------------


def parse_envelope(msg: dict[str, Any]) -> Envelope:
    kind = msg.get("type")
    if kind is not None and not isinstance(kind, str):
        raise DecodeError(f"field 'type' must be a string, got {type(kind).__name__}")
    return Envelope(channel=_str(msg, "channel"), type=kind, data=msg.get("data"))


def _entries(msg: dict[str, Any], key: str) -> tuple[Entry, ...]:
    out: list[Entry] = []
    for entry in _list(msg, key):
        entry = _object(entry, f"an entry of {key!r}")
        out.append((_number(entry, "price", positive=True), _number(entry, "qty")))
    return tuple(out)


def parse_book(element: Any) -> Book:
    """One element of a ``book`` message's ``data`` list."""
    msg = _object(element, "a book element")
    checksum = _int(msg, "checksum")
    if not 0 <= checksum <= 0xFFFFFFFF:
        raise DecodeError(f"field 'checksum' is not an unsigned 32-bit integer: {checksum}")
    return Book(
        symbol=_str(msg, "symbol"),
        bids=_entries(msg, "bids"),
        asks=_entries(msg, "asks"),
        checksum=checksum,
        timestamp=_opt_str(msg, "timestamp"),
    )


def parse_trade(element: Any) -> Trade:
    """One element of a ``trade`` message's ``data`` list."""
    msg = _object(element, "a trade element")
    raw_side = _str(msg, "side")
    side: Literal["buy", "sell"]
    if raw_side == "buy":
        side = "buy"
    elif raw_side == "sell":
        side = "sell"
    else:
        raise DecodeError(f"field 'side' must be 'buy' or 'sell', got {raw_side[:20]!r}")
    return Trade(
        symbol=_str(msg, "symbol"),
        side=side,
        price=_number(msg, "price", positive=True),
        qty=_number(msg, "qty", positive=True),
        ord_type=_str(msg, "ord_type"),
        trade_id=_nat(msg, "trade_id"),
        timestamp=_str(msg, "timestamp"),
    )


def parse_instrument(data: Any) -> Instrument:
    """``data`` of an ``instrument`` message. Pairs without both precisions are left out (the
    channel lists every pair of the exchange; one odd pair must not hide the others)."""
    msg = _object(data, "field 'data'")
    pairs: list[Pair] = []
    for item in _list(msg, "pairs") if "pairs" in msg else []:
        pair = _object(item, "an entry of 'pairs'")
        symbol = _str(pair, "symbol")
        price_p, qty_p = pair.get("price_precision"), pair.get("qty_precision")
        if type(price_p) is int and type(qty_p) is int and 0 <= price_p <= MAX_PLACES and 0 <= qty_p <= MAX_PLACES:
            pairs.append(Pair(symbol, price_p, qty_p))
    return Instrument(tuple(pairs))


def parse_method_response(msg: dict[str, Any]) -> MethodResponse:
    method = _str(msg, "method")
    success = _bool(msg, "success") if "success" in msg or method != "pong" else True
    result = msg.get("result")
    if result is not None:
        result = _object(result, "field 'result'")
    error = _opt_str(msg, "error")
    if not success and error is None:
        error = "request failed (no error text)"
    return MethodResponse(method=method, success=success, result=result, error=error, req_id=_opt_int(msg, "req_id"))


# -- v1 parsers ----------------------------------------------------------------------------------------


def parse_event_v1(msg: dict[str, Any]) -> EventV1:
    """Any v1 event message (``{"event": ...}``)."""
    return EventV1(
        event=_str(msg, "event"),
        status=_opt_str(msg, "status"),
        reqid=_opt_int(msg, "reqid"),
        errorMessage=_opt_str(msg, "errorMessage"),
        channelID=_opt_int(msg, "channelID"),
        channelName=_opt_str(msg, "channelName"),
        pair=_opt_str(msg, "pair"),
    )


def _levels_v1(msg: dict[str, Any], key: str) -> tuple[LevelV1, ...]:
    out: list[LevelV1] = []
    for level in _list(msg, key):
        if not isinstance(level, list) or len(level) not in (3, 4):
            raise DecodeError(f"field {key!r} holds a level that is not [price, volume, timestamp(, 'r')]")
        if len(level) == 4 and level[3] != "r":
            raise DecodeError(f"field {key!r} holds a level with an unknown flag {str(level[3])[:10]!r}")
        out.append(
            LevelV1(
                price=_price_text(level[0], f"a price in {key!r}"),
                volume=_decimal_text(level[1], f"a volume in {key!r}"),
                timestamp=_time_text(level[2], f"a timestamp in {key!r}"),
                republish=len(level) == 4,
            )
        )
    return tuple(out)


def parse_book_snapshot_v1(payload: Any) -> BookSnapshotV1:
    """The dict of a v1 book snapshot frame ``[chanId, {"as":..,"bs":..}, "book-N", pair]``."""
    msg = _object(payload, "a book snapshot")
    return BookSnapshotV1(as_=_levels_v1(msg, "as"), bs=_levels_v1(msg, "bs"))


def parse_book_update_v1(payloads: list[Any]) -> BookUpdateV1:
    """The one or two dicts of a v1 book update frame, in frame order."""
    asks: list[LevelV1] = []
    bids: list[LevelV1] = []
    c: str | None = None
    for payload in payloads:
        msg = _object(payload, "a book update")
        if not ("a" in msg or "b" in msg):
            raise DecodeError("a book update holds neither 'a' nor 'b'")
        if "a" in msg:
            asks.extend(_levels_v1(msg, "a"))
        if "b" in msg:
            bids.extend(_levels_v1(msg, "b"))
        if "c" in msg:
            c = _str(msg, "c")
            if not (c.isascii() and c.isdigit()) or len(c) > 10 or int(c) > 0xFFFFFFFF:
                raise DecodeError(f"field 'c' is not an unsigned 32-bit integer: {c[:20]!r}")
    return BookUpdateV1(a=tuple(asks), b=tuple(bids), c=c)


def parse_trades_v1(payload: Any) -> tuple[TradeV1, ...]:
    """The list of a v1 trade frame ``[chanId, [[price, volume, time, side, type, misc], ..], ..]``."""
    if not isinstance(payload, list):
        raise DecodeError(f"trade data must be a list, got {type(payload).__name__}")
    out: list[TradeV1] = []
    for item in payload:
        if not isinstance(item, list) or len(item) < 6:
            raise DecodeError("a trade is not [price, volume, time, side, orderType, misc]")
        side, order_type, misc = item[3], item[4], item[5]
        if side != "b" and side != "s":
            raise DecodeError(f"a trade side must be 'b' or 's', got {str(side)[:10]!r}")
        if not isinstance(order_type, str) or not isinstance(misc, str):
            raise DecodeError("a trade's orderType and misc must be strings")
        out.append(
            TradeV1(
                price=_price_text(item[0], "a trade price"),
                volume=_price_text(item[1], "a trade volume"),
                time=_time_text(item[2], "a trade time"),
                side=side,
                orderType=order_type,
                misc=misc,
            )
        )
    return tuple(out)
