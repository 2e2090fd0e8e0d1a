"""The registry of exchange packages: the only place that lists them by name."""

from __future__ import annotations

from ingest.exchanges.base import ExchangeSpec
from ingest.exchanges.binance.spec import SPEC as BINANCE

SPECS: dict[str, ExchangeSpec] = {spec.name: spec for spec in (BINANCE,)}


def get_spec(name: str) -> ExchangeSpec:
    return SPECS[name]
