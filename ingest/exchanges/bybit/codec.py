"""Bybit v5 public (spot) codec: WebSocket frames (and REST orderbook bodies) -> canonical events.

Contract (see `ingest.exchanges.base.Codec`):

- ``decode(frame, ts_recv)`` returns:

  - an ``orderbook.{depth}.{symbol}`` push: ``type:"snapshot"`` -> one `BookSnapshot` with
    ``seq = u``; ``type:"delta"`` -> one `BookDelta` with ``first_seq = seq = u`` (a delta is one
    update id; `BybitRule` wants ``u`` to be the last one's + 1). A push with ``u == 1``, whatever its
    ``type``, is a restart of Bybit's book service and carries the whole book ("a snapshot data due
    to the restart of the service. So please overwrite your local orderbook", docs v5
    websocket/public/orderbook): it becomes a `BookSnapshot` too, so the book is overwritten, never
    patched. Sizes ``"0"`` (any spelling) become ``"0"`` (a delete). ``ts_exchange`` = ``ts``;
  - a ``publicTrade.{symbol}`` push -> one `Trade` per element: ``trade_id`` = ``i``, ``side`` = ``S``
    (the taker's) in lower case, ``ts_exchange`` = ``T`` (the fill's time, not the push's ``ts``);
  - a reply (an object with ``op``): ``subscribe``/``unsubscribe`` acks -> ``Reply(req_id, None)``, a
    refusal (``success`` false) -> ``Reply(req_id, ret_msg)``; the pong (``op`` ``"ping"`` with
    ``ret_msg`` ``"pong"`` on spot, or ``op`` ``"pong"``) -> ``Reply(req_id or "pong", None)``;
  - pushes of topics we do not normalize (``tickers``, ``kline``...) -> ``[]``.

  The symbol in a topic must be the one in its data. Anything else (bad JSON, not an object, a
  missing field, a wrong type, a value Bybit never sends; see `ingest.exchanges.bybit.messages`)
  raises `ingest.errors.DecodeError`, and nothing else, for any input.
- ``decode_snapshot(body, native, ts_recv)`` parses a REST ``/v5/market/orderbook`` body into a
  `BookSnapshot` (``seq = u``). The runner never asks for one (books come from the stream); it is
  here for tools and recordings.
- ``book_depth(native)``: the depth of the ``orderbook`` topic seen for the symbol (replays keep that
  many levels).

Pure: no I/O, no clock; ``ts_recv`` (integer ns) is an argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ingest.book.book import canonical_levels
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Decoded, Reply
from ingest.exchanges.bybit import messages as m
from ingest.exchanges.bybit.symbols import canonical_symbol
from ingest.exchanges.fields import cached_symbol, ms_time
from ingest.exchanges.fields import loads_object as _loads
from ingest.units import ms_to_ns

EXCHANGE = "bybit"
BOOK_TOPIC = "orderbook"
TRADE_TOPIC = "publicTrade"
RESTART_U = 1  # ``u`` of the whole book Bybit sends after a restart of its book service
PONG = "pong"
_OPS = frozenset({"subscribe", "unsubscribe", "ping", "pong", "auth"})
_DEPTH = re.compile(r"[1-9][0-9]{0,4}")  # ASCII digits only: str.isdigit() takes "²"


class BybitCodec:
    """Stateless apart from a cache of native -> canonical names and the depth of each book topic."""

    __slots__ = ("_depths", "_symbols")

    def __init__(self, symbols: Mapping[str, str] | None = None) -> None:
        """``symbols``: native -> canonical names known from the settings; others are derived."""
        self._symbols: dict[str, str] = dict(symbols or {})
        self._depths: dict[str, int] = {}

    def book_depth(self, native: str) -> int | None:
        return self._depths.get(native.upper())

    # -- frames ------------------------------------------------------------------------------------

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        msg = _loads(frame)
        try:
            return self._decode(msg, ts_recv)
        except DecodeError as exc:
            raise DecodeError(str(exc), frame) from None  # with an excerpt of the frame, for the log

    def _decode(self, msg: dict[str, Any], ts_recv: int) -> list[Decoded]:
        if "topic" in msg:
            topic = msg["topic"]
            if not isinstance(topic, str):
                raise DecodeError(f"field 'topic' must be a string, got {type(topic).__name__}")
            kind, _, rest = topic.partition(".")
            if kind == BOOK_TOPIC:
                return [self._book(m.parse_orderbook_push(msg), rest, ts_recv)]
            if kind == TRADE_TOPIC:
                return self._trades(m.parse_public_trade_push(msg), rest, ts_recv)
            return []  # tickers, kline, liquidation...: valid Bybit data, not ours to normalize
        if "op" in msg:
            return [self._reply(m.parse_op_response(msg))]
        raise DecodeError("neither a topic push nor a reply")

    def _reply(self, r: m.OpResponse) -> Reply:
        if r.op not in _OPS:
            raise DecodeError(f"unknown op {r.op[:40]!r}")
        if r.op in ("ping", "pong"):
            return Reply(r.req_id or PONG, None)
        if r.success is False:
            return Reply(r.req_id or "", r.ret_msg[:200] or "refused")
        return Reply(r.req_id or "", None)

    def _book(self, push: m.OrderbookPush, rest: str, ts_recv: int) -> BookSnapshot | BookDelta:
        depth, _, native = rest.partition(".")
        d = push.data
        if not _DEPTH.fullmatch(depth) or native != d.s:
            raise DecodeError(f"topic {push.topic[:60]!r} is not orderbook.<depth>.{d.s[:40]}")
        self._depths[native.upper()] = int(depth)
        symbol = self._canonical(native)
        bids, asks = canonical_levels(d.b), canonical_levels(d.a)
        if push.type == "snapshot" or d.u == RESTART_U:
            return BookSnapshot(EXCHANGE, symbol, native, bids, asks, d.u, ms_to_ns(push.ts), ts_recv)
        return BookDelta(EXCHANGE, symbol, native, bids, asks, d.u, d.u, ms_to_ns(push.ts), ts_recv)

    def _trades(self, push: m.PublicTradePush, native: str, ts_recv: int) -> list[Decoded]:
        out: list[Decoded] = []
        for t in push.data:
            if t.s != native:
                raise DecodeError(f"a trade of {t.s[:40]!r} in {push.topic[:60]!r}")
            out.append(
                Trade(
                    exchange=EXCHANGE,
                    symbol=self._canonical(native),
                    native=native,
                    trade_id=t.i,
                    price=t.p,
                    qty=t.v,
                    side="buy" if t.S == "Buy" else "sell",
                    ts_exchange=ms_to_ns(t.T),
                    ts_recv=ts_recv,
                )
            )
        return out

    # -- REST snapshot -----------------------------------------------------------------------------

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot:
        msg = _loads(body)
        try:
            resp = m.parse_rest_response(msg)
            if resp.retCode != 0:
                raise DecodeError(f"orderbook request refused: {resp.retCode}: {resp.retMsg[:200]}")
            d = m.parse_book_data(resp.result)
            if d.s.upper() != native.upper():
                raise DecodeError(f"the orderbook of {d.s[:40]!r}, not of {native[:40]!r}")
            ts = ms_time(resp.result, "ts")
            return BookSnapshot(
                EXCHANGE, self._canonical(d.s), d.s, canonical_levels(d.b), canonical_levels(d.a), d.u,
                ms_to_ns(ts), ts_recv,
            )  # fmt: skip
        except DecodeError as exc:
            raise DecodeError(str(exc), body) from None

    def _canonical(self, native: str) -> str:
        return cached_symbol(self._symbols, native, canonical_symbol)
