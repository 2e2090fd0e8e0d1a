"""OKX symbol names: the spot ``instId`` (``BTC-USDT``) is already the canonical ``BASE-QUOTE``.

Only spot instruments are named: a derivative ``instId`` (``BTC-USDT-SWAP``, ``BTC-USD-250627``) has
no canonical ``BASE-QUOTE`` name, so both directions raise ``ValueError`` for anything that is not
exactly two non-empty parts.
"""

from __future__ import annotations

from ingest.exchanges.fields import ASSET


def _spot(name: str, what: str) -> str:
    upper = name.upper()
    base, sep, quote = upper.partition("-")
    if not (sep and ASSET.fullmatch(base) and ASSET.fullmatch(quote)):
        raise ValueError(f"{what} must be BASE-QUOTE (OKX spot), got {name[:40]!r}")
    return upper


def canonical_symbol(native: str) -> str:
    """``"BTC-USDT"`` -> ``"BTC-USDT"``. Raises ``ValueError`` if it is not a spot ``instId``."""
    return _spot(native, "OKX instId")


def native_symbol(canonical: str) -> str:
    """``"btc-usdt"`` -> ``"BTC-USDT"``. Raises ``ValueError`` if it is not ``BASE-QUOTE``."""
    return _spot(canonical, "canonical symbol")
