"""Bybit spot symbol names: native ``BTCUSDT`` (``s`` in payloads, the end of topic names) to and from
the canonical ``BTC-USDT``.

Native names have no separator. The settings name every symbol a feed carries (the codec is given
their native -> canonical mapping, so those are never guessed); for any other name the split is made
at the longest known quote-asset suffix, and a name whose quote asset is not listed cannot be named
canonically: ``ValueError``.
"""

from __future__ import annotations

from functools import lru_cache

from ingest.exchanges.fields import ASSET

# Quote assets of Bybit spot pairs. Longest suffix wins (USDE before a DE-ending base, USDC...).
QUOTES: frozenset[str] = frozenset(
    {
        "USDT", "USDC", "USDE", "USD1", "USDQ", "USDR", "FDUSD", "PYUSD", "RLUSD", "DAI",
        "BTC", "ETH", "MNT", "SOL", "XRP",
        "EUR", "BRL", "PLN", "TRY", "GBP", "ARS", "UAH", "KZT", "AUD", "JPY",
    }
)  # fmt: skip
_BY_LENGTH: tuple[str, ...] = tuple(sorted(QUOTES, key=len, reverse=True))


@lru_cache(maxsize=4096)
def canonical_symbol(native: str) -> str:
    """``"BTCUSDT"`` (any case) -> ``"BTC-USDT"``. Raises ``ValueError`` if no known quote fits or the
    base is not an asset name (`ingest.exchanges.fields.ASSET`)."""
    upper = native.upper()
    for quote in _BY_LENGTH:
        if len(upper) > len(quote) and upper.endswith(quote):
            base = upper[: -len(quote)]
            if not ASSET.fullmatch(base):
                break
            return f"{base}-{quote}"
    raise ValueError(f"not a Bybit spot symbol with a known quote asset: {native[:40]!r}")


def native_symbol(canonical: str) -> str:
    """``"BTC-USDT"`` -> ``"BTCUSDT"``. Raises ``ValueError`` if it is not ``BASE-QUOTE``."""
    base, sep, quote = canonical.upper().partition("-")
    if not (sep and ASSET.fullmatch(base) and ASSET.fullmatch(quote)):
        raise ValueError(f"canonical symbol must be BASE-QUOTE, got {canonical[:40]!r}")
    return base + quote
