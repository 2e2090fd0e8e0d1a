"""Simulated exchanges: one module per exchange, each defining ``SIM``, a factory that builds the
exchange's protocol on a `tools.sim.venue.Venue`. Discovered by name; nothing lists them by hand."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from tools.sim.venue import ExchangeSim, Venue


def discover() -> dict[str, Callable[[Venue], ExchangeSim]]:
    found: dict[str, Callable[[Venue], ExchangeSim]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[info.name] = module.SIM
    return found
