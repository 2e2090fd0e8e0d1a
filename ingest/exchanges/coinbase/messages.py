"""Coinbase Advanced Trade wire messages as frozen typed structs whose fields copy Coinbase's keys.

Every message on the market-data WebSocket has one envelope (protocols.md D, "Envelope")::

    {"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,
     "events":[...]}

``parse_envelope`` reads it; ``parse_l2_event``, ``parse_trades_event`` and ``parse_heartbeat_event``
read one element of ``events`` of the ``l2_data``, ``market_trades`` and ``heartbeats`` channels.
Each raises `ingest.errors.DecodeError` if a field is missing, has the wrong type or a value Coinbase
never sends: prices and sizes are plain non-negative decimal strings (a price is never zero, nor a
trade's size), sides are ``bid``/``offer`` in ``level2`` (never ``ask``) and ``BUY``/``SELL`` in
``market_trades``, times are RFC 3339 UTC strings that fit 64-bit nanoseconds, ``sequence_num`` a
non-negative integer, trade ids strings of digits (or a UUID, the REST docs' example), heartbeat
counters a non-negative integer or a string of digits (the docs send a string, nautilus parses an
integer: both are accepted). Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any, Literal

from ingest.errors import DecodeError
from ingest.exchanges.fields import INT64_MAX, plain_decimal
from ingest.exchanges.fields import decimal as _decimal
from ingest.exchanges.fields import field as _field
from ingest.exchanges.fields import is_zero as _is_zero
from ingest.exchanges.fields import list_value as _list
from ingest.exchanges.fields import natural as _natural
from ingest.exchanges.fields import opt_string as _opt_str
from ingest.exchanges.fields import positive_decimal as _positive
from ingest.exchanges.fields import string as _str

L2Side = Literal["bid", "offer"]
TradeSide = Literal["BUY", "SELL"]
EventType = Literal["snapshot", "update"]

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:[Zz]|\+00:00)"
)
_TRADE_ID = re.compile(r"[0-9]{1,19}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_EPOCH = datetime.date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every message has. ``events`` are left raw: their shape depends on ``channel``."""

    channel: str
    client_id: str | None
    timestamp: int  # ns
    sequence_num: int
    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class L2Update:
    """One changed level: ``new_quantity`` is the absolute size, ``"0"`` removes the level."""

    side: L2Side
    event_time: int  # ns; the epoch (0) in snapshots
    price_level: str
    new_quantity: str


@dataclass(frozen=True, slots=True)
class L2Event:
    """``{"type":"snapshot"|"update","product_id":..,"updates":[..]}``."""

    type: EventType
    product_id: str
    updates: tuple[L2Update, ...]


@dataclass(frozen=True, slots=True)
class MarketTrade:
    """One trade of ``market_trades``. ``side`` is Coinbase's ``BUY``/``SELL``, as sent (which side it
    names is the codec's business: see `ingest.exchanges.coinbase.codec`)."""

    trade_id: str
    product_id: str
    price: str
    size: str
    side: TradeSide
    time: int  # ns


@dataclass(frozen=True, slots=True)
class TradesEvent:
    """``{"type":"snapshot"|"update","trades":[..]}``: the first event after subscribing is a snapshot
    of recent trades, then updates."""

    type: EventType
    trades: tuple[MarketTrade, ...]


@dataclass(frozen=True, slots=True)
class HeartbeatEvent:
    """``{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",
    "heartbeat_counter":"3049"}`` (a Go ``time.Time`` string, kept as text)."""

    current_time: str
    heartbeat_counter: int


# -- field readers -----------------------------------------------------------------------------------


