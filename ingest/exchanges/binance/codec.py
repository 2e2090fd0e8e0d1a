"""Binance Spot codec: WebSocket frames and REST depth bodies -> canonical events.

Contract (see `ingest.exchanges.base.Codec`):

- ``decode(frame, ts_recv)`` accepts a combined-stream frame ``{"stream": ..., "data": ...}`` or a raw
  payload, and returns:

  - ``depthUpdate`` -> one `BookDelta` (``first_seq=U``, ``seq=u``, zero quantities spelled ``"0"``,
    ``ts_exchange`` = ``E`` in ns);
  - ``trade`` / ``aggTrade`` -> one `Trade` (``side`` is the taker's: ``"sell"`` when ``m`` is true,
    because ``m`` means the buyer was the maker; ``trade_id`` is ``t`` or ``a``; ``ts_exchange`` = ``T``);
  - ``serverShutdown`` -> `Reconnect`;
  - ``{"result": ..., "id": ...}`` -> ``Reply(id, None)``;
    ``{"code": .., "msg": ..}`` -> ``Reply(id or "", msg)``;
  - streams we do not turn into events (bookTicker, kline, tickers, partial depth) -> ``[]``.

  Anything else (bad JSON, not an object, a missing field, a wrong type, an unknown event type, a
  symbol with no known quote asset, a value Binance never sends: a zero price, a negative id or time;
  see `ingest.exchanges.binance.messages`) raises `ingest.errors.DecodeError`, and nothing else, for
  any input (tests/ingest/exchanges/test_fuzz_codecs.py).
- ``decode_snapshot(body, native, ts_recv)`` parses a REST ``/api/v3/depth`` body into a
  `BookSnapshot` with ``seq=lastUpdateId`` and ``ts_exchange=ts_recv`` (the body has no time).

Speed: a combined-stream depth update or trade (nearly every frame) is decoded by msgspec into the
typed payloads of `ingest.exchanges.binance.payloads` (types and ranges checked in C) and made into
its event with the rest of the checks (`_typed_depth_update`, `_typed_trade`); every other frame,
and one those checks do not accept, is decoded by orjson and read the same way from the dict
(`_fast_depth_update`, `_fast_trade`), and what those do not accept goes through the typed structs of
`ingest.exchanges.binance.messages`, which accept the same inputs and say precisely what is wrong.
So the fast paths change the cost, never the result.

Pure: no I/O, no clock; ``ts_recv`` (integer ns) is an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ingest.book.book import ZERO, canonical_levels
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Level, Side, Trade
from ingest.exchanges.base import Decoded, Reconnect, Reply
from ingest.exchanges.binance import messages as m
from ingest.exchanges.binance.payloads import DepthUpdate, TradePayload
from ingest.exchanges.binance.payloads import decode_combined as _decode_combined
from ingest.exchanges.binance.symbols import canonical_symbol
from ingest.exchanges.fields import INT64_MAX, MAX_MS, cached_symbol, plain_decimal
from ingest.exchanges.fields import loads_object as _loads
from ingest.units import NS_PER_MS, ms_to_ns

EXCHANGE = "binance"

# Event types (``e``) that are valid Binance market data but not ours to normalize.
_IGNORED_EVENTS = frozenset(
    {"kline", "24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker", "avgPrice", "bookTicker"}
)
# Streams whose payloads carry no ``e`` (spot bookTicker, partial depth), by the part after the symbol.
_IGNORED_STREAM_KINDS = ("bookTicker", "depth5", "depth10", "depth20")
# The same two payloads when they arrive raw (no combined-stream wrapper), recognized by their keys.
_BOOK_TICKER_KEYS = frozenset({"u", "s", "b", "B", "a", "A"})
_PARTIAL_DEPTH_KEYS = frozenset({"lastUpdateId", "bids", "asks"})


class BinanceCodec:
    """Stateless apart from a cache of native -> canonical symbol names."""

    __slots__ = ("_handlers", "_symbols")

    def __init__(self, symbols: Mapping[str, str] | None = None) -> None:
        """``symbols``: native -> canonical names known from the settings; others are derived."""
        self._symbols: dict[str, str] = dict(symbols or {})
        self._handlers: dict[str, Callable[[dict[str, Any], int], list[Decoded]]] = {
            "depthUpdate": self._depth_update,
            "trade": self._trade,
            "aggTrade": self._agg_trade,
            "serverShutdown": self._server_shutdown,
        }

    # -- frames ------------------------------------------------------------------------------------

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        # Nearly every frame: a well-formed depth update or trade in a combined stream, decoded into
        # typed objects (`payloads`) and made into its event here; the rest, and what those checks
        # refuse, go the checked way below, which gives the same event or says what is wrong.
        try:
            typed = _decode_combined(frame)
        except (ValueError, TypeError, RecursionError):  # msgspec's DecodeError, a str frame's surrogate, nesting
            typed = None
        if typed is not None:
            data = typed.data
            fast: BookDelta | Trade | None = None
            if type(data) is DepthUpdate:
                fast = self._typed_depth_update(data, ts_recv)
            elif type(data) is TradePayload:
                fast = self._typed_trade(data, ts_recv)
            if fast is not None:
                return [fast]
        try:
            msg = _json(frame)
        except (orjson.JSONDecodeError, TypeError):
            msg = None
        if type(msg) is not dict:
            msg = _loads(frame)  # raises the DecodeError that says what is wrong
        try:
            return self._decode(msg, ts_recv)
        except DecodeError as exc:
            # Re-raised with an excerpt of the frame, for the log.
            raise DecodeError(str(exc), frame) from None

    def _decode(self, msg: dict[str, Any], ts_recv: int) -> list[Decoded]:
        stream: str | None = None
        if "stream" in msg and "data" in msg:
            named, payload = msg["stream"], msg["data"]
            if not isinstance(named, str):  # checked before it is typed: compiled code checks the type on assignment
                raise DecodeError("field 'stream' must be a string")
            stream = named
            if not isinstance(payload, dict):
                raise DecodeError("field 'data' must be an object")
        elif "result" in msg:
            reply = m.parse_result(msg)
            return [Reply(_request_id(reply.id), None)]
        elif "code" in msg and "msg" in msg:
            error = m.parse_error(msg)
            return [Reply(_request_id(error.id), error.msg)]
        else:
            payload = msg
        kind = payload.get("e")
        if kind is None:
            if _ignored_without_event_type(stream, payload):
                return []
            raise DecodeError("payload has no event type 'e'")
        if not isinstance(kind, str):
            raise DecodeError(f"field 'e' must be a string, got {type(kind).__name__}")
        handler = self._handlers.get(kind)
        if handler is not None:
            return handler(payload, ts_recv)
        if kind in _IGNORED_EVENTS:
            return []
        raise DecodeError(f"unknown event type {kind[:40]!r}")

    def _depth_update(self, payload: dict[str, Any], ts_recv: int) -> list[Decoded]:
        fast = self._fast_depth_update(payload, ts_recv)
        if fast is not None:
            return [fast]
        d = m.parse_depth_update(payload)
        return [
            BookDelta(
                exchange=EXCHANGE,
                symbol=self._canonical(d.s),
                native=d.s,
                bids=canonical_levels(d.b),
                asks=canonical_levels(d.a),
                first_seq=d.U,
                seq=d.u,
                ts_exchange=ms_to_ns(d.E),
                ts_recv=ts_recv,
            )
        ]

    def _typed_depth_update(self, d: DepthUpdate, ts_recv: int) -> BookDelta | None:
        """`_fast_depth_update` of an update whose types `payloads` checked."""
        b, a = d.b, d.a
        bids = () if not b else _typed_levels(b)
        asks = () if not a else _typed_levels(a)
        first, last = d.U, d.u
        if bids is None or asks is None or first > last:
            return None
        native = d.s
        symbol = self._symbols.get(native) or self._canonical(native)
        return BookDelta(EXCHANGE, symbol, native, bids, asks, first, last, d.E * NS_PER_MS, ts_recv)

    def _typed_trade(self, t: TradePayload, ts_recv: int) -> Trade | None:
        """`_fast_trade` of a trade whose types `payloads` checked."""
        price, qty = t.p, t.q
        if not _trade_values(price, qty):
            return None
        native = t.s
        symbol = self._symbols.get(native) or self._canonical(native)
        side: Side = "sell" if t.m else "buy"  # m: the buyer was the maker, so the taker sold
        return Trade(EXCHANGE, symbol, native, str(t.t), price, qty, side, t.T * NS_PER_MS, ts_recv)

    def _fast_depth_update(self, p: dict[str, Any], ts_recv: int) -> BookDelta | None:
        """The `BookDelta` of a well-formed update (the checks of `m.parse_depth_update`, inlined),
        or None for the checked path to say what is wrong."""
        try:
            native, first, last, ms, b, a = p["s"], p["U"], p["u"], p["E"], p["b"], p["a"]
        except KeyError:
            return None
        # One side of an update is often empty (half of them in the bench's mix).
        bids = () if b == [] else _fast_levels(b)
        asks = () if a == [] else _fast_levels(a)
        if bids is None or asks is None or type(native) is not str:
            return None
        if not (type(first) is int and type(last) is int and 0 <= first <= last <= INT64_MAX):
            return None
        if not (type(ms) is int and 0 <= ms <= MAX_MS):
            return None
        symbol = self._symbols.get(native) or self._canonical(native)
        return BookDelta(EXCHANGE, symbol, native, bids, asks, first, last, ms * NS_PER_MS, ts_recv)

    def _fast_trade(self, p: dict[str, Any], id_key: str, ts_recv: int) -> Trade | None:
        """The `Trade` of a well-formed ``trade``/``aggTrade`` (``id_key`` ``t``/``a``; the checks of
        `m.parse_trade`/`m.parse_agg_trade`, inlined), or None for the checked path."""
        try:
            native, tid, price, qty, ms, maker, sent = p["s"], p[id_key], p["p"], p["q"], p["T"], p["m"], p["E"]
        except KeyError:
            return None
        if not (type(native) is str and type(maker) is bool and type(tid) is int and 0 <= tid <= INT64_MAX):
            return None
        if not (type(ms) is int and 0 <= ms <= MAX_MS and type(sent) is int and 0 <= sent <= MAX_MS):
            return None
        if not (type(price) is str and type(qty) is str and _trade_values(price, qty)):
            return None
        symbol = self._symbols.get(native) or self._canonical(native)
        side: Side = "sell" if maker else "buy"  # m: the buyer was the maker, so the taker sold
        return Trade(EXCHANGE, symbol, native, str(tid), price, qty, side, ms * NS_PER_MS, ts_recv)

    def _trade(self, payload: dict[str, Any], ts_recv: int) -> list[Decoded]:
        fast = self._fast_trade(payload, "t", ts_recv)
        if fast is not None:
            return [fast]
        t = m.parse_trade(payload)
        return [self._trade_event(t.s, str(t.t), t.p, t.q, t.m, t.T, ts_recv)]

    def _agg_trade(self, payload: dict[str, Any], ts_recv: int) -> list[Decoded]:
        if "f" in payload and "l" in payload and _natural(payload["f"]) and _natural(payload["l"]):
            fast = self._fast_trade(payload, "a", ts_recv)
            if fast is not None:
                return [fast]
        t = m.parse_agg_trade(payload)
        return [self._trade_event(t.s, str(t.a), t.p, t.q, t.m, t.T, ts_recv)]

    def _trade_event(
        self, native: str, trade_id: str, price: str, qty: str, buyer_maker: bool, ms: int, ts_recv: int
    ) -> Trade:
        return Trade(
            exchange=EXCHANGE,
            symbol=self._canonical(native),
            native=native,
            trade_id=trade_id,
            price=price,
            qty=qty,
            # The buyer was the maker, so the taker (whose side a trade reports) sold.
            side="sell" if buyer_maker else "buy",
            ts_exchange=ms_to_ns(ms),
            ts_recv=ts_recv,
        )

    def _server_shutdown(self, payload: dict[str, Any], ts_recv: int) -> list[Decoded]:
        m.parse_server_shutdown(payload)
        return [Reconnect("binance serverShutdown")]

    # -- REST snapshot -----------------------------------------------------------------------------

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot:
        msg = _loads(body)
        try:
            if "code" in msg and "msg" in msg:
                error = m.parse_error(msg)
                raise DecodeError(f"depth request refused: {error.code}: {error.msg}")
            snap = m.parse_depth_snapshot(msg)
            native = native.upper()
            return BookSnapshot(
                exchange=EXCHANGE,
                symbol=self._canonical(native),
                native=native,
                bids=canonical_levels(snap.bids),
                asks=canonical_levels(snap.asks),
                seq=snap.lastUpdateId,
                ts_exchange=ts_recv,
                ts_recv=ts_recv,
            )
        except DecodeError as exc:
            raise DecodeError(str(exc), body) from None

    # -- helpers -----------------------------------------------------------------------------------

    def _canonical(self, native: str) -> str:
        return cached_symbol(self._symbols, native, canonical_symbol)


_json = orjson.loads


def _level_values(price: str, qty: str) -> bool:
    """A level's price and quantity are plain decimals and the price is not zero (the quantity is, to
    delete the level)."""
    return plain_decimal(price) and plain_decimal(qty) and bool(price.strip("0."))


def _trade_values(price: str, qty: str) -> bool:
    """A trade's price and quantity are plain decimals and neither is zero."""
    return _level_values(price, qty) and bool(qty.strip("0."))


