"""The KuCoin simulator's options (``[simulator.options.kucoin]``), validated with defaults filled in.

- ``token_life`` (s, 86400: KuCoin's 24 h): a connection whose token is older is closed by the server;
  a token not used within that long is refused.
- ``ping_interval`` / ``ping_timeout`` (s, 18 / 10: KuCoin's values): what the bullet answer tells the
  client (in ms), and the server's rule: a connection that sends no ``ping`` for ``ping_interval +
  ping_timeout`` is closed.
- ``noop_ratio`` (0.1): the share of level2 messages that carry a ``["0","0","<seq>"]`` change, as
  real data does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPTIONS: dict[str, float] = {"token_life": 86400.0, "ping_interval": 18.0, "ping_timeout": 10.0, "noop_ratio": 0.1}


def check_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; ``ValueError`` naming the first bad one."""
    unknown = sorted(set(raw) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown kucoin simulator option(s) {unknown} (known: {sorted(OPTIONS)})")
    out: dict[str, Any] = {}
    for key, default in OPTIONS.items():
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"kucoin simulator option {key!r} must be a number")
        if key == "noop_ratio":
            if not 0 <= value <= 1:
                raise ValueError(f"kucoin simulator option {key!r} must be between 0 and 1")
        elif not 0 < value <= 10 * 86400:
            raise ValueError(f"kucoin simulator option {key!r} must be a number of seconds above 0 (at most 10 days)")
        out[key] = float(value)
    return out
