"""KuCoin spot, simulated (``/work/shared/protocols.md`` section E'). See `tools.sim.exchanges.kucoin.sim`."""

from tools.sim.exchanges.kucoin.options import check_options
from tools.sim.exchanges.kucoin.sim import KucoinSim

SIM = KucoinSim

__all__ = ["SIM", "KucoinSim", "check_options"]
