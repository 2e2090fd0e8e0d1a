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

from tools.sim.options import Option, at_most_seconds, check, ratio

MAX_SECONDS = 10 * 86400.0  # ten days

OPTIONS = {
    "token_life": Option(86400.0, at_most_seconds(MAX_SECONDS)),
    "ping_interval": Option(18.0, at_most_seconds(MAX_SECONDS)),
    "ping_timeout": Option(10.0, at_most_seconds(MAX_SECONDS)),
    "noop_ratio": Option(0.1, ratio),
}


def check_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; ``ValueError`` naming the first bad one."""
    return check("kucoin", raw, OPTIONS)
