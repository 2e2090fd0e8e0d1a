"""The benchmark's peer: cryptofeed's Binance feed pointed at the simulator, writing Redis Streams.

Run as its own process by `tools.bench` (``python -m tools.peer_cryptofeed --ws-url .. --rest-url ..
--redis-url .. --symbols BTC-USDT,ETH-USDT``); cryptofeed is the optional extra ``peer``
(``pip install -e '.[peer]'``). Nothing here is cryptofeed's code: only its public classes, used as its
documentation and source describe them (cryptofeed 2.4.1):

- ``Binance.websocket_endpoints`` / ``Binance.rest_endpoints`` are class attributes holding the production
  addresses (``cryptofeed/exchanges/binance.py``); a subclass replaces them with the simulator's.
- ``Exchange.__init__`` fetches ``/api/v3/exchangeInfo`` for the symbol table unless ``Symbols`` already
  holds one for the exchange id (``cryptofeed/exchange.py``, ``Symbols.populated``); the simulator has no
  such endpoint, so the table is filled in first with exactly the symbols simulated.
- ``WSAsyncConn`` accepts only ``wss://`` addresses; see `_allow_plain_ws`.
- ``TradeStream`` and ``BookStream`` (``cryptofeed/backends/redis.py``) XADD one entry per trade and per
  book update to ``trades-BINANCE-<symbol>`` and ``book-BINANCE-<symbol>``; ``numeric_type=str`` keeps the
  decimal strings exact so the trades can be compared with the simulator's truth. They connect to the
  same kind of Redis as the cluster's, over the same Unix socket (`bus.embedded_redis`).

cryptofeed's Binance feed subscribes ``<sym>@aggTrade`` and ``<sym>@depth@100ms`` and fetches one REST
snapshot per symbol at the first depth update; the simulator sends one aggTrade per trade, so both
clients receive the same number of messages.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

TRADE_KEY = "trades"
BOOK_KEY = "book"
FEED_ID = "BINANCE"


def stream_key(kind: str, symbol: str) -> str:
    """The stream cryptofeed's Redis Streams backend writes for a channel key and a symbol."""
    return f"{kind}-{FEED_ID}-{symbol}"


def available() -> str | None:
    """None if cryptofeed can be imported here, else why not."""
    try:
        importlib.import_module("cryptofeed")
    except ImportError as e:
        return f"cryptofeed is not installed ({e}); install the extra: pip install -e '.[peer]'"
    return None


def _simulated_binance(ws_url: str, rest_url: str) -> Any:
    """cryptofeed's Binance feed class with the simulator's addresses instead of Binance's."""
    binance: Any = importlib.import_module("cryptofeed.exchanges.binance")
    conn: Any = importlib.import_module("cryptofeed.connection")
    rest = conn.RestEndpoint(
        rest_url,
        routes=conn.Routes("/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}"),
    )
    attrs = {"websocket_endpoints": [conn.WebsocketEndpoint(ws_url)], "rest_endpoints": [rest]}
    return type("SimulatedBinance", (binance.Binance,), attrs)


def _allow_plain_ws() -> None:
    """cryptofeed's ``WSAsyncConn`` refuses any address but ``wss://`` (``cryptofeed/connection.py``);
    the simulator speaks plain ``ws://`` on loopback (as it does to our shards, so neither client pays
    for TLS). Construct with the address spelled ``wss://``, then put the real one back."""
    conn: Any = importlib.import_module("cryptofeed.connection")
    original = conn.WSAsyncConn.__init__

    def init(self: Any, address: str, *args: Any, **kwargs: Any) -> None:
        plain = address.startswith("ws://")
        original(self, "wss://" + address.removeprefix("ws://") if plain else address, *args, **kwargs)
        self.address = address

    conn.WSAsyncConn.__init__ = init


def run(ws_url: str, rest_url: str, redis_url: str, symbols: Sequence[str]) -> None:
    """Run cryptofeed until SIGTERM/SIGINT (its own signal handlers stop the loop)."""
    cf: Any = importlib.import_module("cryptofeed")
    defines: Any = importlib.import_module("cryptofeed.defines")
    redis_backend: Any = importlib.import_module("cryptofeed.backends.redis")
    symbols_mod: Any = importlib.import_module("cryptofeed.symbols")
    symbols_mod.Symbols.set(FEED_ID, {s: s.replace("-", "") for s in symbols}, {})
    _allow_plain_ws()
    feed_cls = _simulated_binance(ws_url, rest_url)
    # cryptofeed builds its Redis URL from host and port, and for a Unix socket builds an empty one (an
    # operator precedence slip in `RedisCallback.__init__`), so the URL goes on the callbacks it made.
    trades = redis_backend.TradeStream(key=TRADE_KEY, numeric_type=str)
    books = redis_backend.BookStream(key=BOOK_KEY, numeric_type=str)
    trades.redis = books.redis = redis_url
    handler = cf.FeedHandler(config={"uvloop": True, "log": {"filename": "/dev/null", "level": "WARNING"}})
    handler.add_feed(
        feed_cls(
            symbols=list(symbols),
            channels=[defines.TRADES, defines.L2_BOOK],
            callbacks={
                defines.TRADES: trades,
                defines.L2_BOOK: books,
            },
        )
    )
    # cryptofeed's run() asks asyncio for the current loop, which Python 3.12+ (and uvloop's policy)
    # no longer create implicitly.
    asyncio.set_event_loop(asyncio.new_event_loop())
    handler.run()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.peer_cryptofeed", description=__doc__.split("\n")[0])
    p.add_argument("--ws-url", required=True, help="the simulator's Binance WebSocket base")
    p.add_argument("--rest-url", required=True, help="the simulator's Binance REST base")
    p.add_argument("--redis-url", required=True, help="redis://host:port/db or unix:///path?db=0")
    p.add_argument("--symbols", required=True, help="comma-separated canonical symbols")
    args = p.parse_args(argv)
    problem = available()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 3
    logging.basicConfig(level=logging.WARNING)
    run(args.ws_url, args.rest_url, args.redis_url, args.symbols.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
