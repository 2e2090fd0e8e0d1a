"""Coinbase Advanced Trade codec: WebSocket frames (and REST product book bodies) -> canonical events.

Contract (see `ingest.exchanges.base.Codec`). One codec serves one session (one connection), so it
keeps that connection's ``sequence_num`` state (`SequenceCheck`) and its heartbeat counter.

- ``decode(frame, ts_recv)`` reads the envelope (`ingest.exchanges.coinbase.messages`), decodes every
  element of ``events``, and only then checks ``sequence_num`` (so a frame that does not decode never
  advances the counter: the next good one shows the hole and the books resync). Then:

  - a value ``<=`` the last one (a duplicate or a late message): ``[]``, counted in
    ``stats.duplicates``;
  - a hole that can have lost book updates (every hole under the ``"connection"`` scope, a hole in
    ``l2_data`` under ``"channel"``): ``Resync(reason)`` with no natives (every book of the session)
    first, then the message's own events (the books are waiting for their new snapshots by then, so
    its deltas are buffered and dropped, never applied over a hole);
  - ``l2_data``: ``snapshot`` -> one `BookSnapshot` per event (``seq=None``; levels sorted best
    first; ``ts_exchange`` the envelope's ``timestamp``, as a snapshot's ``event_time`` is the epoch
    placeholder); ``update`` -> one `BookDelta` per event (``seq=first_seq=None``: Coinbase has no
    per-product sequence; ``new_quantity`` is absolute, a zero spelled ``"0"``; sides ``bid`` and
    ``offer``; ``ts_exchange`` the latest ``event_time`` of its updates). Several events, of several
    products, may share a message;
  - ``market_trades``: one `Trade` per trade of every event, snapshot or update, in trade id order
    (Coinbase lists a message's trades newest first). Snapshot trades are recent trades, some
    already published by this or an earlier session: the generic arbiter drops ids it published and
    the trade continuity drops anything older than the last published trade; a snapshot on a
    reconnect thus fills the start of the hole the disconnect left. ``side``: see `taker_side`;
  - ``heartbeats``: ``[]`` (its arrival is the session's liveness); a counter that is not the last
    one + 1 is counted in ``stats.heartbeat_gaps``;
  - ``subscriptions`` (the answer to a subscribe or unsubscribe) -> ``Reply("subscriptions", None)``;
  - any other channel (``ticker``, ``candles``, ``status``...): ``[]``.

  Outside the envelope: ``{"type":"error","message":..,"reason":..}`` -> ``Reply("error",
  "<message>: <reason>")`` (the shape of Coinbase Exchange's errors, which Advanced Trade is taken to
  share; not counted in ``sequence_num``). Anything else (bad JSON, not an object, a missing field, a
  wrong type, a level side ``ask``, a zero price, a time past 2262, a non-spot product) raises
  `ingest.errors.DecodeError`, and nothing else, for any input.
- ``decode_snapshot(body, native, ts_recv)`` parses a REST ``GET /api/v3/brokerage/market/product_book``
  body (``{"pricebook":{"product_id","bids":[{"price","size"}],"asks":[..],"time"}}``) into a
  `BookSnapshot` with ``seq=None``. The runner never asks for one (books come from the stream).

Trade side. ``market_trades`` names ``BUY``/``SELL`` without saying whose side it is (protocols.md D:
"not clearly documented"). `SIDE_IS_MAKER` records the choice: the side sent is the *maker's* (the
resting order's), so the taker side published is the other one. Evidence: Coinbase Exchange documents
its trade ``side`` as the maker order side; and a real ``market_trades`` capture (ccxt issue #27606,
BTC-USD, 2025-12-31) alternates between two prices a tick apart, every trade at the higher one (the
ask) labelled ``SELL`` and every one at the lower (the bid) ``BUY``: sellers resting on the ask, buyers
on the bid. The REST public market trades are read the same way. Confirm live (protocols.md, open
point 1); flip the constant if a capture disagrees.

Pure: no I/O, no clock; ``ts_recv`` (integer ns) is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ingest.book.book import ZERO
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Level, Side, Trade
from ingest.exchanges.base import Decoded, Reply, Resync
from ingest.exchanges.coinbase import messages as m
from ingest.exchanges.coinbase.sequence import SEQUENCE_SCOPE, Scope, SequenceCheck
from ingest.exchanges.coinbase.symbols import canonical_symbol
from ingest.exchanges.fields import cached_symbol, decimal, is_zero, positive_decimal
from ingest.exchanges.fields import loads_object as _loads
from ingest.exchanges.fields import string as _str

EXCHANGE = "coinbase"
SIDE_IS_MAKER = True
"""``market_trades`` ``side`` names the maker's side (see the module docstring); False: the taker's."""

L2 = "l2_data"
TRADES = "market_trades"
HEARTBEATS = "heartbeats"
SUBSCRIPTIONS = "subscriptions"


def taker_side(side: m.TradeSide) -> Side:
    """The taker's side of a Coinbase ``BUY``/``SELL`` (`SIDE_IS_MAKER` says which side that names)."""
    buy = side == "BUY"
    return "sell" if buy == SIDE_IS_MAKER else "buy"


