"""Binance symbol names: native ``BTCUSDT`` (``s`` in payloads, lower case in stream names) to and
from the canonical ``BTC-USDT``.

Binance's native names have no separator, so the split is made at the longest known quote-asset
suffix. A native symbol whose quote asset is not listed cannot be named canonically: ``ValueError``.
"""

from __future__ import annotations

from functools import lru_cache

from ingest.exchanges.fields import ASSET

# Quote assets seen on Binance Spot. Longest suffix wins, so FDUSD beats a shorter USD-like match and
# TUSD is not mistaken for a T-ending base with USD.
QUOTES: frozenset[str] = frozenset(
    {
        "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "USDS", "PAX", "DAI", "UST", "VAI",
        "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT",
        "EUR", "GBP", "TRY", "BRL", "AUD", "JPY", "RUB", "UAH", "NGN", "ZAR", "PLN", "RON", "ARS",
        "MXN", "COP", "CZK", "IDR", "BIDR", "IDRT", "BKRW", "BVND",
    }
)  # fmt: skip
_BY_LENGTH: tuple[str, ...] = tuple(sorted(QUOTES, key=len, reverse=True))


@lru_cache(maxsize=4096)
def canonical_symbol(native: str) -> str:
    """``"BTCUSDT"`` (any case) -> ``"BTC-USDT"``. Raises ``ValueError`` if no known quote fits or
    the base is not an asset name (`ingest.exchanges.fields.ASSET`: no separator, blank or control
    character)."""
    upper = native.upper()
    for quote in _BY_LENGTH:
        if len(upper) > len(quote) and upper.endswith(quote):
            base = upper[: -len(quote)]
            if not ASSET.fullmatch(base):
                break
            return f"{base}-{quote}"
    raise ValueError(f"not a Binance symbol with a known quote asset: {native[:40]!r}")


def native_symbol(canonical: str) -> str:
    """``"BTC-USDT"`` -> ``"BTCUSDT"``. Raises ``ValueError`` if it is not ``BASE-QUOTE``."""
    base, sep, quote = canonical.upper().partition("-")
    if not sep or not base or not quote or "-" in quote:
        raise ValueError(f"canonical symbol must be BASE-QUOTE, got {canonical!r}")
    return base + quote
