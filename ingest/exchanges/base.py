"""What an exchange package provides, and the few non-event things a codec can decode.

Generic code (the session runner, replay, the simulator's harness) reads an `ExchangeSpec` and never
names an exchange. Everything here is pure: no asyncio, sockets, zmq or redis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from ingest.book.book import OrderBook
from ingest.events import BookDelta, BookSnapshot, Event, Trade

Verdict = Literal["drop", "apply", "gap"]
Channel = Literal["trades", "book"]
CHANNELS: tuple[Channel, ...] = ("trades", "book")


@dataclass(frozen=True, slots=True)
class Reconnect:
    """The exchange announced it will close this connection (e.g. a shutdown notice)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to a request we sent (subscribe, ping...). ``error`` is None on success."""

    request_id: str
    error: str | None


@dataclass(frozen=True, slots=True)
class Resync:
    """The stream says books of this session can no longer be trusted (a hole in a per-connection
    sequence, say): each is resynced (`ExchangeSpec.resubscribe_frames` or a REST snapshot).
    ``natives`` empty: every book of the session."""

    reason: str
    natives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Greeting:
    """The exchange greeted a new connection. A spec with ``greeting=True`` sends its subscriptions
    only after this (and a session that is not greeted within the liveness timeout is dead)."""


Decoded = Event | Reconnect | Reply | Resync | Greeting


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one session connects, when the exchange hands that out per connection (a token)."""

    url: str  # the WebSocket URL, ready to connect to (token and connection id included)
    ping_interval: float | None = None  # the exchange's ``app_ping`` interval, overriding the spec's
    liveness_timeout: float | None = None  # likewise for the silence after which a session is dead


@dataclass(frozen=True)
class EndpointRequest:
    """A REST POST made before every session connects (KuCoin's bullet token).

    ``url(rest_url)``: the URL to POST (no body); ``decode(body, connect_id)``: the `Endpoint`, with
    ``connect_id`` (unique per session) put where the exchange wants it; raises `DecodeError` for a
    body that does not hold one (the session then retries with backoff, as for a failed connect).
    """

    url: Callable[[str], str]
    decode: Callable[[bytes, str], Endpoint]


class Codec(Protocol):
    """Bytes in, canonical events out. Pure; raises `ingest.errors.DecodeError` for bad frames."""

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]: ...

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot: ...


class SequenceRule(Protocol):
    """The exchange's book continuity rule, as two pure verdicts."""

    def first(self, snapshot_seq: int, delta: BookDelta) -> Verdict:
        """Verdict for a delta while the book is waiting for the one that bridges the snapshot.
        ``gap`` here means the snapshot is too old for the buffered stream: fetch another."""
        ...

    def next(self, last_seq: int, delta: BookDelta) -> Verdict:
        """Verdict for a delta once the book is bridged; ``last_seq`` is the last applied id."""
        ...

    def missing(self, last_seq: int, delta: BookDelta) -> tuple[int, int] | None:
        """After a ``gap`` verdict: the exchange ids (inclusive) the lost updates lie in, or None
        when the exchange's ids cannot say."""
        ...


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one connection subscribes to: native symbols, channels, and the book depth per side
    (0: the exchange's default, `ExchangeSpec.default_depth`)."""

    natives: tuple[str, ...]
    channels: tuple[Channel, ...]
    depth: int = 0


@dataclass(frozen=True)
class TradeHistory:
    """The exchange's REST trade history, read to backfill trades a feed missed (trade ids are
    integers that grow with time).

    ``page_url(rest_url, native, after, before)``: the first page to read for the trades between the
    two (exclusive); ``next_url(rest_url, native, after, before, page)``: the page to read after one
    that held ``page``, or None when the range is covered or the history has nothing more (it raises
    `RemoteError` when the history ends before the range's start: then the range is reported);
    ``decode(body, native, symbol, ts_recv)``: a page's trades, in any order (raises `DecodeError`).
    """

    page_url: Callable[[str, str, Trade, Trade], str]
    next_url: Callable[[str, str, Trade, Trade, list[Trade]], str | None]
    decode: Callable[[bytes, str, str, int], list[Trade]]
    max_pages: int = 20


@dataclass(frozen=True)
class ExchangeSpec:
    """Per-exchange facts the generic runner reads."""

    name: str
    ws_url: str
    rest_url: str
    max_streams_per_connection: int
    snapshot_source: Literal["rest", "stream"]
    native_symbol: Callable[[str], str]
    canonical_symbol: Callable[[str], str]
    connect_url: Callable[[str, Subscription], str]
    subscribe_frames: Callable[[Subscription], list[str]]
    # REST snapshot URL (base URL, native symbol); only read when snapshot_source is "rest".
    snapshot_url: Callable[[str, str], str]
    # A codec, given the native -> canonical names the settings define (it derives any others).
    new_codec: Callable[[Mapping[str, str]], Codec]
    sequence_rule: SequenceRule
    # Client-side WebSocket ping frames (``ws_ping``) every ``ping_interval`` seconds, and the silence
    # after which a connection is presumed dead.
    ping_interval: float = 10.0
    liveness_timeout: float = 30.0
    ws_ping: bool = True
    # Application-level keepalive: ``app_ping`` (a text frame) is sent after ``app_ping_interval``
    # seconds without inbound data; if nothing arrives within as long again, the connection is dead.
    app_ping: str | None = None
    app_ping_interval: float = 20.0
    # Send ``app_ping`` every ``app_ping_interval`` seconds whatever arrives (the exchange wants pings
    # on a busy connection too), instead of only after that long without inbound data.
    app_ping_periodic: bool = False
    # The exchange greets each connection (the codec decodes a `Greeting`); subscribe only after it.
    greeting: bool = False
    # A REST POST before each connect that says where to connect (None: ``connect_url``).
    endpoint_request: EndpointRequest | None = None
    # Seconds after which a session is replaced, make before break, before the exchange ends it (its
    # token or connection expires); None: sessions live until they fail. Feeds can set a shorter one.
    session_life: float | None = None
    # The exchange sends every subscribed book something at least this often (keep-alive updates
    # when nothing changes), so a book silent for longer on a live connection is dead (None: a quiet
    # book is legitimately silent, and only a feed's ``symbol_timeout`` can call it dead).
    book_keepalive: float | None = None
    # The exchange's book checksum over the book (None: it sends none).
    checksum: Callable[[OrderBook], int] | None = None
    # Levels per side when the subscription does not say; and whether the book must be truncated to
    # that depth after every message (the exchange sends no deletes for levels leaving the depth).
    default_depth: int = 0
    truncate_to_depth: bool = False
    # The depths the exchange offers (empty: any); settings are checked against it.
    book_depths: tuple[int, ...] = ()
    # Frames that resubscribe one symbol's book: for snapshot_source "stream" they bring a fresh
    # snapshot; for "rest" they revive a book stream that went silent (a REST snapshot follows).
    resubscribe_frames: Callable[[str, Subscription], list[str]] | None = None
    # Each symbol's trade ids are consecutive integers, so a jump means trades were missed.
    trade_ids_contiguous: bool = False
    # Where trades missed while disconnected (or in a jump of ids) can be fetched from.
    trade_history: TradeHistory | None = None
    # The codec for a recorded session, chosen by its connection URL (older protocol versions).
    replay_codec: Callable[[str], Codec] | None = None
