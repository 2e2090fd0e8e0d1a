"""Binance Spot wire messages as frozen typed structs whose fields copy Binance's keys.

Each ``parse_*`` takes one already JSON-decoded payload (the ``data`` of a combined-stream frame, or a
raw payload) and returns the struct, or raises `ingest.errors.DecodeError` if a field is missing or
has the wrong type or a value Binance never sends. Prices and quantities stay the exchange's decimal
strings; they are checked to be plain non-negative decimals (``"0.35130000"``), so nothing downstream
can choke on them, and a price is never zero (nor a trade's quantity). Ids are non-negative 64-bit
integers, an update's ``U`` is at most its ``u``, and times are milliseconds since the epoch that
fit 64-bit nanoseconds. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest.errors import DecodeError
from ingest.exchanges.fields import boolean as _bool
from ingest.exchanges.fields import field as _field
from ingest.exchanges.fields import integer as _int
from ingest.exchanges.fields import is_zero as _is_zero
from ingest.exchanges.fields import ms_time as _ms
from ingest.exchanges.fields import natural as _nat
from ingest.exchanges.fields import plain_decimal
from ingest.exchanges.fields import positive_decimal as _positive
from ingest.exchanges.fields import string as _str

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """``<symbol>@depth[@100ms]``: ``U``..``u`` is the range of update ids; quantities are absolute."""

    e: str
    E: int
    s: str
    U: int
    u: int
    b: tuple[Pair, ...]
    a: tuple[Pair, ...]


@dataclass(frozen=True, slots=True)
class Trade:
    """``<symbol>@trade``. ``m`` is true when the buyer was the maker (the taker sold)."""

    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


@dataclass(frozen=True, slots=True)
class AggTrade:
    """``<symbol>@aggTrade``: trades ``f``..``l`` of one taker order at one price, aggregated as ``a``."""

    e: str
    E: int
    s: str
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's key
    T: int
    m: bool


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """Sent before the server closes the connection; reconnect promptly."""

    e: str
    E: int


@dataclass(frozen=True, slots=True)
class Result:
    """An answer to a JSON method (``SUBSCRIBE`` ...); ``result`` is null for a successful command."""

    result: Any
    id: int | str | None


@dataclass(frozen=True, slots=True)
class Error:
    """A refused JSON method, e.g. ``{"code":2,"msg":"Invalid request: ..."}``."""

    code: int
    msg: str
    id: int | str | None


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """REST ``GET /api/v3/depth``: the book as of update id ``lastUpdateId``, best levels first."""

    lastUpdateId: int
    bids: tuple[Pair, ...]
    asks: tuple[Pair, ...]


# -- field readers -----------------------------------------------------------------------------------


def _id(msg: dict[str, Any]) -> int | str | None:
    value = msg.get("id")
    if value is None or type(value) is int or isinstance(value, str):
        return value
    raise DecodeError(f"field 'id' must be an integer, a string or null, got {type(value).__name__}")


def _levels(msg: dict[str, Any], key: str) -> tuple[Pair, ...]:
    value = _field(msg, key)
    if not isinstance(value, list):
        raise DecodeError(f"field {key!r} must be a list of [price, qty], got {type(value).__name__}")
    out: list[Pair] = []
    for level in value:
        if not isinstance(level, list) or len(level) < 2:
            raise DecodeError(f"field {key!r} holds a level that is not [price, qty]")
        price, qty = level[0], level[1]
        if not (isinstance(price, str) and isinstance(qty, str)):
            raise DecodeError(f"field {key!r} holds a level whose price or qty is not a string")
        if not (plain_decimal(price) and plain_decimal(qty)):
            raise DecodeError(f"field {key!r} holds a level that is not decimal: {_excerpt(level)}")
        if _is_zero(price):
            raise DecodeError(f"field {key!r} holds a level at price zero: {_excerpt(level)}")
        out.append((price, qty))
    return tuple(out)


def _excerpt(level: list[Any]) -> str:
    return repr([str(v)[:40] for v in level[:2]])


# -- parsers -----------------------------------------------------------------------------------------


def parse_depth_update(msg: dict[str, Any]) -> DepthUpdate:
    first, last = _nat(msg, "U"), _nat(msg, "u")
    if first > last:
        raise DecodeError(f"first update id 'U' {first} is after the last 'u' {last}")
    return DepthUpdate(
        e=_str(msg, "e"),
        E=_ms(msg, "E"),
        s=_str(msg, "s"),
        U=first,
        u=last,
        b=_levels(msg, "b"),
        a=_levels(msg, "a"),
    )


def parse_trade(msg: dict[str, Any]) -> Trade:
    return Trade(
        e=_str(msg, "e"),
        E=_ms(msg, "E"),
        s=_str(msg, "s"),
        t=_nat(msg, "t"),
        p=_positive(msg, "p"),
        q=_positive(msg, "q"),
        T=_ms(msg, "T"),
        m=_bool(msg, "m"),
    )


def parse_agg_trade(msg: dict[str, Any]) -> AggTrade:
    return AggTrade(
        e=_str(msg, "e"),
        E=_ms(msg, "E"),
        s=_str(msg, "s"),
        a=_nat(msg, "a"),
        p=_positive(msg, "p"),
        q=_positive(msg, "q"),
        f=_nat(msg, "f"),
        l=_nat(msg, "l"),
        T=_ms(msg, "T"),
        m=_bool(msg, "m"),
    )


def parse_server_shutdown(msg: dict[str, Any]) -> ServerShutdown:
    return ServerShutdown(e=_str(msg, "e"), E=_ms(msg, "E"))


def parse_result(msg: dict[str, Any]) -> Result:
    return Result(result=_field(msg, "result"), id=_id(msg))


def parse_error(msg: dict[str, Any]) -> Error:
    return Error(code=_int(msg, "code"), msg=_str(msg, "msg"), id=_id(msg))


def parse_depth_snapshot(msg: dict[str, Any]) -> DepthSnapshot:
    return DepthSnapshot(
        lastUpdateId=_nat(msg, "lastUpdateId"), bids=_levels(msg, "bids"), asks=_levels(msg, "asks")
    )
