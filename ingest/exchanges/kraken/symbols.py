"""Kraken symbol names: native ``BTC/USD`` (v2; v1 spells BTC ``XBT``) to and from the canonical
``BTC-USD``.

v1 names some assets by legacy codes (``XBT`` for BTC, ``XDG`` for DOGE); canonically they are
``BTC`` and ``DOGE``, so a v1 recording and a live v2 feed name a market the same way. v2 uses
``BTC`` and ``DOGE`` itself, so `native_symbol` never produces a legacy code.
"""

from __future__ import annotations

from functools import lru_cache

from ingest.exchanges.fields import ASSET

# Kraken's legacy asset codes (v1, REST) -> the common codes v2 and the canonical names use.
LEGACY_ASSETS: dict[str, str] = {"XBT": "BTC", "XDG": "DOGE"}


@lru_cache(maxsize=4096)
def canonical_symbol(native: str) -> str:
    """``"BTC/USD"`` or ``"XBT/USD"`` -> ``"BTC-USD"``. ``ValueError`` if it is not ``BASE/QUOTE``."""
    base, sep, quote = native.upper().partition("/")
    if not (sep and ASSET.fullmatch(base) and ASSET.fullmatch(quote)):
        raise ValueError(f"Kraken symbol must be BASE/QUOTE, got {native[:40]!r}")
    return f"{LEGACY_ASSETS.get(base, base)}-{LEGACY_ASSETS.get(quote, quote)}"


def native_symbol(canonical: str) -> str:
    """``"BTC-USD"`` (or ``"XBT-USD"``) -> the v2 name ``"BTC/USD"``. ``ValueError`` if it is not
    ``BASE-QUOTE``."""
    base, sep, quote = canonical.upper().partition("-")
    if not sep or not base or not quote or "-" in quote:
        raise ValueError(f"canonical symbol must be BASE-QUOTE, got {canonical!r}")
    return f"{LEGACY_ASSETS.get(base, base)}/{LEGACY_ASSETS.get(quote, quote)}"