def rfc3339_ns(text: str, key: str = "time") -> int:
    """``"2023-02-09T20:32:50.714964855Z"`` -> integer ns since the epoch (UTC only; up to 9 decimals
    of a second). `DecodeError` if it is not such a time or does not fit 64-bit nanoseconds."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise DecodeError(f"field {key!r} is not an RFC 3339 UTC time: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        days = datetime.date(year, month, day).toordinal() - _EPOCH
    except ValueError:
        raise DecodeError(f"field {key!r} is not a calendar date: {text[:40]!r}") from None
    if hour > 23 or minute > 59 or second > 59:
        raise DecodeError(f"field {key!r} is not a time of day: {text[:40]!r}")
    fraction = int((m.group(7) or "").ljust(9, "0"))
    ns = ((days * 24 + hour) * 60 + minute) * 60 + second
    ns = ns * 1_000_000_000 + fraction
    if not 0 <= ns <= INT64_MAX:
        raise DecodeError(f"field {key!r} is out of range (1970..2262): {text[:40]!r}")
    return ns


def _time(msg: dict[str, Any], key: str) -> int:
    return rfc3339_ns(_str(msg, key), key)


def _objects(msg: dict[str, Any], key: str) -> list[dict[str, Any]]:
    out = _list(_field(msg, key), key)
    for item in out:
        if not isinstance(item, dict):
            raise DecodeError(f"field {key!r} must hold objects, got {type(item).__name__}")
    return out


def _event_type(msg: dict[str, Any]) -> EventType:
    kind = _str(msg, "type")
    if kind not in ("snapshot", "update"):
        raise DecodeError(f"field 'type' must be snapshot or update, got {kind[:40]!r}")
    return "snapshot" if kind == "snapshot" else "update"


def _counter(msg: dict[str, Any], key: str) -> int:
    """A non-negative integer sent as an integer or as a string of digits."""
    value = _field(msg, key)
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value) or int(value) > INT64_MAX:
            raise DecodeError(f"field {key!r} is not a string of digits: {value[:40]!r}")
        return int(value)
    return _natural(msg, key)


# -- parsers -----------------------------------------------------------------------------------------


def parse_envelope(msg: dict[str, Any]) -> Envelope:
    return Envelope(
        channel=_str(msg, "channel"),
        client_id=_opt_str(msg, "client_id"),
        timestamp=_time(msg, "timestamp"),
        sequence_num=_natural(msg, "sequence_num"),
        events=tuple(_objects(msg, "events")),
    )


def parse_l2_update(msg: dict[str, Any]) -> L2Update:
    side = _str(msg, "side")
    if side not in ("bid", "offer"):
        raise DecodeError(f"field 'side' must be bid or offer, got {side[:40]!r}")
    price = _str(msg, "price_level")
    if not plain_decimal(price) or _is_zero(price):
        raise DecodeError(f"field 'price_level' is not a positive decimal: {price[:40]!r}")
    return L2Update(
        side="bid" if side == "bid" else "offer",
        event_time=_time(msg, "event_time"),
        price_level=price,
        new_quantity=_decimal(msg, "new_quantity"),
    )


def parse_l2_event(msg: dict[str, Any]) -> L2Event:
    return L2Event(
        type=_event_type(msg),
        product_id=_str(msg, "product_id"),
        updates=tuple(parse_l2_update(u) for u in _objects(msg, "updates")),
    )


def parse_market_trade(msg: dict[str, Any]) -> MarketTrade:
    side = _str(msg, "side")
    if side not in ("BUY", "SELL"):
        raise DecodeError(f"field 'side' must be BUY or SELL, got {side[:40]!r}")
    trade_id = _str(msg, "trade_id")
    if not _TRADE_ID.fullmatch(trade_id):
        raise DecodeError(f"field 'trade_id' is neither digits nor a UUID: {trade_id[:40]!r}")
    return MarketTrade(
        trade_id=trade_id,
        product_id=_str(msg, "product_id"),
        price=_positive(msg, "price"),
        size=_positive(msg, "size"),
        side="BUY" if side == "BUY" else "SELL",
        time=_time(msg, "time"),
    )


def parse_trades_event(msg: dict[str, Any]) -> TradesEvent:
    return TradesEvent(
        type=_event_type(msg),
        trades=tuple(parse_market_trade(t) for t in _objects(msg, "trades")),
    )


def parse_heartbeat_event(msg: dict[str, Any]) -> HeartbeatEvent:
    return HeartbeatEvent(current_time=_str(msg, "current_time"), heartbeat_counter=_counter(msg, "heartbeat_counter"))


def parse_trades_page(msg: dict[str, Any]) -> tuple[MarketTrade, ...]:
    """REST ``GET /api/v3/brokerage/market/products/{product_id}/ticker`` (public market trades):
    ``{"trades":[{trade_id, product_id, price, size, time, side, exchange?}..], "best_bid", "best_ask"}``;
    the rows have the fields of a ``market_trades`` trade."""
    return tuple(parse_market_trade(t) for t in _objects(msg, "trades"))
