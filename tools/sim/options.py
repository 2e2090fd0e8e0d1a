"""Simulator options (``[simulator.options.<exchange>]``): each exchange module declares its options,
a default and a rule each, and `check` validates a table against them, filling in the defaults. A
rule returns the value (converted) or raises ``ValueError`` saying what the value must be. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

Rule = Callable[[Any], Any]


class Option(NamedTuple):
    default: Any
    rule: Rule


def check(exchange: str, raw: Mapping[str, Any], options: Mapping[str, Option]) -> dict[str, Any]:
    """The options with defaults filled in; ``ValueError`` naming the first unknown or bad one."""
    unknown = sorted(set(raw) - set(options))
    if unknown:
        raise ValueError(f"unknown {exchange} simulator option(s) {unknown} (known: {sorted(options)})")
    out: dict[str, Any] = {}
    for key, (default, rule) in options.items():
        try:
            out[key] = rule(raw.get(key, default))
        except ValueError as e:
            raise ValueError(f"{exchange} simulator option {key!r} {e}") from None
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def seconds(value: Any) -> float:
    if not _number(value) or value <= 0:
        raise ValueError("must be a number of seconds above 0")
    return float(value)


def seconds_or_zero(value: Any) -> float:
    if not _number(value) or value < 0:
        raise ValueError("must be a number of seconds >= 0")
    return float(value)


def at_most_seconds(limit: float) -> Rule:
    def rule(value: Any) -> float:
        if not _number(value) or not 0 < value <= limit:
            raise ValueError(f"must be a number of seconds above 0 (at most {limit:g})")
        return float(value)

    return rule


def whole(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("must be a whole number >= 0")
    return value


def ratio(value: Any) -> float:
    if not _number(value):
        raise ValueError("must be a number")
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return float(value)


def one_of(*choices: str) -> Rule:
    def rule(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {list(choices)}")
        return str(value)

    return rule
