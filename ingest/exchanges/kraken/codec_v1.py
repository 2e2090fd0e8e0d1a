"""Kraken Spot WebSocket v1 codec, for recorded sessions (``wss://ws.kraken.com``, no ``/v2``).

The live adapter speaks v2; v1 has the same book semantics and checksum, and the real recordings in
``../shared/recordings/cryptofeed/KRAKEN.*`` are v1 (protocols.md B, "v1").

Contract (see `ingest.exchanges.base.Codec`): ``decode(frame, ts_recv)`` returns

- a book snapshot ``[chanId, {"as": [...], "bs": [...]}, "book-N", pair]`` -> one `BookSnapshot`
  (``seq=None``, no checksum: v1 sends none on snapshots; ``ts_exchange`` the newest level time, or
  ``ts_recv`` for an empty book);
- a book update ``[chanId, {"a": [...]}, {"b": [...], "c": "<crc>"}, "book-N", pair]`` (or one dict
  with ``a`` and/or ``b``) -> one `BookDelta` (``first_seq=seq=None``, ``checksum=int(c)`` when
  present, a zero volume spelled ``"0"``, levels in frame order, republished ``"r"`` levels applied
  like any other; ``ts_exchange`` the newest level time);
- a trade frame ``[chanId, [[price, volume, time, side, orderType, misc], ...], "trade", pair]`` ->
  one `Trade` per element. v1 has no trade ids: ``trade_id`` is ``"<time>-<i>"``, the trade's time
  text and its position in the frame, which is deterministic and unique within a recording as long
  as Kraken never sends two frames with a trade at the same time for one pair;
- ``subscriptionStatus`` -> ``Reply(reqid, None)`` (``Reply(reqid, errorMessage)`` when its status
  is ``error``); ``pong`` -> ``Reply``; ``error`` -> ``Reply`` with the error;
- ``systemStatus``, ``heartbeat``, ``ticker``, ``spread`` and ``ohlc-*`` frames -> ``[]``.

Anything else (including a value Kraken never sends, see `ingest.exchanges.kraken.messages`) raises
`ingest.errors.DecodeError`, and nothing else, for any input. Values stay the fixed-decimal strings v1 sends
(they are already at the pair's precision, as the checksum needs). Subscriptions are remembered:
``channelID -> (channelName, pair)``, and the book depth per pair (from ``book-1000``), which
``book_depth`` tells the replay so that it truncates each book to the depth it was recorded at.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ingest.book.book import canonical_levels
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Decoded, Reply
from ingest.exchanges.fields import cached_symbol
from ingest.exchanges.kraken import messages as m
from ingest.exchanges.kraken.codec import EXCHANGE
from ingest.exchanges.kraken.symbols import canonical_symbol

_DEPTH = re.compile(r"[0-9]{1,9}")
_IGNORED_EVENTS = frozenset({"systemStatus", "heartbeat"})
_REPLY_EVENTS = frozenset({"subscriptionStatus", "pong", "error"})


class KrakenV1Codec:
    """State: native -> canonical names, the subscriptions (channel id -> (name, pair)) and the
    book depth per pair."""

    __slots__ = ("_depths", "_symbols", "channels")

    def __init__(self, symbols: Mapping[str, str] | None = None) -> None:
        self._symbols: dict[str, str] = dict(symbols or {})
        self.channels: dict[int, tuple[str, str]] = {}
        self._depths: dict[str, int] = {}

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        try:
            msg = orjson.loads(frame)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise DecodeError(f"bad JSON ({exc})", frame if isinstance(frame, bytes | str) else b"") from None
        try:
            if isinstance(msg, dict):
                return self._event(msg)
            if isinstance(msg, list):
                return self._channel(msg, ts_recv)
            raise DecodeError(f"expected a JSON object or array, got {type(msg).__name__}")
        except DecodeError as exc:
            raise DecodeError(str(exc), frame) from None

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot:
        raise DecodeError("Kraken book snapshots arrive in the WebSocket stream, not over REST")

    def book_depth(self, native: str) -> int | None:
        """Levels per side of the book subscription of this pair (``book-1000`` -> 1000)."""
        return self._depths.get(native)

    # -- events ------------------------------------------------------------------------------------

    def _event(self, msg: dict[str, Any]) -> list[Decoded]:
        ev = m.parse_event_v1(msg)
        if ev.event in _IGNORED_EVENTS:
            return []
        if ev.event not in _REPLY_EVENTS:
            raise DecodeError(f"unknown event {ev.event[:40]!r}")
        request_id = "" if ev.reqid is None else str(ev.reqid)
        if ev.event == "error" or ev.status == "error":
            return [Reply(request_id, ev.errorMessage or "request refused")]
        if ev.event == "subscriptionStatus" and ev.status == "subscribed":
            if ev.channelID is None or ev.channelName is None or ev.pair is None:
                raise DecodeError("a subscriptionStatus without channelID, channelName or pair")
            self.channels[ev.channelID] = (ev.channelName, ev.pair)
            self._note_depth(ev.channelName, ev.pair)
        return [Reply(request_id, None)]

    # -- channel data ------------------------------------------------------------------------------

    def _channel(self, msg: list[Any], ts_recv: int) -> list[Decoded]:
        if len(msg) < 4:
            raise DecodeError("a channel frame must be [channelID, data.., channelName, pair]")
        chan_id, name, pair, payloads = msg[0], msg[-2], msg[-1], msg[1:-2]
        if type(chan_id) is not int or not isinstance(name, str) or not isinstance(pair, str):
            raise DecodeError("a channel frame must start with an integer id and end with two strings")
        if name.startswith("book-"):
            self._note_depth(name, pair)
            first = payloads[0]
            if isinstance(first, dict) and ("as" in first or "bs" in first):
                if len(payloads) != 1:
                    raise DecodeError("a book snapshot frame holds one dict")
                return [self._snapshot(pair, m.parse_book_snapshot_v1(first), ts_recv)]
            return [self._update(pair, m.parse_book_update_v1(payloads), ts_recv)]
        if name == "trade":
            if len(payloads) != 1:
                raise DecodeError("a trade frame holds one list of trades")
            return self._trades(pair, m.parse_trades_v1(payloads[0]), ts_recv)
        if name in ("ticker", "spread") or name.startswith("ohlc-"):
            return []
        raise DecodeError(f"unknown channel {name[:40]!r}")

    def _snapshot(self, pair: str, snap: m.BookSnapshotV1, ts_recv: int) -> BookSnapshot:
        levels = snap.bs + snap.as_
        ts = max((seconds_to_ns(lv.timestamp) for lv in levels), default=ts_recv)
        return BookSnapshot(
            exchange=EXCHANGE,
            symbol=self._canonical(pair),
            native=pair,
            bids=tuple((lv.price, lv.volume) for lv in snap.bs),
            asks=tuple((lv.price, lv.volume) for lv in snap.as_),
            seq=None,
            ts_exchange=ts,
            ts_recv=ts_recv,
        )

    def _update(self, pair: str, update: m.BookUpdateV1, ts_recv: int) -> BookDelta:
        levels = update.b + update.a
        return BookDelta(
            exchange=EXCHANGE,
            symbol=self._canonical(pair),
            native=pair,
            bids=canonical_levels((lv.price, lv.volume) for lv in update.b),
            asks=canonical_levels((lv.price, lv.volume) for lv in update.a),
            first_seq=None,
            seq=None,
            ts_exchange=max(seconds_to_ns(lv.timestamp) for lv in levels) if levels else ts_recv,
            ts_recv=ts_recv,
            checksum=None if update.c is None else int(update.c),
        )

    def _trades(self, pair: str, trades: tuple[m.TradeV1, ...], ts_recv: int) -> list[Decoded]:
        symbol = self._canonical(pair)
        return [
            Trade(
                exchange=EXCHANGE,
                symbol=symbol,
                native=pair,
                trade_id=f"{t.time}-{i}",
                price=t.price,
                qty=t.volume,
                side="buy" if t.side == "b" else "sell",
                ts_exchange=seconds_to_ns(t.time),
                ts_recv=ts_recv,
            )
            for i, t in enumerate(trades)
        ]

    # -- helpers -----------------------------------------------------------------------------------

    def _note_depth(self, channel_name: str, pair: str) -> None:
        depth = channel_name.partition("-")[2]
        if channel_name.startswith("book-") and _DEPTH.fullmatch(depth):
            self._depths[pair] = int(depth)

    def _canonical(self, native: str) -> str:
        return cached_symbol(self._symbols, native, canonical_symbol)


def seconds_to_ns(text: str) -> int:
    """``"1618678142.557535"`` (a decimal string, checked by the parser) -> integer ns, exactly;
    digits past the nanosecond are truncated."""
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000_000 + int(fraction[:9].ljust(9, "0"))