@dataclass(slots=True)
class CodecStats:
    duplicates: int = 0  # messages whose sequence_num was not above the last (dropped)
    holes: int = 0  # sequence_num holes seen
    resyncs: int = 0  # Resyncs emitted (holes that touched books)
    heartbeat_gaps: int = 0  # heartbeat counters that were not the last + 1


class CoinbaseCodec:
    """One connection's decoder; see the module docstring."""

    __slots__ = ("_check", "_heartbeat", "_symbols", "stats")

    def __init__(self, symbols: Mapping[str, str] | None = None, scope: Scope = SEQUENCE_SCOPE) -> None:
        """``symbols``: native -> canonical names known from the settings; others are derived.
        ``scope``: which messages share a ``sequence_num`` counter (`SEQUENCE_SCOPE` by default)."""
        self._symbols: dict[str, str] = dict(symbols or {})
        self._check = SequenceCheck(scope)
        self._heartbeat: int | None = None
        self.stats = CodecStats()

    @property
    def scope(self) -> Scope:
        return self._check.scope

    # -- frames ------------------------------------------------------------------------------------

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        msg = _loads(frame)
        try:
            return self._decode(msg, ts_recv)
        except DecodeError as exc:
            raise DecodeError(str(exc), frame) from None

    def _decode(self, msg: dict[str, Any], ts_recv: int) -> list[Decoded]:
        if "channel" not in msg and msg.get("type") == "error":
            reason = msg.get("reason")
            text = _str(msg, "message") + (f": {reason}" if isinstance(reason, str) and reason else "")
            return [Reply("error", text[:500])]
        env = m.parse_envelope(msg)
        out: list[Decoded] = []
        heartbeat: int | None = None
        if env.channel == L2:
            out.extend(self._books([m.parse_l2_event(e) for e in env.events], env.timestamp, ts_recv))
        elif env.channel == TRADES:
            out.extend(self._trades([m.parse_trades_event(e) for e in env.events], ts_recv))
        elif env.channel == HEARTBEATS:
            beats = [m.parse_heartbeat_event(e) for e in env.events]
            heartbeat = beats[-1].heartbeat_counter if beats else None
        elif env.channel == SUBSCRIPTIONS:
            out.append(Reply(SUBSCRIPTIONS, None))
        # Everything decoded: now the message counts in the sequence.
        seen = self._check.see(env.channel, env.sequence_num)
        if seen == "duplicate":
            self.stats.duplicates += 1
            return []
        if seen == "hole":
            self.stats.holes += 1
            if self._check.touches_books(env.channel) and self._check.missing is not None:
                first, last = self._check.missing
                self.stats.resyncs += 1
                where = "on the connection" if self.scope == "connection" else f"in {env.channel}"
                out.insert(0, Resync(f"sequence_num {first}..{last} missing {where}"))
        if heartbeat is not None:
            if self._heartbeat is not None and heartbeat != self._heartbeat + 1:
                self.stats.heartbeat_gaps += 1
            self._heartbeat = heartbeat
        return out

    def _books(self, events: list[m.L2Event], ts_message: int, ts_recv: int) -> list[Decoded]:
        out: list[Decoded] = []
        for ev in events:
            native = ev.product_id
            symbol = self._canonical(native)
            bids = [(u.price_level, u.new_quantity) for u in ev.updates if u.side == "bid"]
            asks = [(u.price_level, u.new_quantity) for u in ev.updates if u.side == "offer"]
            if ev.type == "snapshot":
                out.append(
                    BookSnapshot(
                        exchange=EXCHANGE,
                        symbol=symbol,
                        native=native,
                        bids=_snapshot_side(bids, descending=True),
                        asks=_snapshot_side(asks, descending=False),
                        seq=None,
                        ts_exchange=ts_message,
                        ts_recv=ts_recv,
                    )
                )
            else:
                out.append(
                    BookDelta(
                        exchange=EXCHANGE,
                        symbol=symbol,
                        native=native,
                        bids=_delta_side(bids),
                        asks=_delta_side(asks),
                        first_seq=None,
                        seq=None,
                        ts_exchange=max((u.event_time for u in ev.updates), default=ts_message),
                        ts_recv=ts_recv,
                    )
                )
        return out

    def _trades(self, events: list[m.TradesEvent], ts_recv: int) -> list[Decoded]:
        trades = [t for ev in events for t in ev.trades]
        return [self.trade(t, ts_recv) for t in in_id_order(trades)]

    def trade(self, t: m.MarketTrade, ts_recv: int) -> Trade:
        """One Coinbase trade as a canonical `Trade` (also used for REST history rows)."""
        return Trade(
            exchange=EXCHANGE,
            symbol=self._canonical(t.product_id),
            native=t.product_id,
            trade_id=t.trade_id,
            price=t.price,
            qty=t.size,
            side=taker_side(t.side),
            ts_exchange=t.time,
            ts_recv=ts_recv,
        )

    # -- REST snapshot -----------------------------------------------------------------------------

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot:
        msg = _loads(body)
        try:
            book = msg.get("pricebook")
            if not isinstance(book, dict):
                raise DecodeError("field 'pricebook' must be an object")
            product = _str(book, "product_id")
            if product != native.upper():
                raise DecodeError(f"a product book of {product[:40]!r}, asked for {native[:40]!r}")
            return BookSnapshot(
                exchange=EXCHANGE,
                symbol=self._canonical(product),
                native=product,
                bids=_snapshot_side(_rest_levels(book, "bids"), descending=True),
                asks=_snapshot_side(_rest_levels(book, "asks"), descending=False),
                seq=None,
                ts_exchange=m.rfc3339_ns(_str(book, "time")),
                ts_recv=ts_recv,
            )
        except DecodeError as exc:
            raise DecodeError(str(exc), body) from None

    # -- helpers -----------------------------------------------------------------------------------

    def _canonical(self, native: str) -> str:
        return cached_symbol(self._symbols, native, canonical_symbol)


def in_id_order(trades: Iterable[m.MarketTrade]) -> list[m.MarketTrade]:
    """Trades oldest first: by numeric id where every id is numeric, else by time (stable)."""
    listed = list(trades)
    if all(t.trade_id.isdigit() for t in listed):
        return sorted(listed, key=lambda t: int(t.trade_id))
    return sorted(listed, key=lambda t: t.time)


def _snapshot_side(levels: list[Level], descending: bool) -> tuple[Level, ...]:
    """A snapshot side best first, without empty levels."""
    kept = [(p, q) for p, q in levels if not is_zero(q)]
    return tuple(sorted(kept, key=lambda lv: float(lv[0]), reverse=descending))


def _delta_side(levels: list[Level]) -> tuple[Level, ...]:
    return tuple((p, ZERO if is_zero(q) else q) for p, q in levels)


def _rest_levels(book: dict[str, Any], key: str) -> list[Level]:
    rows = book.get(key)
    if not isinstance(rows, list):
        raise DecodeError(f"field {key!r} must be a list")
    out: list[Level] = []
    for row in rows:
        if not isinstance(row, dict):
            raise DecodeError(f"field {key!r} must hold objects")
        out.append((positive_decimal(row, "price"), decimal(row, "size")))
    return out
