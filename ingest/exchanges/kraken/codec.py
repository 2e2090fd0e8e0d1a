"""Kraken Spot WebSocket v2 codec: frames -> canonical events.

Contract (see `ingest.exchanges.base.Codec`):

- ``decode(frame, ts_recv)`` returns:

  - ``book`` snapshot -> one `BookSnapshot` (``seq=None``, ``checksum``); update -> one `BookDelta`
    (``first_seq=seq=None``, ``checksum``, a zero quantity spelled ``"0"``; entries in the order sent,
    so a price that appears twice ends at its last quantity). ``ts_exchange`` is the message's
    ``timestamp`` (``ts_recv`` for a snapshot without one);
  - ``trade`` (snapshot or update) -> one `Trade` per element (``side`` is the taker's, ``trade_id``
    the decimal text of Kraken's integer id, ``ts_exchange`` its ``timestamp``);
  - subscribe/unsubscribe acknowledgements and ``pong`` -> ``Reply(req_id, None)``; a refused
    request (``"success": false``) -> ``Reply(req_id, error)`` (``req_id`` ``""`` when absent);
  - ``heartbeat``, ``status``, ``instrument`` and the channels we do not normalise (``ticker``,
    ``ohlc``, ``level3``) -> ``[]``. ``instrument`` updates the codec's precision table.

  Anything else (bad JSON, not an object, a missing field, a wrong type, an unknown channel, a
  number with more decimals than its instrument's precision, a value Kraken never sends: a zero price,
  an absurdly large or long number, a time before 1970, a lone surrogate; see
  `ingest.exchanges.kraken.messages`) raises `ingest.errors.DecodeError`, and nothing else, for any
  input (tests/ingest/exchanges/test_fuzz_codecs.py).
- ``decode_snapshot`` is never used (Kraken's snapshots arrive in the stream): `DecodeError`.

Precision (protocols.md B, "Precision trap"): v2 sends prices and quantities as JSON numbers, and the
book checksum is taken over their text at the instrument's full precision (``0.10000000``, not
``0.1``). Frames are decoded with ``parse_float=Decimal``, so the literal digits survive, and every
value is written as ``format(value, ".{p}f")`` with ``p`` the pair's ``price_precision`` or
``qty_precision`` from the ``instrument`` channel (never ``str(Decimal)``, which may give
``"4.8E-7"``). For a pair the instrument channel has not described, the precision is inferred from
its book snapshot (the most decimals any price, or any quantity, of the snapshot has) and kept for
its updates and trades; a value with more decimals than that widens it. Prices and quantities thus
reach the book as the exact strings the checksum needs, and no float is ever involved.

Pure: no I/O, no clock; ``ts_recv`` (integer ns) is an argument.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from ingest.book.book import ZERO
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Level, Trade
from ingest.exchanges.base import Decoded, Reply
from ingest.exchanges.fields import INT64_MAX, cached_symbol
from ingest.exchanges.kraken import messages as m
from ingest.exchanges.kraken.symbols import canonical_symbol

EXCHANGE = "kraken"

# Valid Kraken v2 channels that are not ours to normalise.
_IGNORED_CHANNELS = frozenset({"ticker", "ohlc", "level3"})
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH_DAY = date(1970, 1, 1).toordinal()

Precision = tuple[int, int]  # (price_precision, qty_precision)


class KrakenCodec:
    """State: the native -> canonical names, the precision of each pair (from the instrument
    channel, else inferred from its book snapshot) and the book depth each subscription was
    acknowledged with."""

    __slots__ = ("_depths", "_handlers", "_inferred", "_instrument", "_symbols")

    def __init__(self, symbols: Mapping[str, str] | None = None) -> None:
        """``symbols``: native -> canonical names known from the settings; others are derived."""
        self._symbols: dict[str, str] = dict(symbols or {})
        self._instrument: dict[str, Precision] = {}
        self._inferred: dict[str, Precision] = {}
        self._depths: dict[str, int] = {}
        self._handlers: dict[str, Callable[[m.Envelope, int], list[Decoded]]] = {
            "book": self._book,
            "trade": self._trade,
            "instrument": self._instrument_message,
            "heartbeat": _nothing,
            "status": _nothing,
        }

    # -- frames ------------------------------------------------------------------------------------

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]:
        msg = _loads(frame)
        try:
            return self._decode(msg, ts_recv)
        except DecodeError as exc:
            # Re-raised with an excerpt of the frame, for the log.
            raise DecodeError(str(exc), frame) from None

    def _decode(self, msg: dict[str, Any], ts_recv: int) -> list[Decoded]:
        if "channel" in msg:
            envelope = m.parse_envelope(msg)
            handler = self._handlers.get(envelope.channel)
            if handler is not None:
                return handler(envelope, ts_recv)
            if envelope.channel in _IGNORED_CHANNELS:
                return []
            raise DecodeError(f"unknown channel {envelope.channel[:40]!r}")
        if "method" in msg:
            response = m.parse_method_response(msg)
            result = response.result or {}
            if response.success and result.get("channel") == "book" and response.method == "subscribe":
                symbol, depth = result.get("symbol"), result.get("depth")
                if isinstance(symbol, str) and type(depth) is int:
                    self._depths[symbol] = depth
            request_id = "" if response.req_id is None else str(response.req_id)
            return [Reply(request_id, None if response.success else response.error)]
        raise DecodeError("neither a channel message nor a method response")

    def _book(self, envelope: m.Envelope, ts_recv: int) -> list[Decoded]:
        if envelope.type not in ("snapshot", "update"):
            raise DecodeError(f"book message type must be 'snapshot' or 'update', got {envelope.type!r}")
        if not isinstance(envelope.data, list):
            raise DecodeError("field 'data' of a book message must be a list")
        out: list[Decoded] = []
        for element in envelope.data:
            book = m.parse_book(element)
            native = book.symbol
            symbol = self._canonical(native)
            ts = ts_recv if book.timestamp is None else rfc3339_to_ns(book.timestamp)
            if envelope.type == "snapshot":
                if native not in self._instrument:
                    self._inferred[native] = _infer(book)
                bids, asks = self._levels(native, book.bids, False), self._levels(native, book.asks, False)
                out.append(BookSnapshot(EXCHANGE, symbol, native, bids, asks, None, ts, ts_recv, book.checksum))
            else:
                if book.timestamp is None:
                    raise DecodeError("missing field 'timestamp'")
                bids, asks = self._levels(native, book.bids, True), self._levels(native, book.asks, True)
                out.append(BookDelta(EXCHANGE, symbol, native, bids, asks, None, None, ts, ts_recv, book.checksum))
        return out

    def _trade(self, envelope: m.Envelope, ts_recv: int) -> list[Decoded]:
        if not isinstance(envelope.data, list):
            raise DecodeError("field 'data' of a trade message must be a list")
        out: list[Decoded] = []
        for element in envelope.data:
            t = m.parse_trade(element)
            price_p, qty_p = self._precision(t.symbol)
            out.append(
                Trade(
                    exchange=EXCHANGE,
                    symbol=self._canonical(t.symbol),
                    native=t.symbol,
                    trade_id=str(t.trade_id),
                    price=self._format(t.symbol, t.price, price_p, 0),
                    qty=self._format(t.symbol, t.qty, qty_p, 1),
                    side=t.side,
                    ts_exchange=rfc3339_to_ns(t.timestamp),
                    ts_recv=ts_recv,
                )
            )
        return out

    def _instrument_message(self, envelope: m.Envelope, ts_recv: int) -> list[Decoded]:
        for pair in m.parse_instrument(envelope.data).pairs:
            self._instrument[pair.symbol] = (pair.price_precision, pair.qty_precision)
            self._inferred.pop(pair.symbol, None)
        return []

    # -- precision -----------------------------------------------------------------------------------

    def precision(self, native: str) -> Precision | None:
        """(price, qty) decimals used for a pair: the instrument channel's, else the inferred ones."""
        return self._instrument.get(native) or self._inferred.get(native)

    def book_depth(self, native: str) -> int | None:
        """The depth a book subscription of this pair was acknowledged with (None: not seen)."""
        return self._depths.get(native)

    def _precision(self, native: str) -> tuple[int | None, int | None]:
        known = self.precision(native)
        return (None, None) if known is None else known

    def _levels(self, native: str, entries: tuple[m.Entry, ...], is_delta: bool) -> tuple[Level, ...]:
        price_p, qty_p = self._precision(native)
        out: list[Level] = []
        for price, qty in entries:
            price_text = self._format(native, price, price_p, 0)
            if is_delta and qty.is_zero():
                out.append((price_text, ZERO))
            else:
                out.append((price_text, self._format(native, qty, qty_p, 1)))
        return tuple(out)

    def _format(self, native: str, value: Decimal, places: int | None, field: int) -> str:
        """``value`` with exactly ``places`` decimals (its own digits when None). More decimals than
        ``places`` is an error for an instrument's precision, and widens an inferred one."""
        if places is None:
            return format(value, "f")
        own = _places(value.normalize())  # trailing zeros past the precision are the same number
        if own > places:
            inferred = self._inferred.get(native)
            if inferred is None:
                raise DecodeError(f"{value} has more decimals than {native}'s precision ({places})")
            self._inferred[native] = (own, inferred[1]) if field == 0 else (inferred[0], own)
            places = own
        return format(value, f".{places}f")

    # -- helpers -----------------------------------------------------------------------------------

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot:
        raise DecodeError("Kraken book snapshots arrive in the WebSocket stream, not over REST")

    def _canonical(self, native: str) -> str:
        return cached_symbol(self._symbols, native, canonical_symbol)


