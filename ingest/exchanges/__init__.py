"""The registry of exchange packages, discovered: every subpackage with a ``spec`` module defining
``SPEC`` is an exchange. Nothing lists exchanges by hand."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from ingest.exchanges.base import ExchangeSpec


def _discover() -> dict[str, ExchangeSpec]:
    found: dict[str, ExchangeSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.ispkg and importlib.util.find_spec(f"{__name__}.{info.name}.spec") is not None:
            spec: ExchangeSpec = importlib.import_module(f"{__name__}.{info.name}.spec").SPEC
            found[spec.name] = spec
    return found


SPECS: dict[str, ExchangeSpec] = _discover()


def get_spec(name: str) -> ExchangeSpec:
    return SPECS[name]
