"""Typed field readers for decoded exchange JSON, shared by the exchange packages.

Every reader takes a JSON-decoded object (a ``dict``) and a key, and returns the value with the type
it promises, or raises `ingest.errors.DecodeError` (and nothing else) naming the key. Readers whose
behaviour differs between exchanges (level layouts, number formats, Kraken's exact decimals) stay in
the exchange's own package. Pure: no I/O, no clock; only the standard library, orjson and
`ingest.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from ingest.errors import DecodeError

DECIMAL = re.compile(r"[0-9]{1,40}(?:\.[0-9]{1,40})?")
"""A plain non-negative decimal as exchanges spell prices and quantities: ``"0.35130000"``, ``"5"``
(no sign, no exponent, no leading or trailing point, at most 40 digits either side of the point: no
exchange sends more, and a 5000-digit "number" is garbage). Use with ``fullmatch``."""


def plain_decimal(text: str) -> bool:
    """``DECIMAL.fullmatch(text)`` as a bool, without the regex engine (a few string methods, in C):
    a codec checks every price and quantity of every message."""
    n = len(text)
    if not 0 < n <= 81 or not text.isascii():  # ASCII: `isdigit` then means 0-9 only
        return False
    dot = text.find(".")
    if dot < 0:
        return n <= 40 and text.isdigit()
    return 0 < dot <= 40 and 0 < n - dot - 1 <= 40 and text.replace(".", "", 1).isdigit()


INT64_MAX = 2**63 - 1
"""Ids and nanosecond times must fit a signed 64-bit integer (consumers store them as such)."""

MAX_MS = INT64_MAX // 1_000_000
"""The latest millisecond time whose nanoseconds still fit `INT64_MAX` (year 2262)."""

ASSET = re.compile(r"[\w.]{1,30}")
"""One side of a trading pair as exchanges name it: letters and digits of any script, ``_`` and
``.`` (``ETH2.S``), no separator (``-``, ``/``), blank, control character or lone surrogate, at
most 30 characters. Use with ``fullmatch``."""


def field(msg: dict[str, Any], key: str) -> Any:
    """``msg[key]``, of any type. `DecodeError` ``missing field 'key'`` if absent."""
    try:
        return msg[key]
    except KeyError:
        raise DecodeError(f"missing field {key!r}") from None


def string(msg: dict[str, Any], key: str) -> str:
    """``msg[key]``, which must be a ``str``. `DecodeError` if absent or of another type."""
    value = field(msg, key)
    if not isinstance(value, str):
        raise DecodeError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def opt_string(msg: dict[str, Any], key: str) -> str | None:
    """``msg[key]`` as a ``str``, or ``None`` if absent or null. `DecodeError` if of another type."""
    return None if msg.get(key) is None else string(msg, key)


def integer(msg: dict[str, Any], key: str) -> int:
    """``msg[key]``, which must be an ``int`` (a ``bool`` is refused, as is a float such as ``1.0``).
    `DecodeError` if absent or of another type."""
    value = field(msg, key)
    if type(value) is not int:  # bool is an int subclass and never a valid id or time
        raise DecodeError(f"field {key!r} must be an integer, got {type(value).__name__}")
    return value


def opt_integer(msg: dict[str, Any], key: str) -> int | None:
    """``msg[key]`` as for `integer`, or ``None`` if absent or null. `DecodeError` if of another type."""
    return None if msg.get(key) is None else integer(msg, key)


def boolean(msg: dict[str, Any], key: str) -> bool:
    """``msg[key]``, which must be a ``bool`` (``0``/``1`` are refused). `DecodeError` if absent or of
    another type."""
    value = field(msg, key)
    if not isinstance(value, bool):
        raise DecodeError(f"field {key!r} must be a boolean, got {type(value).__name__}")
    return value


def object_value(value: Any, key: str) -> dict[str, Any]:
    """``value`` (read from ``key``) as a JSON object. `DecodeError` naming ``key`` otherwise."""
    if not isinstance(value, dict):
        raise DecodeError(f"field {key!r} must be an object, got {type(value).__name__}")
    return value


def list_value(value: Any, key: str) -> list[Any]:
    """``value`` (read from ``key``) as a JSON array. `DecodeError` naming ``key`` otherwise."""
    if not isinstance(value, list):
        raise DecodeError(f"field {key!r} must be a list, got {type(value).__name__}")
    return value


def natural(msg: dict[str, Any], key: str) -> int:
    """``msg[key]`` as for `integer`, and ``0 <= value <= INT64_MAX`` (an id or a count no exchange
    would send negative). `DecodeError` otherwise."""
    value = integer(msg, key)
    if not 0 <= value <= INT64_MAX:
        raise DecodeError(f"field {key!r} must be a non-negative 64-bit integer, got {value}")
    return value


def ms_time(msg: dict[str, Any], key: str) -> int:
    """``msg[key]``, an integer time in milliseconds since the epoch, ``0 <= value <= MAX_MS``.
    `DecodeError` if absent, of another type, or out of that range."""
    value = integer(msg, key)
    if not 0 <= value <= MAX_MS:
        raise DecodeError(f"field {key!r} is not a millisecond time since the epoch: {value}")
    return value


def is_zero(text: str) -> bool:
    """Whether a `DECIMAL` string is zero (``"0"``, ``"0.00000000"``)."""
    return not text.strip("0.")


def decimal(msg: dict[str, Any], key: str) -> str:
    """``msg[key]``, a string that is a plain non-negative decimal (see `DECIMAL`), returned as sent.
    `DecodeError` if absent, not a string, or not such a decimal."""
    value = string(msg, key)
    if not plain_decimal(value):
        raise DecodeError(f"field {key!r} is not a decimal number: {value[:40]!r}")
    return value


def positive_decimal(msg: dict[str, Any], key: str) -> str:
    """As `decimal`, and not zero (a trade's price or quantity). `DecodeError` otherwise."""
    value = decimal(msg, key)
    if is_zero(value):
        raise DecodeError(f"field {key!r} must not be zero: {value[:40]!r}")
    return value


def loads_object(frame: object) -> dict[str, Any]:
    """``frame`` parsed as JSON with orjson (floats as ``float``), which must be an object.

    `DecodeError` carrying an excerpt of ``frame`` if it is not valid JSON (or not ``bytes``/``str``)
    or its top level is not an object. ``frame`` is typed ``object`` and checked here: compiled, a
    ``bytes | str`` parameter would raise TypeError on the call for anything else."""
    if not isinstance(frame, bytes | str):
        raise DecodeError(f"bad JSON (a frame must be bytes or str, not {type(frame).__name__})")
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"bad JSON ({exc})", frame) from None
    if not isinstance(msg, dict):
        raise DecodeError(f"expected a JSON object, got {type(msg).__name__}", frame)
    return msg


def cached_symbol(cache: dict[str, str], native: str, derive: Callable[[str], str]) -> str:
    """The canonical symbol of ``native``: from ``cache``, else ``derive(native)``, which is then
    stored in ``cache``. A ``ValueError`` from ``derive`` becomes a `DecodeError` with its message
    (and nothing is cached)."""
    symbol = cache.get(native)
    if symbol is None:
        try:
            symbol = derive(native)
        except ValueError as exc:
            raise DecodeError(str(exc)) from None
        cache[native] = symbol
    return symbol
