"""Coinbase Advanced Trade, simulated (``/work/shared/protocols.md`` section D). See
`tools.sim.exchanges.coinbase.sim`."""

from tools.sim.exchanges.coinbase.options import check_options
from tools.sim.exchanges.coinbase.sim import CoinbaseSim

SIM = CoinbaseSim

__all__ = ["SIM", "CoinbaseSim", "check_options"]
