"""OKX v5 public codec: WebSocket frames (and REST books bodies) -> canonical events.

Contract (see `ingest.exchanges.base.Codec`):

- ``decode(frame, ts_recv)`` returns:

  - the literal text ``pong`` (the answer to our text ``ping``; not JSON, so it is recognised before
    JSON decoding) -> ``Reply("pong", None)``;
  - a ``books`` push (also ``books-l2-tbt`` / ``books50-l2-tbt``, same shape):
    ``action:"snapshot"`` -> one `BookSnapshot` per element with ``seq=seqId``;
    ``action:"update"`` -> one `BookDelta` per element with ``first_seq=prevSeqId``, ``seq=seqId``
    (``first_seq`` is the chain's link, the previous message's seqId, which `OkxRule` compares with
    the last applied one; the ids the update covers are ``prevSeqId + 1`` .. ``seqId``).
    Levels ``[px, sz, "0", numOrders]`` become ``(px, sz)``, a zero size spelled ``"0"`` (a delete).
    ``checksum`` 0 (deprecated: always 0 on live data since 2026-06-23) becomes ``None``, "not
    provided"; any other value is passed on for the book sync to verify. Sessions recorded before
    the seqId chain existed have neither id: both are ``None``. ``ts_exchange`` = ``ts`` in ns;
  - a ``trades`` (or ``trades-all``) push -> one `Trade` per element: ``trade_id`` = ``tradeId``,
    ``side`` = the taker's, ``ts_exchange`` = ``ts``. An element aggregates ``count`` fills of one
    taker order at one price: it covers ids ``tradeId - count + 1`` .. ``tradeId`` and ``qty`` is
    their total. The event keeps OKX's granularity (one event per element, id = the last fill's):
    the fills' own sizes are not sent (``trades-all`` on ``/ws/v5/business`` has them);
  - ``{"event":"subscribe"|"unsubscribe",..}`` -> ``Reply(id, None)``;
    ``{"event":"error","code":..,"msg":..}`` -> ``Reply(id, "<code>: <msg>")`` (id ``""`` if absent);
  - ``{"event":"notice","code":"64008",..}`` (disconnect for a service upgrade) -> `Reconnect`; other
    notices, ``channel-conn-count`` events and pushes of channels we do not normalize -> ``[]``.

  Anything else (bad JSON, not an object, a missing field, a wrong type, an unknown event, a
  non-spot instId, a value OKX never sends: a zero price, a non-numeric trade id, a timestamp past
  2262; see `ingest.exchanges.okx.messages`) raises `ingest.errors.DecodeError`, and nothing else,
  for any input (tests/ingest/exchanges/test_fuzz_codecs.py).
- ``decode_snapshot(body, native, ts_recv)`` parses a REST ``/api/v5/market/books`` body into a
  `BookSnapshot` (``seq=seqId`` where the row has one). The runner never asks for one (OKX books
  come from the stream); it is here for tools and recordings.

Pure: no I/O, no clock; ``ts_recv`` (integer ns) is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.book.book import canonical_levels
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Decoded, Reconnect, Reply
from ingest.exchanges.fields import cached_symbol
from ingest.exchanges.fields import loads_object as _loads
from ingest.exchanges.okx import messages as m
from ingest.exchanges.okx.symbols import canonical_symbol
from ingest.units import ms_to_ns

EXCHANGE = "okx"
PONG = "pong"
NOTICE_RECONNECT = "64008"

BOOK_CHANNELS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
TRADE_CHANNELS = frozenset({"trades", "trades-all"})
# Events that are neither replies nor data: connection counts of private channels.
_IGNORED_EVENTS = frozenset({"channel-conn-count", "channel-conn-count-error"})


class OkxCodec:
    """Stateless apart from a cache of native -> canonical symbol names."""

    __slots__ = ("_symbols",)

    def __init__(self, symbols: Mapping[str, str] | None = None) -> None:
        """``symbols``: native -> canonical names known from the settings; others are derived."""
        self._symbols: dict[str, str] = dict(symbols or {})

    # -- frames ------------------------------------------------------------------------------------

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        if frame == PONG or frame == b"pong":
            return [Reply(PONG, None)]
        msg = _loads(frame)
        try:
            return self._decode(msg, ts_recv)
        except DecodeError as exc:
            # Re-raised with an excerpt of the frame, for the log.
            raise DecodeError(str(exc), frame) from None

    def _decode(self, msg: dict[str, Any], ts_recv: int) -> list[Decoded]:
        if "event" in msg:
            return self._event(msg)
        if "arg" in msg and "data" in msg:
            channel = _channel(msg)
            if channel in BOOK_CHANNELS:
                return self._books(m.parse_books_push(msg), ts_recv)
            if channel in TRADE_CHANNELS:
                return self._trades(m.parse_trades_push(msg), ts_recv)
            return []  # tickers, books5, bbo-tbt, candles...: valid OKX data, not ours to normalize
        raise DecodeError("neither an event nor a channel push")

    def _event(self, msg: dict[str, Any]) -> list[Decoded]:
        event = msg["event"]
        if not isinstance(event, str):
            raise DecodeError(f"field 'event' must be a string, got {type(event).__name__}")
        if event in ("subscribe", "unsubscribe"):
            ack = m.parse_subscription_event(msg)
            return [Reply(ack.id or "", None)]
        if event == "error":
            err = m.parse_error_event(msg)
            return [Reply(err.id or "", f"{err.code}: {err.msg}")]
        if event == "notice":
            notice = m.parse_notice_event(msg)
            if notice.code == NOTICE_RECONNECT:
                return [Reconnect(f"okx notice {notice.code}: {notice.msg[:200]}")]
            return []
        if event in _IGNORED_EVENTS:
            return []
        raise DecodeError(f"unknown event {event[:40]!r}")

    def _books(self, push: m.BooksPush, ts_recv: int) -> list[Decoded]:
        native = push.arg.instId
        symbol = self._canonical(native)
        out: list[Decoded] = []
        for d in push.data:
            checksum = d.checksum or None  # 0: deprecated, "not provided"
            # A chain needs both ids; a session recorded before the chain existed has neither.
            chained = d.seqId is not None and d.prevSeqId is not None
            seq = d.seqId if chained else None
            if push.action == "snapshot":
                out.append(
                    BookSnapshot(
                        exchange=EXCHANGE,
                        symbol=symbol,
                        native=native,
                        bids=canonical_levels(d.bids),
                        asks=canonical_levels(d.asks),
                        seq=seq,
                        ts_exchange=ms_to_ns(d.ts),
                        ts_recv=ts_recv,
                        checksum=checksum,
                    )
                )
            else:
                out.append(
                    BookDelta(
                        exchange=EXCHANGE,
                        symbol=symbol,
                        native=native,
                        bids=canonical_levels(d.bids),
                        asks=canonical_levels(d.asks),
                        first_seq=d.prevSeqId if chained else None,
                        seq=seq,
                        ts_exchange=ms_to_ns(d.ts),
                        ts_recv=ts_recv,
                        checksum=checksum,
                    )
                )
        return out

    def _trades(self, push: m.TradesPush, ts_recv: int) -> list[Decoded]:
        return [
            Trade(
                exchange=EXCHANGE,
                symbol=self._canonical(t.instId),
                native=t.instId,
                trade_id=t.tradeId,
                price=t.px,
                qty=t.sz,
                side=t.side,
                ts_exchange=ms_to_ns(t.ts),
                ts_recv=ts_recv,
            )
            for t in push.data
        ]

    # -- REST snapshot -----------------------------------------------------------------------------

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot:
        msg = _loads(body)
        try:
            books = m.parse_rest_books(msg)
            if books.code != "0":
                raise DecodeError(f"books request refused: {books.code}: {books.msg[:200]}")
            if len(books.data) != 1:
                raise DecodeError(f"expected one book in 'data', got {len(books.data)}")
            d = books.data[0]
            native = native.upper()
            return BookSnapshot(
                exchange=EXCHANGE,
                symbol=self._canonical(native),
                native=native,
                bids=canonical_levels(d.bids),
                asks=canonical_levels(d.asks),
                seq=d.seqId,
                ts_exchange=ms_to_ns(d.ts),
                ts_recv=ts_recv,
                checksum=d.checksum or None,
            )
        except DecodeError as exc:
            raise DecodeError(str(exc), body) from None

    # -- helpers -----------------------------------------------------------------------------------

    def _canonical(self, native: str) -> str:
        return cached_symbol(self._symbols, native, canonical_symbol)


def _channel(msg: dict[str, Any]) -> str:
    arg = msg["arg"]
    channel = arg.get("channel") if isinstance(arg, dict) else None
    if not isinstance(channel, str):
        raise DecodeError("field 'arg' must be an object with a string 'channel'")
    return channel
