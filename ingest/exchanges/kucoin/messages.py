"""KuCoin spot wire messages as frozen typed structs whose fields copy KuCoin's keys.

Each ``parse_*`` takes one already JSON-decoded object and returns the struct, or raises
`ingest.errors.DecodeError` if a field is missing, has the wrong type or a value KuCoin never sends.
Prices and sizes stay the exchange's decimal strings (plain non-negative decimals; a trade's price
and size are never zero, nor a snapshot level's price). Sequence numbers are non-negative 64-bit
integers, sent as JSON integers or strings of digits (both spellings occur: ``sequenceStart`` is an
integer, a snapshot's ``sequence`` and a match's ``sequence`` are strings); an update's
``sequenceStart`` is at most its ``sequenceEnd``. Times are integers that fit 64-bit nanoseconds
(milliseconds for level2 and snapshots, nanoseconds, as digits or an integer, for matches and the
trade history). Pure: no I/O, no clock.
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
from ingest.exchanges.fields import opt_string as _opt_str
from ingest.exchanges.fields import positive_decimal as _positive
from ingest.exchanges.fields import string as _str

Side = Literal["buy", "sell"]
Pair = tuple[str, str]

_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class Envelope:
    """``{"type":"message","topic":"/market/level2:BTC-USDT","subject":"trade.l2update","data":{..}}``."""

    type: str
    topic: str
    subject: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Control:
    """``welcome``, ``pong`` and ``ack``: ``{"id":"..","type":".."}``."""

    id: str
    type: str


@dataclass(frozen=True, slots=True)
class Error:
    """``{"id":"..","type":"error","code":404,"data":"topic /market/level2:X is not found"}``."""

    id: str
    code: str
    data: str


@dataclass(frozen=True, slots=True)
class Change:
    """One level2 change ``[price, size, sequence]``: price ``"0"`` is a no-op that only advances the
    sequence; size ``"0"`` deletes the level."""

    price: str
    size: str
    sequence: int


@dataclass(frozen=True, slots=True)
class Level2:
    """``trade.l2update`` data: the changes ``sequenceStart`` .. ``sequenceEnd`` of the whole book."""

    symbol: str
    sequenceStart: int
    sequenceEnd: int
    time: int | None  # ms; sessions before 2019-02 have none
    asks: tuple[Change, ...]
    bids: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Match:
    """``trade.l3match`` data: one fill. ``side`` is the taker's; ``time`` in nanoseconds."""

    symbol: str
    sequence: int
    side: Side
    size: str
    price: str
    tradeId: str
    time: int
    takerOrderId: str | None
    makerOrderId: str | None


@dataclass(frozen=True, slots=True)
class RestLevel2:
    """REST ``level2_20``/``level2_100`` data: the book's best levels as of ``sequence``."""

    sequence: int
    time: int  # ms
    bids: tuple[Pair, ...]
    asks: tuple[Pair, ...]


@dataclass(frozen=True, slots=True)
class InstanceServer:
    """One server of a bullet answer; intervals in milliseconds."""

    endpoint: str
    protocol: str
    encrypt: bool | None
    pingInterval: int
    pingTimeout: int


@dataclass(frozen=True, slots=True)
class Bullet:
    """``POST /api/v1/bullet-public`` data."""

    token: str
    instanceServers: tuple[InstanceServer, ...]


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of ``GET /api/v1/market/histories``: ``time`` in nanoseconds, ``side`` the taker's."""

    sequence: int
    price: str
    size: str
    side: Side
    time: int


# -- field readers -----------------------------------------------------------------------------------


def _whole(value: Any, key: str) -> int:
    """A non-negative 64-bit integer, a JSON integer or a string of digits."""
    if type(value) is int:
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise DecodeError(f"field {key!r} must be a whole number, got {_excerpt(value)}")
    if not 0 <= number <= INT64_MAX:
        raise DecodeError(f"field {key!r} must be a non-negative 64-bit integer, got {number}")
    return number


def _seq(msg: dict[str, Any], key: str) -> int:
    return _whole(_field(msg, key), key)


def _ms(msg: dict[str, Any], key: str) -> int:
    value = _seq(msg, key)
    if value > MAX_MS:
        raise DecodeError(f"field {key!r} is not a millisecond time since the epoch: {value}")
    return value


def _id(msg: dict[str, Any]) -> str:
    """Request and connection ids: KuCoin echoes them as strings; a number is accepted too."""
    value = msg.get("id")
    if value is None:
        return ""
    if type(value) is int:
        return str(value)
    if not isinstance(value, str):
        raise DecodeError(f"field 'id' must be a string, got {type(value).__name__}")
    return value


def _side(msg: dict[str, Any]) -> Side:
    side = _str(msg, "side")
    if side not in ("buy", "sell"):
        raise DecodeError(f"field 'side' must be buy or sell, got {side[:40]!r}")
    return "buy" if side == "buy" else "sell"