def _nothing(envelope: m.Envelope, ts_recv: int) -> list[Decoded]:
    return []


def _places(value: Decimal) -> int:
    """Decimals in the literal: ``0.10000000`` -> 8, ``45281.0`` -> 1, ``5`` -> 0, ``1E-7`` -> 7."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked by the parser
    return max(0, -exponent)


def _infer(book: m.Book) -> Precision:
    """The most decimals any price, and any quantity, of a snapshot has."""
    entries = book.bids + book.asks
    return max((_places(p) for p, _ in entries), default=0), max((_places(q) for _, q in entries), default=0)


def rfc3339_to_ns(text: str) -> int:
    """``"2023-10-06T17:35:55.440295Z"`` -> integer ns since the epoch, exactly (no float; digits
    past the nanosecond are truncated). `DecodeError` if it is not an RFC 3339 date-time, or not
    one whose ns since the epoch fit a signed 64-bit integer (1970 to 2262)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise DecodeError(f"not an RFC 3339 timestamp: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        days = date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:
        raise DecodeError(f"not a calendar date: {text[:40]!r}") from None
    if hour > 23 or minute > 59 or second > 60:
        raise DecodeError(f"not a time of day: {text[:40]!r}")
    zone = match.group(8)
    offset = 0
    if zone not in ("Z", "z"):
        offset = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (-1 if zone[0] == "-" else 1)
    fraction = int((match.group(7) or "")[:9].ljust(9, "0"))
    ns = (days * 86_400 + hour * 3600 + minute * 60 + second - offset) * 1_000_000_000 + fraction
    if not 0 <= ns <= INT64_MAX:
        raise DecodeError(f"not a time between 1970 and 2262: {text[:40]!r}")
    return ns


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _loads(frame: bytes | str) -> dict[str, Any]:
    """JSON with exact numbers: decimals as `Decimal`, NaN/Infinity refused; and, unlike the
    `json` module alone, only valid Unicode: invalid UTF-8, a lone surrogate (raw, UTF-8-encoded or
    a ``\\uD800`` escape without its pair) is refused, since such a string could not be encoded for
    the bus later."""
    try:
        if isinstance(frame, bytes):
            text = frame.decode("utf-8")  # strict, unlike json.loads(bytes), which lets surrogates pass
        elif isinstance(frame, str):
            text = frame
            if not text.isascii():
                text.encode("utf-8")
        else:
            raise TypeError(f"a frame must be bytes or str, not {type(frame).__name__}")
        if "\\u" in text:
            orjson.loads(text)  # checks the escapes; only a frame that has some pays for it
        msg = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"bad JSON ({exc})", frame if isinstance(frame, bytes | str) else b"") from None
    if not isinstance(msg, dict):
        raise DecodeError(f"expected a JSON object, got {type(msg).__name__}", frame)
    return msg
