"""OKX v5 public WebSocket, simulated (``/work/shared/protocols.md`` section C). The protocol and its
faults: `tools.sim.exchanges.okx.sim`; the options: ``options.py``; the wire shapes: ``wire.py``."""

from tools.sim.exchanges.okx.options import check_options
from tools.sim.exchanges.okx.sim import OkxSim
from tools.sim.exchanges.okx.wire import checksum

SIM = OkxSim

__all__ = ["SIM", "OkxSim", "check_options", "checksum"]
