"""Coinbase symbol names: the ``product_id`` (``BTC-USD``) is already the canonical ``BASE-QUOTE``.

Both directions raise ``ValueError`` for anything that is not exactly two non-empty asset names
joined by ``-`` (Coinbase's derivative product ids, ``BIT-26JUL24-CDE``, have no canonical name).
"""

from __future__ import annotations

from ingest.exchanges.fields import ASSET


def _spot(name: str, what: str) -> str:
    upper = name.upper()
    base, sep, quote = upper.partition("-")
    if not (sep and ASSET.fullmatch(base) and ASSET.fullmatch(quote)):
        raise ValueError(f"{what} must be BASE-QUOTE (a Coinbase spot product), got {name[:40]!r}")
    return upper


def canonical_symbol(native: str) -> str:
    """``"BTC-USD"`` -> ``"BTC-USD"``. Raises ``ValueError`` if it is not a spot ``product_id``."""
    return _spot(native, "Coinbase product_id")


def native_symbol(canonical: str) -> str:
    """``"btc-usd"`` -> ``"BTC-USD"``. Raises ``ValueError`` if it is not ``BASE-QUOTE``."""
    return _spot(canonical, "canonical symbol")
