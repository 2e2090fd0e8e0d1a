"""OKX's order-book checksum (protocols.md C, "Checksum"). Pure.

The signed 32-bit CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:bid2px:...`` over up to 25 levels a side,
best first, interleaved; once the shorter side runs out the longer side's remaining levels follow.
The strings are the exchange's exactly as received (``"0.50"`` is not ``"0.5"``), which is what the
book stores.

OKX deprecated the field (always 0 in production since 2026-06-23: validate with ``seqId``); the
codec turns 0 into "not provided", so this only runs for historical data and the simulator.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from ingest.book.book import OrderBook
from ingest.events import Level

LEVELS = 25


def checksum_levels(bids: Sequence[Level], asks: Sequence[Level]) -> int:
    """The checksum of two sides given best first (only the first 25 of each are used)."""
    bids, asks = bids[:LEVELS], asks[:LEVELS]
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.extend(bids[i])
        if i < len(asks):
            parts.extend(asks[i])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def book_checksum(book: OrderBook) -> int:
    """The checksum of a local book (`ingest.exchanges.base.ExchangeSpec.checksum`)."""
    bids, asks = book.depth(LEVELS)
    return checksum_levels(bids, asks)
