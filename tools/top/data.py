"""The thin I/O behind `ingest top` and `ingest status`: the parent's ``/status`` over HTTP, and one
symbol's book and recent trades from the cluster's Redis Streams.

The book and trades come from Redis, not the bus: a book stream holds the newest snapshot, so a
dashboard started at any moment shows a whole book at once (a bus subscriber would wait for the next
resync), the trade stream gives the chart its history on the first frame, and reading Redis adds no
subscriber to the shards' publishers.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
import redis

from bus.consumer import LiveBook, decode_entry, redis_url, stream_key
from ingest.errors import DecodeError, UserError
from ingest.events import Trade
from ingest.settings import Settings
from tools.top.render import BOOK_LEVELS, SymbolView

TRADES = 60  # the newest trades read each frame: the chart's width and the trades table
Rows = list[tuple[bytes, dict[bytes, bytes]]]


class NoCluster(UserError):
    """Nothing answers ``/status`` at the address (or what answers is not a cluster's parent)."""


def status_url(settings: Settings | None, url: str | None) -> str:
    """The ``/status`` URL: ``url`` (``host:port``, a base URL or the full URL), else the settings'
    ``[metrics] listen``; with port 0 there, the bound address the parent wrote to ``{var}/metrics.addr``."""
    if url:
        return _status_of(url)
    if settings is None:
        raise UserError("give --url or a settings file: the status endpoint's address is `[metrics] listen`")
    listen = settings.metrics.listen
    if not listen:
        raise UserError(f'{settings.source}: [metrics] listen is "": the cluster serves no status endpoint')
    if listen.endswith(":0"):
        addr = settings.var_path / "metrics.addr"
        try:
            listen = addr.read_text().strip()
        except OSError:
            missing = f"no cluster is serving its status endpoint (no {addr}): is `ingest run` running?"
            raise NoCluster(missing) from None
    return _status_of(listen)


def _status_of(address: str) -> str:
    base = address if "://" in address else f"http://{address}"
    parts = urlsplit(base)
    return base if parts.path not in ("", "/") else f"{parts.scheme}://{parts.netloc}/status"


def fetch_status(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """The ``/status`` document; `NoCluster` (one line) when nothing answers or the answer is not one."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            body = reply.read()
    except urllib.error.HTTPError as e:  # a not-ready parent may answer 503 with the document all the same
        body = e.read()
        if not body.startswith(b"{"):
            raise NoCluster(f"{url} answered HTTP {e.code}: not a cluster's status endpoint") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise NoCluster(f"no cluster answers at {url} ({reason}): is `ingest run` running?") from None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NoCluster(f"{url} answered, but not with JSON: not a cluster's status endpoint") from None
    if not isinstance(doc, dict) or "feeds" not in doc or "processes" not in doc:
        raise NoCluster(f"{url} answered a JSON document without feeds and processes: not a cluster's status")
    return cast(dict[str, Any], doc)


class _Loader(threading.Thread):
    """`LiveBook.load` away from the frames: a book stream may hold up to ``redis.maxlen`` entries after its
    newest snapshot, and reading them through redis-py takes about 90 us an entry here (100k: 9 s), which a
    dashboard must not freeze for."""

    def __init__(self, client: redis.Redis, exchange: str, symbol: str, prefix: str) -> None:
        super().__init__(name=f"load {exchange} {symbol}", daemon=True)
        self.book = LiveBook(client, exchange, symbol, prefix)
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.book.load()
        except (OSError, redis.RedisError, DecodeError) as e:
            self.error = e


class SymbolData:
    """One symbol's book (kept by `LiveBook` from its stream) and its newest trades, from Redis.

    The book is loaded in the background (`_Loader`); until it is, views have ``loading`` set and the
    trades alone. Every Redis failure becomes a `SymbolView` with ``problem`` set (the dashboard goes on,
    and the next `view` connects again), never an exception."""

    def __init__(self, settings: Settings | None, exchange: str, symbol: str, settings_path: str = "") -> None:
        self.exchange, self.symbol = exchange, symbol
        self.settings, self.settings_path = settings, settings_path
        self.client: redis.Redis | None = None
        self.loader: _Loader | None = None

    def view(self, wait: float = 0.0) -> SymbolView:
        """The book and trades now; a book still loading is waited for up to ``wait`` seconds."""
        try:
            return self._view(wait)
        except (OSError, redis.RedisError, UserError, DecodeError) as e:
            self.close()
            return SymbolView(self.exchange, self.symbol, problem=f"redis: {e}")

    def _view(self, wait: float) -> SymbolView:
        if self.settings is None:
            return SymbolView(self.exchange, self.symbol, problem="no settings file: no Redis to read the book from")
        prefix = self.settings.redis.key_prefix
        if self.client is None:
            self.client = redis.Redis.from_url(redis_url(self.settings_path), socket_timeout=5.0)
        if self.loader is None:
            self.loader = _Loader(self.client, self.exchange, self.symbol, prefix)
            self.loader.start()
        self.loader.join(wait)
        loading = self.loader.is_alive()
        if self.loader.error is not None:
            raise self.loader.error
        book = self.loader.book
        if not loading:
            for _ in range(20):  # at most 20 pages a frame: a frame never waits on a flood
                if book.update(block=None) == 0:
                    break
        key = stream_key("trade", self.exchange, self.symbol, prefix)
        rows = cast(Rows, self.client.xrevrange(key, count=TRADES))
        trades = [t for t in (decode_entry(key, i, f).event for i, f in rows) if isinstance(t, Trade)]
        bids, asks = book.depth(BOOK_LEVELS) if not loading else ([], [])
        if not bids and not asks and not trades and not loading:
            nothing = f"nothing in Redis yet under {prefix}:*:{self.exchange}:{self.symbol}"
            return SymbolView(self.exchange, self.symbol, problem=nothing)
        valid = book.valid and not loading
        return SymbolView(self.exchange, self.symbol, valid, bids, asks, trades, loading=loading)

    def close(self) -> None:
        """Drop the connection and the book (a load still running ends on its own, its result unused)."""
        if self.client is not None:
            self.client.close()
        self.client, self.loader = None, None
