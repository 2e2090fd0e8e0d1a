"""The Coinbase simulator's options (``[simulator.options.coinbase]``), checked and defaulted. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.sim.options import Option, check, flag, one_of, seconds, whole

SCOPES = ("connection", "channel")
_OPTIONS = {
    "idle_close": Option(75.0, seconds),  # s without updates after which a connection without heartbeats closes
    "subscribe_timeout": Option(5.0, seconds),  # s a new connection has to send its first subscribe
    "heartbeat_interval": Option(1.0, seconds),
    "sequence_scope": Option("connection", one_of(*SCOPES)),
    "snapshot_trades": Option(50, whole),
    "snapshot_older_trades": Option(False, flag),  # the snapshot may hold trades from before the first subscription
}


def check_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; ``ValueError`` naming the first bad one."""
    return check("coinbase", raw, _OPTIONS)
