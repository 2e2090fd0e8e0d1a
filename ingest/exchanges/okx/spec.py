"""The `ExchangeSpec` for OKX v5 public WebSocket: every OKX fact the generic runner needs.

- One connection to ``/ws/v5/public`` (the URL names no streams); after connecting the runner sends
  one ``subscribe`` request whose ``args`` list every ``books`` and ``trades`` channel of the
  connection. OKX counts a request once against its 480 (un)subscribe requests per hour per
  connection whatever the number of args, so args are batched (split only where a request would pass
  OKX's 64 KB limit on the args' total length).
- Books come from the stream: a 400-level snapshot on subscribe, then updates chained by
  ``prevSeqId``/``seqId`` (`OkxRule`). To resync one symbol the runner unsubscribes and resubscribes
  its ``books`` channel (two requests; the symbol's other channels are untouched).
- Keepalive: OKX closes a connection that receives nothing for 30 s. The client sends the literal
  text ``ping`` after 20 s without inbound data (any timer below 30 s, per the docs) and expects the
  text ``pong``; a connection still silent 20 s later is dead.
- The book checksum is deprecated (always 0 on live data since 2026-06-23); the codec passes a
  non-zero one on and the sync verifies it, so historical sessions and the simulator are checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import orjson

from ingest.exchanges.base import Channel, ExchangeSpec, Subscription
from ingest.exchanges.okx.checksum import book_checksum
from ingest.exchanges.okx.codec import EXCHANGE, OkxCodec
from ingest.exchanges.okx.history import HISTORY
from ingest.exchanges.okx.sequence import OkxRule
from ingest.exchanges.okx.symbols import canonical_symbol, native_symbol

BOOK_LEVELS = 400  # the ``books`` channel's depth; OKX sends deletes for levels leaving it
SNAPSHOT_LIMIT = 400  # REST ``sz`` maximum for /api/v5/market/books
MAX_ARGS_BYTES = 60_000  # below OKX's 64 KB limit on a request's args
# OKX channel per canonical channel.
CHANNELS: dict[Channel, str] = {"book": "books", "trades": "trades"}
_NOT_ID = re.compile(r"[^A-Za-z0-9]")


def channel_args(natives: Sequence[str], channels: Sequence[Channel]) -> list[dict[str, str]]:
    """``[{"channel":"books","instId":"BTC-USDT"}, {"channel":"trades",..}, ...]``, symbol-major."""
    return [{"channel": CHANNELS[c], "instId": native} for native in natives for c in channels]


def _request_id(prefix: str, n: int | str) -> str:
    """OKX request ids are 1-32 letters and digits."""
    return _NOT_ID.sub("", f"{prefix}{n}")[:32]


def _requests(op: str, prefix: str, args: Iterable[dict[str, str]]) -> list[str]:
    frames: list[str] = []
    batch: list[dict[str, str]] = []
    size = 0
    for arg in args:
        arg_size = len(orjson.dumps(arg)) + 1
        if batch and size + arg_size > MAX_ARGS_BYTES:
            frames.append(_request(op, _request_id(prefix, len(frames) + 1), batch))
            batch, size = [], 0
        batch.append(arg)
        size += arg_size
    if batch:
        frames.append(_request(op, _request_id(prefix, len(frames) + 1), batch))
    return frames


def _request(op: str, request_id: str, args: list[dict[str, str]]) -> str:
    return orjson.dumps({"id": request_id, "op": op, "args": args}).decode()


def connect_url(ws_url: str, sub: Subscription) -> str:
    """The public endpoint itself: subscriptions are requests, not part of the URL."""
    return ws_url


def subscribe_frames(sub: Subscription) -> list[str]:
    """One ``subscribe`` request for every channel of the connection (more only past 64 KB of args)."""
    return _requests("subscribe", "sub", channel_args(sub.natives, sub.channels))


def resubscribe_frames(native: str, sub: Subscription) -> list[str]:
    """Unsubscribe, then subscribe, the ``books`` channel of one symbol: OKX answers the subscribe
    with a fresh snapshot. Ids name the symbol (``unsubBTCUSDT``) so the acks can be told apart."""
    arg = [{"channel": CHANNELS["book"], "instId": native}]
    return [
        _request("unsubscribe", _request_id("unsub", native), arg),
        _request("subscribe", _request_id("resub", native), arg),
    ]


def snapshot_url(rest_url: str, native: str) -> str:
    """REST books (not used by the runner: snapshots come from the stream)."""
    return f"{rest_url.rstrip('/')}/api/v5/market/books?instId={native}&sz={SNAPSHOT_LIMIT}"


SPEC = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://ws.okx.com:8443/ws/v5/public",
    rest_url="https://www.okx.com",
    # OKX recommends fewer than 30 depth channels per connection for its 50- and 400-level books.
    # The plan divides this by the number of channels, so 29 keeps every connection under 30 books
    # channels whatever the mix (14 symbols with books + trades, 29 with books alone). More
    # connections also give each symbol more of a connection's 480 (un)subscribe requests per hour,
    # which resyncs spend two at a time.
    max_streams_per_connection=29,
    snapshot_source="stream",
    native_symbol=native_symbol,
    canonical_symbol=canonical_symbol,
    connect_url=connect_url,
    subscribe_frames=subscribe_frames,
    snapshot_url=snapshot_url,
    new_codec=OkxCodec,
    sequence_rule=OkxRule(),
    trade_history=HISTORY,
    ws_ping=False,
    app_ping="ping",
    # The docs' rule: a timer N < 30 s reset by every inbound message; at N send "ping", and with no
    # answer within N more seconds reconnect.
    app_ping_interval=20.0,
    liveness_timeout=30.0,
    checksum=book_checksum,
    default_depth=BOOK_LEVELS,
    truncate_to_depth=False,
    resubscribe_frames=resubscribe_frames,
    # "about 60 s without book changes": an update with no levels and seqId == prevSeqId (protocols.md
    # C), so a books channel silent for longer is dead.
    book_keepalive=60.0,
)
