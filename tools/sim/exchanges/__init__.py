"""Simulated exchanges: one module per exchange, each defining ``SIM``, a factory that builds the
exchange's protocol on a `tools.sim.venue.Venue`, and, where the simulator takes protocol options
(``[simulator.options.<exchange>]``), ``check_options(raw) -> dict`` that fills in defaults and raises
``ValueError`` for a bad one. Discovered by name; nothing lists them by hand."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

from tools.sim.venue import ExchangeSim, Venue


def discover() -> dict[str, Callable[[Venue], ExchangeSim]]:
    found: dict[str, Callable[[Venue], ExchangeSim]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[info.name] = module.SIM
    return found


def check_options(options: Mapping[str, Mapping[str, Any]]) -> None:
    """Validate per-exchange simulator options; ``ValueError`` naming the exchange and the option."""
    for name, raw in options.items():
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            known = ", ".join(i.name for i in pkgutil.iter_modules(__path__))
            raise ValueError(f"{name}: no simulator for this exchange (simulated: {known})") from None
        check = getattr(module, "check_options", None)
        if check is None:
            if raw:
                raise ValueError(f"{name}: its simulator takes no options")
            continue
        try:
            check(raw)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
