"""KuCoin spot codec: WebSocket frames (and REST level2 bodies) -> canonical events.

Contract (see `ingest.exchanges.base.Codec`):

- ``decode(frame, ts_recv)`` returns:

  - ``{"id":"<connectId>","type":"welcome"}`` -> ``[Greeting()]`` (the session subscribes only after
    it); ``{"id":..,"type":"pong"}`` -> ``[]`` (every frame counts as life; the pong says nothing more);
    ``{"id":..,"type":"ack"}`` -> ``[Reply(id, None)]``;
    ``{"id":..,"type":"error","code":..,"data":..}`` -> ``[Reply(id, "<code>: <data>")]``;
  - a ``/market/level2:<symbols>`` message (subject ``trade.l2update``) -> one `BookDelta` with
    ``first_seq = sequenceStart`` and ``seq = sequenceEnd`` (`KucoinRule` judges it). Each side's
    changes are applied in their own sequence order; a change at price ``"0"`` (``["0","0","<seq>"]``,
    common in real data) is left out, its sequence still covered by the delta's range; size ``"0"``
    deletes (spelled ``"0"``). A message whose every change is such a no-op is still a delta (it
    advances the sequence). ``ts_exchange`` = ``time`` (ms) in ns, or ``ts_recv`` where absent;
  - a ``/market/match:<symbols>`` message (subject ``trade.l3match``) -> one `Trade`: ``trade_id`` is
    the match's ``sequence`` (the key the REST trade history shares; see `ingest.exchanges.kucoin.
    history`), ``side`` the taker's, ``ts_exchange`` = ``time`` (already ns);
  - messages of other topics (``/market/ticker``, ``/market/snapshot``...) -> ``[]``.

  Anything else (bad JSON, not an object, an unknown ``type``, a level2 or match message with another
  subject, a missing field, a wrong type, a value KuCoin never sends; see
  `ingest.exchanges.kucoin.messages`) raises `ingest.errors.DecodeError`, and nothing else, for any
  input.
- ``decode_snapshot(body, native, ts_recv)`` parses a REST ``/api/v1/market/orderbook/level2_100``
  (or ``level2_20``) body into a `BookSnapshot` with ``seq = sequence`` and ``ts_exchange = time``.

Pure: no I/O, no clock; ``ts_recv`` (integer ns) is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.book.book import ZERO
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Level, Trade
from ingest.exchanges.base import Decoded, Greeting, Reply
from ingest.exchanges.fields import cached_symbol, is_zero
from ingest.exchanges.fields import loads_object as _loads
from ingest.exchanges.kucoin import messages as m
from ingest.exchanges.kucoin.symbols import canonical_symbol
from ingest.units import ms_to_ns

EXCHANGE = "kucoin"
LEVEL2_TOPIC = "/market/level2:"
MATCH_TOPIC = "/market/match:"
LEVEL2_SUBJECT = "trade.l2update"
MATCH_SUBJECT = "trade.l3match"


class KucoinCodec:
    """Stateless apart from a cache of native -> canonical symbol names."""

    __slots__ = ("_symbols",)

    def __init__(self, symbols: Mapping[str, str] | None = None) -> None:
        """``symbols``: native -> canonical names known from the settings; others are derived."""
        self._symbols: dict[str, str] = dict(symbols or {})

    # -- frames ------------------------------------------------------------------------------------

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        msg = _loads(frame)
        try:
            return self._decode(msg, ts_recv)
        except DecodeError as exc:
            # Re-raised with an excerpt of the frame, for the log.
            raise DecodeError(str(exc), frame) from None

    def _decode(self, msg: dict[str, Any], ts_recv: int) -> list[Decoded]:
        kind = msg.get("type")
        if kind == "message":
            return self._message(m.parse_envelope(msg), ts_recv)
        if kind == "welcome":
            m.parse_control(msg)
            return [Greeting()]
        if kind == "pong":
            m.parse_control(msg)
            return []
        if kind == "ack":
            return [Reply(m.parse_control(msg).id, None)]
        if kind == "error":
            err = m.parse_error(msg)
            return [Reply(err.id, f"{err.code}: {err.data}")]
        if isinstance(kind, str):
            raise DecodeError(f"unknown message type {kind[:40]!r}")
        raise DecodeError("field 'type' must be a string")

    def _message(self, env: m.Envelope, ts_recv: int) -> list[Decoded]:
        if env.topic.startswith(LEVEL2_TOPIC):
            if env.subject != LEVEL2_SUBJECT:
                raise DecodeError(f"level2 message with subject {env.subject[:40]!r}")
            return [self._delta(m.parse_level2(env.data), ts_recv)]
        if env.topic.startswith(MATCH_TOPIC):
            if env.subject != MATCH_SUBJECT:
                raise DecodeError(f"match message with subject {env.subject[:40]!r}")
            return [self._trade(m.parse_match(env.data), ts_recv)]
        return []  # tickers, snapshots, candles...: valid KuCoin data, not ours to normalize

    def _delta(self, u: m.Level2, ts_recv: int) -> BookDelta:
        return BookDelta(
            exchange=EXCHANGE,
            symbol=self._canonical(u.symbol),
            native=u.symbol,
            bids=_levels(u.bids),
            asks=_levels(u.asks),
            first_seq=u.sequenceStart,
            seq=u.sequenceEnd,
            ts_exchange=ts_recv if u.time is None else ms_to_ns(u.time),
            ts_recv=ts_recv,
        )

    def _trade(self, t: m.Match, ts_recv: int) -> Trade:
        return Trade(
            exchange=EXCHANGE,
            symbol=self._canonical(t.symbol),
            native=t.symbol,
            trade_id=str(t.sequence),
            price=t.price,
            qty=t.size,
            side=t.side,
            ts_exchange=t.time,
            ts_recv=ts_recv,
        )

    # -- REST snapshot -----------------------------------------------------------------------------

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot:
        msg = _loads(body)
        try:
            data = m.parse_response(msg, "level2 snapshot")
            book = m.parse_rest_level2(data)
            native = native.upper()
            return BookSnapshot(
                exchange=EXCHANGE,
                symbol=self._canonical(native),
                native=native,
                bids=tuple((p, ZERO if is_zero(s) else s) for p, s in book.bids),
                asks=tuple((p, ZERO if is_zero(s) else s) for p, s in book.asks),
                seq=book.sequence,
                ts_exchange=ms_to_ns(book.time),
                ts_recv=ts_recv,
            )
        except DecodeError as exc:
            raise DecodeError(str(exc), body) from None

    # -- helpers -----------------------------------------------------------------------------------

    def _canonical(self, native: str) -> str:
        return cached_symbol(self._symbols, native, canonical_symbol)


def _levels(changes: tuple[m.Change, ...]) -> tuple[Level, ...]:
    """The changes of one side in sequence order (stable), without the price-"0" no-ops."""
    ordered = sorted(changes, key=lambda c: c.sequence)
    return tuple((c.price, ZERO if is_zero(c.size) else c.size) for c in ordered if not is_zero(c.price))
