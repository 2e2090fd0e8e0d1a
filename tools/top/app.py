"""The loops of `ingest status` (one document, printed) and `ingest top` (a frame every interval).

`Top` holds what the dashboard knows between frames: the last ``/status`` document (kept when the
parent stops answering, with the failure shown in the header), the feeds to choose from and the
chosen symbol's `SymbolData`. `run_top` draws it full screen with rich's Live, or, given a number of
frames, prints that many frames one after another (scripts, screenshots, tests).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.layout import Layout
from rich.live import Live

from ingest.errors import UserError
from ingest.settings import Settings, load
from tools.top.data import NoCluster, SymbolData, fetch_status, status_url
from tools.top.keys import Keys
from tools.top.render import closing, dashboard, summary


def load_settings(path: str, url: str | None) -> Settings | None:
    """The settings, or None when ``--url`` says where the cluster is and the settings file is absent."""
    if url and not Path(path).exists():
        return None
    return load(path)


def status(settings_path: str, url: str | None, as_json: bool, console: Console | None = None) -> int:
    """Print the cluster's status once; exit status 0 when ready, 1 when not (`NoCluster`: 2, by the CLI)."""
    source = status_url(load_settings(settings_path, url), url)
    doc = fetch_status(source)
    if as_json:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        (console or Console()).print(summary(doc, source))
    return 0 if doc.get("ready") else 1


def feed_symbols(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Each (exchange, symbol) of the document's feeds once, in its order."""
    return list(dict.fromkeys((str(f.get("exchange")), str(f.get("symbol"))) for f in doc.get("feeds", [])))


class Top:
    def __init__(self, settings_path: str, url: str | None, symbol: str | None) -> None:
        self.settings_path = settings_path
        self.settings = load_settings(settings_path, url)
        self.source = status_url(self.settings, url)
        self.doc = fetch_status(self.source)  # nothing answering at the start is the user's mistake: exit 2
        self.problem: str | None = None
        self.failed_at: float | None = None
        self.symbols = feed_symbols(self.doc)
        self.index = 0
        if symbol:
            exchange, _, sym = symbol.partition(":")
            if (exchange, sym) not in self.symbols:
                known = ", ".join(f"{e}:{s}" for e, s in self.symbols[:6]) + (", ..." if len(self.symbols) > 6 else "")
                raise UserError(f"--symbol {symbol}: the cluster has no such feed (it has {known})")
            self.index = self.symbols.index((exchange, sym))
        self.data = self._data()

    def _data(self) -> SymbolData | None:
        if not self.symbols:
            return None
        exchange, symbol = self.symbols[self.index]
        return SymbolData(self.settings, exchange, symbol, self.settings_path)

    def refresh(self) -> None:
        """Fetch ``/status`` again; a failure keeps the last document and says so in the header."""
        try:
            self.doc = fetch_status(self.source)
            self.problem, self.failed_at = None, None
        except NoCluster as e:
            self.failed_at = self.failed_at or time.monotonic()
            self.problem = f"for {time.monotonic() - self.failed_at:.0f}s, showing the last answer: {e}"

    def switch(self, step: int) -> None:
        """The next (``step`` 1) or previous (-1) feed's symbol."""
        if len(self.symbols) > 1:
            if self.data is not None:
                self.data.close()
            self.index = (self.index + step) % len(self.symbols)
            self.data = self._data()

    def frame(self, width: int, height: int) -> Layout:
        view = self.data.view(wait=0.3) if self.data is not None else None  # a small book shows at once
        return dashboard(self.doc, view, self.source, width, height, self.problem)

    def close(self) -> None:
        if self.data is not None:
            self.data.close()


def run_top(top: Top, console: Console, interval: float, frames: int | None = None) -> int:
    """Show the dashboard until ``q`` or Ctrl-C (or for ``frames`` frames), then a short summary."""
    try:
        if frames is not None:
            for i in range(frames):
                if i:
                    time.sleep(interval)
                    top.refresh()
                console.print(top.frame(console.width, console.height))
            return 0
        if not console.is_terminal:
            raise UserError("ingest top draws on a terminal: give --frames N to print N frames instead")
        with (
            Keys() as keys,
            Live(console=console, screen=True, auto_refresh=False) as live,
            contextlib.suppress(KeyboardInterrupt),  # Ctrl-C is how a dashboard is left, not an error
        ):
            _loop(top, live, keys, interval)
        console.print(closing(top.doc, top.source, console.width))
        return 0
    finally:
        top.close()


def _loop(top: Top, live: Live, keys: Keys, interval: float) -> None:
    console = live.console
    while True:
        live.update(top.frame(console.width, console.height), refresh=True)
        deadline = time.monotonic() + interval
        while (left := deadline - time.monotonic()) > 0:
            key = keys.read(left)
            if key in ("q", "Q"):
                return
            if key in ("n", "p"):
                top.switch(1 if key == "n" else -1)
                live.update(top.frame(console.width, console.height), refresh=True)
        top.refresh()
