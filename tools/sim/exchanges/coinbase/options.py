"""The Coinbase simulator's options (``[simulator.options.coinbase]``), checked and defaulted. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCOPES = ("connection", "channel")
_OPTIONS: dict[str, tuple[type, Any]] = {
    "idle_close": (float, 75.0),  # s without updates after which a connection without heartbeats closes
    "subscribe_timeout": (float, 5.0),  # s a new connection has to send its first subscribe
    "heartbeat_interval": (float, 1.0),
    "sequence_scope": (str, "connection"),
    "snapshot_trades": (int, 50),
    "snapshot_older_trades": (bool, False),  # the snapshot may hold trades from before the first subscription
}


def check_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; ``ValueError`` naming the first bad one."""
    unknown = sorted(set(raw) - set(_OPTIONS))
    if unknown:
        raise ValueError(f"unknown coinbase simulator option(s) {unknown} (known: {sorted(_OPTIONS)})")
    out: dict[str, Any] = {}
    for key, (kind, default) in _OPTIONS.items():
        value = raw.get(key, default)
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"coinbase simulator option {key!r} must be true or false")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"coinbase simulator option {key!r} must be a number of seconds above 0")
            value = float(value)
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"coinbase simulator option {key!r} must be a whole number >= 0")
        elif value not in SCOPES:
            raise ValueError(f"coinbase simulator option {key!r} must be one of {list(SCOPES)}")
        out[key] = value
    return out