def _decimal(value: Any, key: str) -> str:
    if not isinstance(value, str) or not plain_decimal(value):
        raise DecodeError(f"field {key!r} holds a value that is not a decimal string: {_excerpt(value)}")
    return value


def _changes(changes: dict[str, Any], key: str) -> tuple[Change, ...]:
    out: list[Change] = []
    for change in _list(_field(changes, key), key):
        if not isinstance(change, list) or len(change) != 3:
            raise DecodeError(f"field {key!r} holds a change that is not [price, size, sequence]")
        out.append(Change(_decimal(change[0], key), _decimal(change[1], key), _whole(change[2], key)))
    return tuple(out)


def _levels(msg: dict[str, Any], key: str) -> tuple[Pair, ...]:
    out: list[Pair] = []
    for level in _list(_field(msg, key), key):
        if not isinstance(level, list) or len(level) < 2:
            raise DecodeError(f"field {key!r} holds a level that is not [price, size]")
        price, size = _decimal(level[0], key), _decimal(level[1], key)
        if _is_zero(price):
            raise DecodeError(f"field {key!r} holds a level at price zero")
        out.append((price, size))
    return tuple(out)


def _excerpt(value: Any) -> str:
    return repr(str(value)[:40])


# -- parsers -----------------------------------------------------------------------------------------


def parse_envelope(msg: dict[str, Any]) -> Envelope:
    return Envelope(
        type=_str(msg, "type"),
        topic=_str(msg, "topic"),
        subject=_str(msg, "subject"),
        data=_dict(_field(msg, "data"), "data"),
    )


def parse_control(msg: dict[str, Any]) -> Control:
    return Control(id=_id(msg), type=_str(msg, "type"))


def parse_error(msg: dict[str, Any]) -> Error:
    code = _field(msg, "code")
    if type(code) is int:
        code = str(code)
    if not isinstance(code, str):
        raise DecodeError(f"field 'code' must be a number or a string, got {type(code).__name__}")
    data = msg.get("data")
    return Error(id=_id(msg), code=code[:40], data="" if data is None else str(data)[:200])


def parse_level2(data: dict[str, Any]) -> Level2:
    start, end = _seq(data, "sequenceStart"), _seq(data, "sequenceEnd")
    if start > end:
        raise DecodeError(f"sequenceStart {start} is after sequenceEnd {end}")
    changes = _dict(_field(data, "changes"), "changes")
    return Level2(
        symbol=_str(data, "symbol"),
        sequenceStart=start,
        sequenceEnd=end,
        time=None if data.get("time") is None else _ms(data, "time"),
        asks=_changes(changes, "asks"),
        bids=_changes(changes, "bids"),
    )


def parse_match(data: dict[str, Any]) -> Match:
    return Match(
        symbol=_str(data, "symbol"),
        sequence=_seq(data, "sequence"),
        side=_side(data),
        size=_positive(data, "size"),
        price=_positive(data, "price"),
        tradeId=_str(data, "tradeId"),
        time=_seq(data, "time"),
        takerOrderId=_opt_str(data, "takerOrderId"),
        makerOrderId=_opt_str(data, "makerOrderId"),
    )


def parse_rest_level2(raw: Any) -> RestLevel2:
    """The ``data`` of a level2 snapshot answer."""
    data = _dict(raw, "data")
    return RestLevel2(
        sequence=_seq(data, "sequence"), time=_ms(data, "time"), bids=_levels(data, "bids"), asks=_levels(data, "asks")
    )


def parse_bullet(raw: Any) -> Bullet:
    """The ``data`` of a bullet answer."""
    data = _dict(raw, "data")
    servers: list[InstanceServer] = []
    for raw in _list(_field(data, "instanceServers"), "instanceServers"):
        server = _dict(raw, "instanceServers")
        encrypt = server.get("encrypt")
        servers.append(
            InstanceServer(
                endpoint=_str(server, "endpoint"),
                protocol=_str(server, "protocol"),
                encrypt=encrypt if isinstance(encrypt, bool) else None,
                pingInterval=_seq(server, "pingInterval"),
                pingTimeout=_seq(server, "pingTimeout"),
            )
        )
    return Bullet(token=_str(data, "token"), instanceServers=tuple(servers))


def parse_history_row(raw: Any) -> HistoryRow:
    row = _dict(raw, "data")
    return HistoryRow(
        sequence=_seq(row, "sequence"),
        price=_positive(row, "price"),
        size=_positive(row, "size"),
        side=_side(row),
        time=_seq(row, "time"),
    )


def parse_response(msg: dict[str, Any], what: str) -> Any:
    """The ``data`` of a REST answer ``{"code":"200000","data":..}``; `DecodeError` for any other code
    (``{"code":"400100","msg":".."}``: a refusal)."""
    code = msg.get("code")
    if code != "200000":
        raise DecodeError(f"KuCoin refused the {what} request: code {_excerpt(code)}, msg {_excerpt(msg.get('msg'))}")
    return _field(msg, "data")
