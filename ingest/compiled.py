"""The modules built as C extensions (by mypyc and Cython, in ``setup.py``), and a check that they are current.

Every message a shard handles passes through these: its exchange's codec (and the message parsers
and sequence rule under it), the session's frame dispatch, the book and its sync, the arbiter, the
bars, the bus encoding and the publisher. mypyc compiles the same typed source to C (direct calls
between them, native attribute access on their classes), which cuts a shard's per-message CPU
(BENCHMARKS.md has the figures). The source stays the truth: ``INGEST_PURE=1`` at install time builds
nothing, and the project runs as plain Python with the same behaviour. `CYTHON` lists the modules
compiled from a ``.pyx`` instead: each has a ``.py`` twin with the same behaviour, for that case.

An editable install builds the extensions next to their sources, and Python imports an extension
before a source file of the same name: after a source is edited (or checked out anew), its old
extension would still run. `stale` finds such modules; the CLI and the test suite refuse to start
on them, saying how to rebuild.

Only the standard library here: ``setup.py`` imports this before anything is installed.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

MODULES = (
    "ingest.book.book",
    "ingest.book.sync",
    "ingest.exchanges.fields",
    "ingest.exchanges.binance.codec",
    "ingest.exchanges.binance.sequence",
    "ingest.exchanges.bybit.codec",
    "ingest.exchanges.bybit.messages",
    "ingest.exchanges.bybit.sequence",
    "ingest.exchanges.coinbase.codec",
    "ingest.exchanges.coinbase.messages",
    "ingest.exchanges.coinbase.sequence",
    "ingest.exchanges.kraken.checksum",
    "ingest.exchanges.kraken.codec",
    "ingest.exchanges.kraken.messages",
    "ingest.exchanges.kraken.codec_v1",
    "ingest.exchanges.kraken.sequence",
    "ingest.exchanges.kucoin.codec",
    "ingest.exchanges.kucoin.messages",
    "ingest.exchanges.kucoin.sequence",
    "ingest.exchanges.okx.checksum",
    "ingest.exchanges.okx.codec",
    "ingest.exchanges.okx.messages",
    "ingest.exchanges.okx.sequence",
    "ingest.session.frames",
    "ingest.session.arbiter",
    "ingest.bars",
    "bus.wire",
    "bus.publisher",
    "shards.bars",
)

# Compiled by Cython from ``<module>.pyx`` (the ``.py`` next to it is the plain-Python twin).
CYTHON = ("ingest.session.listener",)
BUILT = MODULES + CYTHON

_REBUILD = "rebuild them with `.venv/bin/pip install -e .` (or delete them, for plain Python)"
_SLACK_S = 1.0  # an install writes a package's files within a second of each other


def pure() -> bool:
    """``INGEST_PURE`` is set (and not 0): install as plain Python."""
    return os.environ.get("INGEST_PURE", "") not in ("", "0")


def compiled() -> list[str]:
    """The listed modules that import as an extension here."""
    return [m for m in BUILT if _extension(m) is not None]


def stale(modules: tuple[str, ...] = BUILT) -> list[str]:
    """The source files (paths: a module's ``.py``, and its ``.pyx`` if it has one) newer than the
    extension that stands in for them."""
    out: list[str] = []
    for name in modules:
        ext = _extension(name)
        if ext is None:
            continue
        for suffix in (".py", ".pyx"):
            source = ext.parent / (name.rpartition(".")[2] + suffix)
            if source.exists() and source.stat().st_mtime > ext.stat().st_mtime + _SLACK_S:
                out.append(str(source))
    return out


def problem(modules: tuple[str, ...] = BUILT) -> str | None:
    """What to say when a compiled module is older than its source (None when all are current)."""
    old = stale(modules)
    return f"compiled modules are older than their source ({', '.join(old)}): {_REBUILD}" if old else None


def _extension(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    if origin is None or origin.endswith(".py"):
        return None
    return Path(origin)
