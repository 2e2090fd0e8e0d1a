"""The `ExchangeSpec` for Coinbase Advanced Trade market data: every Coinbase fact the runner needs.

- One connection to ``wss://advanced-trade-ws.coinbase.com`` (the URL names no streams). Coinbase
  takes **one channel per subscribe message** and disconnects a client that has not subscribed
  within 5 s, so the runner sends, at once on connecting, one ``subscribe`` each for ``heartbeats``,
  ``level2`` (books) and ``market_trades`` (trades), each listing every product of the connection.
  Public channels need no JWT.
- Keepalive and liveness: ``heartbeats`` arrive every second (and keep a quiet connection open:
  Coinbase closes most channels after 60-90 s without updates). Its ``heartbeat_counter`` continuity
  is tracked by the codec; its arrival is the liveness check: a session that receives nothing for
  `LIVENESS_S` (five heartbeats) is dead. No client pings are needed.
- Books come from the stream: a ``level2`` snapshot per product on subscribe, then updates with
  absolute sizes and no per-product sequence (`CoinbaseRule` applies every update after the
  snapshot). The integrity check is the envelope's ``sequence_num``, counted per connection (or per
  channel: `ingest.exchanges.coinbase.sequence.SEQUENCE_SCOPE`, with `spec_for`): on a hole the codec
  emits a `Resync` for every book and the runner calls `resubscribe_frames` for each, an
  ``unsubscribe`` then a ``subscribe`` of that product's ``level2`` (Coinbase answers with a fresh
  snapshot; its other channels are untouched).
- Trades: ``market_trades``; ids are consecutive integers per product, and a hole (or a disconnect)
  is backfilled from the public market trades endpoint (`ingest.exchanges.coinbase.history`).
- Per connection: `MAX_STREAMS` streams (15 products with books and trades). Coinbase documents no
  per-connection limit; the bound keeps what one ``sequence_num`` hole resyncs small, and the
  resubscribes it costs (two messages per book) within reach of the 8 unauthenticated messages a
  second per IP the rate-limit page allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from ingest.exchanges.base import Channel, Codec, ExchangeSpec, Subscription
from ingest.exchanges.coinbase.codec import EXCHANGE, CoinbaseCodec
from ingest.exchanges.coinbase.history import HISTORY
from ingest.exchanges.coinbase.sequence import SEQUENCE_SCOPE, CoinbaseRule, Scope
from ingest.exchanges.coinbase.symbols import canonical_symbol, native_symbol

MAX_STREAMS = 30
LIVENESS_S = 5.0  # heartbeats come every second
HEARTBEATS = "heartbeats"
# Coinbase channel per canonical channel.
CHANNELS: dict[Channel, str] = {"book": "level2", "trades": "market_trades"}


def request(kind: str, channel: str, products: Sequence[str] | None) -> str:
    """``{"type":"subscribe","product_ids":[..],"channel":"level2"}`` (no ``product_ids``: none given)."""
    body: dict[str, object] = {"type": kind}
    if products is not None:
        body["product_ids"] = list(products)
    body["channel"] = channel
    return orjson.dumps(body).decode()


def connect_url(ws_url: str, sub: Subscription) -> str:
    """The market-data endpoint itself: subscriptions are messages, not part of the URL."""
    return ws_url


def subscribe_frames(sub: Subscription) -> list[str]:
    """``heartbeats`` first (it keeps the connection open), then one message per data channel."""
    frames = [request("subscribe", HEARTBEATS, None)]
    frames.extend(request("subscribe", CHANNELS[c], sub.natives) for c in sub.channels)
    return frames


def resubscribe_frames(native: str, sub: Subscription) -> list[str]:
    """Unsubscribe, then subscribe, the ``level2`` channel of one product: a fresh snapshot follows."""
    return [request("unsubscribe", CHANNELS["book"], [native]), request("subscribe", CHANNELS["book"], [native])]


def snapshot_url(rest_url: str, native: str) -> str:
    """REST public product book (not used by the runner: snapshots come from the stream)."""
    return f"{rest_url.rstrip('/')}/api/v3/brokerage/market/product_book?product_id={native}"


def spec_for(scope: Scope) -> ExchangeSpec:
    """The spec, its codecs counting ``sequence_num`` under ``scope``."""

    def new_codec(symbols: Mapping[str, str]) -> Codec:
        return CoinbaseCodec(symbols, scope)

    return ExchangeSpec(
        name=EXCHANGE,
        ws_url="wss://advanced-trade-ws.coinbase.com",
        rest_url="https://api.coinbase.com",
        max_streams_per_connection=MAX_STREAMS,
        snapshot_source="stream",
        native_symbol=native_symbol,
        canonical_symbol=canonical_symbol,
        connect_url=connect_url,
        subscribe_frames=subscribe_frames,
        snapshot_url=snapshot_url,
        new_codec=new_codec,
        sequence_rule=CoinbaseRule(),
        ping_interval=LIVENESS_S,
        liveness_timeout=LIVENESS_S,
        ws_ping=False,
        resubscribe_frames=resubscribe_frames,
        trade_ids_contiguous=True,
        trade_history=HISTORY,
    )


SPEC = spec_for(SEQUENCE_SCOPE)
