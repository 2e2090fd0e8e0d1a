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

DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
"""A plain non-negative decimal as exchanges spell prices and quantities: ``"0.35130000"``, ``"5"``
(no sign, no exponent, no leading or trailing point). Use with ``fullmatch``."""


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


def decimal(msg: dict[str, Any], key: str) -> str:
    """``msg[key]``, a string that is a plain non-negative decimal (see `DECIMAL`), returned as sent.
    `DecodeError` if absent, not a string, or not such a decimal."""
    value = string(msg, key)
    if not DECIMAL.fullmatch(value):
        raise DecodeError(f"field {key!r} is not a decimal number: {value[:40]!r}")
    return value


def loads_object(frame: bytes | str) -> dict[str, Any]:
    """``frame`` parsed as JSON with orjson (floats as ``float``), which must be an object.

    `DecodeError` carrying an excerpt of ``frame`` if it is not valid JSON (or not ``bytes``/``str``)
    or its top level is not an object."""
    try:
        msg = orjson.loads(frame)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise DecodeError(f"bad JSON ({exc})", frame if isinstance(frame, bytes | str) else b"") from None
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