def _natural(value: Any) -> bool:
    return type(value) is int and 0 <= value <= INT64_MAX


def _fast_levels(levels: Any) -> tuple[Level, ...] | None:
    """``[[price, qty], ...]`` as event levels (a zero quantity spelled ``"0"``) if every level passes
    `m.parse_depth_update`'s checks, else None."""
    if type(levels) is not list:
        return None
    out: list[Level] = []
    for level in levels:
        if type(level) is not list or len(level) < 2:
            return None
        price, qty = level[0], level[1]
        if type(price) is not str or type(qty) is not str or not _level_values(price, qty):
            return None
        out.append((price, qty if qty.strip("0.") else ZERO))
    return tuple(out)


def _typed_levels(levels: list[tuple[str, str]]) -> tuple[Level, ...] | None:
    """`_fast_levels` of levels whose shape `payloads` checked: the tuples as they came, a zero
    quantity spelled ``"0"``, or None if a value is not a plain decimal or a price is zero."""
    out: list[Level] = []
    for level in levels:
        price, qty = level
        if not _level_values(price, qty):
            return None
        out.append(level if qty.strip("0.") else (price, ZERO))
    return tuple(out)


def _request_id(value: int | str | None) -> str:
    return "" if value is None else str(value)


def _ignored_without_event_type(stream: str | None, payload: dict[str, Any]) -> bool:
    if stream is not None:
        kind = stream.split("@", 2)[1] if "@" in stream else ""
        return kind in _IGNORED_STREAM_KINDS
    keys = payload.keys()
    return keys >= _BOOK_TICKER_KEYS or keys >= _PARTIAL_DEPTH_KEYS
