"""The `ExchangeSpec` for Bybit v5 public spot WebSocket: every Bybit fact the generic runner needs
(protocols.md E; Bybit's docs v5 ws/connect, websocket/public/orderbook and trade).

- One connection to ``/v5/public/spot`` (the URL names no topics); after connecting the runner sends
  ``{"op":"subscribe","args":[..],"req_id":..}`` requests for the topics ``orderbook.{depth}.{symbol}``
  and ``publicTrade.{symbol}``. Spot takes at most 10 args per request, so they go 10 at a time; and a
  connection's args may not pass 21,000 characters in all: 200 streams per connection keep even
  the longest names the settings allow (``orderbook.1000.`` and a 60-character symbol, quoted, with
  a comma: 78 characters) at 15,600.
- Books come from the stream: a snapshot on subscribe (``depth`` 1, 50, 200 or 1000 levels a side;
  50 by default), then deltas whose ``u`` grows by 1 (`BybitRule`). Every snapshot replaces the book,
  also one Bybit sends mid-stream, and ``u = 1`` (a restart of Bybit's book service) is a snapshot
  (the codec). To resync one symbol after a break in ``u`` the runner unsubscribes and resubscribes
  its ``orderbook`` topic; Bybit answers the subscribe with a snapshot. No checksum.
- Depth: the docs do not say whether Bybit deletes a level that leaves the subscribed depth (pushed
  out by better ones) or leaves that to the client. ``truncate_to_depth`` keeps the book at the
  depth either way: a no-op if Bybit sends the deletes (which the simulator does, as a windowed
  view), and the missing deletes if it does not.
- Keepalive: ``{"req_id":"ping","op":"ping"}`` every 20 s, as Bybit recommends ("we recommend that
  you send the ping heartbeat packet every 20 seconds"), whether data flows or not; the server
  answers ``{"success":true,"ret_msg":"pong",..,"op":"ping"}``. Bybit cuts a connection only after
  10 minutes with neither pings nor data. Server-side WebSocket pings are answered by the client
  library; the client sends none of its own.
- Trades: ids (``i``) are opaque strings in the docs (digits on spot, UUIDs on derivatives), not
  promised consecutive, so ``trade_ids_contiguous`` is off: a hole is only looked for after a spell
  with no session, and filled from REST recent trades (the newest 60; see ``history.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from ingest.exchanges.base import Channel, ExchangeSpec, Subscription
from ingest.exchanges.bybit.codec import EXCHANGE, BybitCodec
from ingest.exchanges.bybit.history import HISTORY
from ingest.exchanges.bybit.sequence import BybitRule
from ingest.exchanges.bybit.symbols import canonical_symbol, native_symbol

DEPTHS = (1, 50, 200, 1000)  # spot ``orderbook`` depths
DEFAULT_DEPTH = 50
ARGS_PER_REQUEST = 10  # spot's limit per subscribe request
MAX_ARGS_CHARS = 21_000  # per connection, all categories
MAX_STREAMS = 200  # see the module docstring
SNAPSHOT_LIMIT = 200  # REST /v5/market/orderbook spot ``limit`` maximum
PING = '{"req_id":"ping","op":"ping"}'


def topic(channel: Channel, native: str, depth: int) -> str:
    if channel == "book":
        return f"orderbook.{depth or DEFAULT_DEPTH}.{native}"
    return f"publicTrade.{native}"


def topics(natives: Sequence[str], channels: Sequence[Channel], depth: int) -> list[str]:
    """Every topic of a connection, symbol-major."""
    return [topic(c, n, depth) for n in natives for c in channels]


def _request(op: str, req_id: str, args: list[str]) -> str:
    return orjson.dumps({"op": op, "args": args, "req_id": req_id}).decode()


def _requests(op: str, prefix: str, args: Iterable[str]) -> list[str]:
    batch = list(args)
    return [
        _request(op, f"{prefix}{n + 1}", batch[i : i + ARGS_PER_REQUEST])
        for n, i in enumerate(range(0, len(batch), ARGS_PER_REQUEST))
    ]


def connect_url(ws_url: str, sub: Subscription) -> str:
    """The public spot endpoint itself: subscriptions are requests, not part of the URL."""
    return ws_url


def subscribe_frames(sub: Subscription) -> list[str]:
    """``subscribe`` requests of at most 10 topics each, for every topic of the connection."""
    return _requests("subscribe", "sub", topics(sub.natives, sub.channels, sub.depth))


def resubscribe_frames(native: str, sub: Subscription) -> list[str]:
    """Unsubscribe, then subscribe, the ``orderbook`` topic of one symbol: Bybit answers the subscribe
    with a fresh snapshot. Request ids name the symbol, so the acks can be told apart in the log."""
    args = [topic("book", native, sub.depth)]
    return [_request("unsubscribe", f"unsub-{native}", args), _request("subscribe", f"resub-{native}", args)]


def snapshot_url(rest_url: str, native: str) -> str:
    """REST orderbook (not used by the runner: snapshots come from the stream)."""
    return f"{rest_url.rstrip('/')}/v5/market/orderbook?category=spot&symbol={native}&limit={SNAPSHOT_LIMIT}"


SPEC = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://stream.bybit.com/v5/public/spot",
    rest_url="https://api.bybit.com",
    max_streams_per_connection=MAX_STREAMS,
    snapshot_source="stream",
    native_symbol=native_symbol,
    canonical_symbol=canonical_symbol,
    connect_url=connect_url,
    subscribe_frames=subscribe_frames,
    snapshot_url=snapshot_url,
    new_codec=BybitCodec,
    sequence_rule=BybitRule(),
    ws_ping=False,
    app_ping=PING,
    app_ping_interval=20.0,
    app_ping_periodic=True,
    liveness_timeout=30.0,
    default_depth=DEFAULT_DEPTH,
    truncate_to_depth=True,
    book_depths=DEPTHS,
    resubscribe_frames=resubscribe_frames,
    trade_ids_contiguous=False,
    trade_history=HISTORY,
)
