"""The OKX simulator's options (``[simulator.options.okx]``), checked and defaulted (see the package
docstring for what each does). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.sim.options import Option, check, flag, seconds, seconds_or_zero

_OPTIONS = {
    "checksum": Option(False, flag),
    "aggregate_trades": Option(False, flag),
    "idle_timeout": Option(30.0, seconds),
    "keepalive_interval": Option(60.0, seconds),
    "reset_interval": Option(0.0, seconds_or_zero),
}


def check_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; ``ValueError`` naming the first bad one."""
    return check("okx", raw, _OPTIONS)
