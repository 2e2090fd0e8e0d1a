"""The `ExchangeSpec` for Binance Spot: every Binance fact the generic runner needs.

One combined-stream connection carries up to 1024 streams and subscribes by its URL
(``/stream?streams=<sym>@depth@100ms/<sym>@trade/...``), so no subscribe frames are sent. Books are
synchronised from REST snapshots (``/api/v3/depth?symbol=BTCUSDT&limit=1000``) with `BinanceRule`.
The server pings every 20 s and drops a client silent for 1 min; our own ping keeps the liveness check
honest on quiet streams. A connection lives 24 h at most, so sessions are replaced before that; a
depth stream found silent (a feed's ``symbol_timeout``) is resubscribed with the ``UNSUBSCRIBE`` and
``SUBSCRIBE`` methods.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ingest.exchanges.base import Channel, ExchangeSpec, Subscription
from ingest.exchanges.binance.codec import EXCHANGE, BinanceCodec
from ingest.exchanges.binance.history import HISTORY
from ingest.exchanges.binance.sequence import BinanceRule
from ingest.exchanges.binance.symbols import canonical_symbol, native_symbol

SNAPSHOT_LIMIT = 1000
# Stream name suffix per canonical channel.
_STREAMS: dict[Channel, str] = {"book": "depth@100ms", "trades": "trade"}


def stream_names(natives: Sequence[str], channels: Sequence[Channel]) -> list[str]:
    """``["btcusdt@depth@100ms", "btcusdt@trade", ...]``: symbol-major, channels in the order given."""
    return [f"{native.lower()}@{_STREAMS[channel]}" for native in natives for channel in channels]


def connect_url(ws_url: str, sub: Subscription) -> str:
    """The combined-stream URL that subscribes to every stream of these symbols and channels."""
    return f"{ws_url.rstrip('/')}/stream?streams={'/'.join(stream_names(sub.natives, sub.channels))}"


def subscribe_frames(sub: Subscription) -> list[str]:
    """None: the combined-stream URL already names the streams."""
    return []


def resubscribe_frames(native: str, sub: Subscription) -> list[str]:
    """Unsubscribe, then subscribe, the depth stream of one symbol (revives a silent one)."""
    stream = stream_names([native], ("book",))
    return [
        orjson.dumps({"method": method, "params": stream, "id": f"{method.lower()}{native}"[:36]}).decode()
        for method in ("UNSUBSCRIBE", "SUBSCRIBE")
    ]


def snapshot_url(rest_url: str, native: str) -> str:
    return f"{rest_url.rstrip('/')}/api/v3/depth?symbol={native.upper()}&limit={SNAPSHOT_LIMIT}"


SPEC = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://stream.binance.com:9443",
    rest_url="https://api.binance.com",
    max_streams_per_connection=1024,
    snapshot_source="rest",
    native_symbol=native_symbol,
    canonical_symbol=canonical_symbol,
    connect_url=connect_url,
    subscribe_frames=subscribe_frames,
    snapshot_url=snapshot_url,
    new_codec=BinanceCodec,
    sequence_rule=BinanceRule(),
    trade_ids_contiguous=True,  # @trade `t` (and @aggTrade `a`) count up by one per symbol
    trade_history=HISTORY,
    ping_interval=10.0,
    liveness_timeout=30.0,
    resubscribe_frames=resubscribe_frames,
    # "A single connection to stream.binance.com is only valid for 24 hours" (protocols.md A): replace
    # each one, make before break, half an hour before.
    session_life=23.5 * 3600,
)
