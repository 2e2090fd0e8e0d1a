"""The `ExchangeSpec` for Kraken Spot (WebSocket v2): every Kraken fact the generic runner needs.

One connection to ``wss://ws.kraken.com/v2`` carries every channel; after connecting the runner sends
`subscribe_frames`, in this order:

1. ``instrument`` (snapshot): the pairs' ``price_precision``/``qty_precision``, which the codec needs
   to write prices and quantities at full precision for the checksum. It comes first so that the
   precisions usually arrive before the first book snapshot (the codec infers them from the
   snapshot otherwise);
2. ``book`` at the subscribed depth (10, 25, 100, 500 or 1000; default 10) with ``snapshot: true``:
   snapshots arrive in the stream (``snapshot_source = "stream"``), the book is truncated to the
   depth after every message (Kraken sends no deletes for levels that leave it) and its CRC32
   checksum is verified on every snapshot and update;
3. ``trade`` with ``snapshot: false``, set explicitly (the docs disagree on the default). A snapshot
   would replay the last 50 trades on every (re)subscription, publishing trades already published;
   without it every trade is published once, from the subscription on;
4. ``heartbeat``: Kraken then sends ``{"channel":"heartbeat"}`` every second with no other data, so
   5 s of silence means a dead connection (Kraken's own advice). No WebSocket or application ping is
   needed on top.

A book whose checksum fails is resynced alone by `resubscribe_frames`: unsubscribe then subscribe
that one symbol's book, which makes Kraken send a fresh snapshot. Books have no update ids, so the
continuity rule applies everything (`KrakenRule`). Recorded sessions from the v1 endpoint
(``wss://ws.kraken.com``, no ``/v2``) replay through the v1 codec (`replay_codec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from ingest.exchanges.base import Codec, ExchangeSpec, Subscription
from ingest.exchanges.kraken.checksum import book_checksum
from ingest.exchanges.kraken.codec import EXCHANGE, KrakenCodec
from ingest.exchanges.kraken.codec_v1 import KrakenV1Codec
from ingest.exchanges.kraken.history import HISTORY
from ingest.exchanges.kraken.sequence import KrakenRule
from ingest.exchanges.kraken.symbols import canonical_symbol, native_symbol

DEPTHS = (10, 25, 100, 500, 1000)
DEFAULT_DEPTH = 10
# Request ids of the frames we send, so a refusal in the log says which request it was.
REQ_INSTRUMENT, REQ_BOOK, REQ_TRADE, REQ_HEARTBEAT, REQ_UNSUBSCRIBE, REQ_RESUBSCRIBE = 1, 2, 3, 4, 5, 6


def _frame(method: str, params: dict[str, Any], req_id: int) -> str:
    return orjson.dumps({"method": method, "params": params, "req_id": req_id}).decode()


def book_depth(sub: Subscription) -> int:
    """The depth to subscribe: the subscription's, or 10. ``ValueError`` if Kraken does not offer it."""
    depth = sub.depth or DEFAULT_DEPTH
    if depth not in DEPTHS:
        raise ValueError(f"Kraken book depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}")
    return depth


def connect_url(ws_url: str, sub: Subscription) -> str:
    """The ws_url itself: Kraken subscribes by frames, not by URL."""
    return ws_url


def subscribe_frames(sub: Subscription) -> list[str]:
    """instrument, then book and trade for every symbol (as the channels ask), then heartbeat."""
    symbols = list(sub.natives)
    frames = [_frame("subscribe", {"channel": "instrument", "snapshot": True}, REQ_INSTRUMENT)]
    if "book" in sub.channels:
        params = {"channel": "book", "symbol": symbols, "depth": book_depth(sub), "snapshot": True}
        frames.append(_frame("subscribe", params, REQ_BOOK))
    if "trades" in sub.channels:
        frames.append(_frame("subscribe", {"channel": "trade", "symbol": symbols, "snapshot": False}, REQ_TRADE))
    frames.append(_frame("subscribe", {"channel": "heartbeat"}, REQ_HEARTBEAT))
    return frames


def resubscribe_frames(native: str, sub: Subscription) -> list[str]:
    """Unsubscribe and subscribe again one symbol's book: Kraken answers with a fresh snapshot."""
    depth = book_depth(sub)
    return [
        _frame("unsubscribe", {"channel": "book", "symbol": [native], "depth": depth}, REQ_UNSUBSCRIBE),
        _frame(
            "subscribe",
            {"channel": "book", "symbol": [native], "depth": depth, "snapshot": True},
            REQ_RESUBSCRIBE,
        ),
    ]


def snapshot_url(rest_url: str, native: str) -> str:
    raise ValueError("Kraken book snapshots arrive in the WebSocket stream (snapshot_source 'stream')")


def new_codec(symbols: Mapping[str, str]) -> Codec:
    return KrakenCodec(symbols)


def replay_codec(url: str) -> Codec:
    """v1 for a session recorded from the v1 endpoint (``wss://ws.kraken.com``: no path at all),
    v2 otherwise (``wss://ws.kraken.com/v2``, or the simulator's ``ws://host:port/kraken``)."""
    return KrakenCodec() if urlsplit(url).path.strip("/") else KrakenV1Codec()


SPEC = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://ws.kraken.com/v2",
    rest_url="https://api.kraken.com",
    # Streams are symbol x channel: 200 symbols with book and trades on one connection.
    max_streams_per_connection=400,
    snapshot_source="stream",
    book_depths=DEPTHS,
    trade_ids_contiguous=True,  # "a sequence number, unique per book" (Kraken v2 trade docs)
    trade_history=HISTORY,
    native_symbol=native_symbol,
    canonical_symbol=canonical_symbol,
    connect_url=connect_url,
    subscribe_frames=subscribe_frames,
    snapshot_url=snapshot_url,
    new_codec=new_codec,
    sequence_rule=KrakenRule(),
    ws_ping=False,
    liveness_timeout=5.0,
    checksum=book_checksum,
    default_depth=DEFAULT_DEPTH,
    truncate_to_depth=True,
    resubscribe_frames=resubscribe_frames,
    replay_codec=replay_codec,
)
