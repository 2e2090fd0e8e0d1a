"""Kraken's book checksum (v2, and identical in v1; protocols.md B, "CRC32 checksum").

The unsigned CRC-32 (zlib) of the top 10 asks, best (lowest) first, then the top 10 bids, best
(highest) first, whatever the subscribed depth; each level contributes its price then its quantity,
each with the ``.`` removed and leading zeros stripped. The strings must be the exchange's, at the
instrument's full precision (``"0.10000000"``, not ``"0.1"``): the book keeps exactly what the codec
produced, so the codecs are where precision is handled, not here. Pure.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from ingest.book.book import OrderBook
from ingest.events import Level

LEVELS = 10


def _digits(value: str) -> str:
    """``"0.00100000"`` -> ``"100000"``; ``"45285.2"`` -> ``"452852"``."""
    return value.replace(".", "").lstrip("0")


def checksum_text(bids: Iterable[Level], asks: Iterable[Level]) -> str:
    """The string the CRC is taken of. ``bids`` and ``asks`` best first; only the first 10 count."""
    parts: list[str] = []
    for side in (asks, bids):
        for i, (price, qty) in enumerate(side):
            if i == LEVELS:
                break
            parts.append(_digits(price))
            parts.append(_digits(qty))
    return "".join(parts)


def levels_checksum(bids: Iterable[Level], asks: Iterable[Level]) -> int:
    """The checksum of a book given as its levels, best first on both sides."""
    return zlib.crc32(checksum_text(bids, asks).encode("ascii")) & 0xFFFFFFFF


def book_checksum(book: OrderBook) -> int:
    """The checksum of an `OrderBook` (the spec's ``checksum``)."""
    return levels_checksum(book.bids.top(LEVELS), book.asks.top(LEVELS))
