"""KuCoin symbol names: the spot ``symbol`` (``BTC-USDT``) is already the canonical ``BASE-QUOTE``.

Anything that is not exactly two asset names joined by ``-`` raises ``ValueError`` in both
directions (KuCoin futures symbols such as ``XBTUSDTM`` are not spot names).
"""

from __future__ import annotations

from ingest.exchanges.fields import ASSET


def _spot(name: str, what: str) -> str:
    upper = name.upper()
    base, sep, quote = upper.partition("-")
    if not (sep and ASSET.fullmatch(base) and ASSET.fullmatch(quote)):
        raise ValueError(f"{what} must be BASE-QUOTE (KuCoin spot), got {name[:40]!r}")
    return upper


def canonical_symbol(native: str) -> str:
    """``"BTC-USDT"`` -> ``"BTC-USDT"``. Raises ``ValueError`` if it is not a spot symbol."""
    return _spot(native, "KuCoin symbol")


def native_symbol(canonical: str) -> str:
    """``"btc-usdt"`` -> ``"BTC-USDT"``. Raises ``ValueError`` if it is not ``BASE-QUOTE``."""
    return _spot(canonical, "canonical symbol")
