"""OKX's wire shapes the simulator sends: the book checksum, levels as OKX writes them. Pure."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from tools.sim.market import SCALE

Level = tuple[str, str]

ZERO = "0.00000000"
CHECKSUM_LEVELS = 25


def checksum(bids: Sequence[Level], asks: Sequence[Level]) -> int:
    """OKX's book checksum: signed CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:..`` over the top 25 a side,
    the longer side's remaining levels after the shorter side runs out."""
    bids, asks = bids[:CHECKSUM_LEVELS], asks[:CHECKSUM_LEVELS]
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        for side in (bids, asks):
            if i < len(side):
                parts.extend(side[i])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def wire_level(level: Level) -> list[str]:
    px, sz = level
    if sz == ZERO:
        return [px, "0", "0", "0"]
    return [px, sz, "0", str(1 + int(sz.replace(".", "")) % 9)]  # a plausible order count


def units(qty: str) -> int:
    whole, _, frac = qty.partition(".")
    return int(whole) * SCALE + int(frac.ljust(8, "0"))
