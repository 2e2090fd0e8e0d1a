"""Canonical events: the one shape every exchange is normalized to.

Every event carries the exchange name, the canonical symbol (``BASE-QUOTE``, upper case) and the
exchange's native symbol, and the receive time ``ts_recv`` as integer nanoseconds since the epoch.
Prices and quantities are exact decimal strings as the exchange sent them (never binary floats);
a book level is ``(price, qty)``. In a ``BookDelta`` a quantity of exactly ``"0"`` deletes the level
(deletes are normalized to ``"0"`` whatever spelling the exchange used). Exchange sequence numbers
are carried as the exchange defines them (``first_seq``/``seq``; ``None`` where it has none).

The documentation of every field is in README.md ("Canonical events"); keep the two in step.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Literal, TypeVar

Level = tuple[str, str]
Side = Literal["buy", "sell"]
BookState = Literal["valid", "resyncing", "gap"]
ConnState = Literal["connected", "disconnected"]


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade. ``side`` is the taker's side. ``trade_id`` is the exchange's id as a string.
    ``origin`` is ``"live"`` for trades from the stream, ``"backfill"`` for trades fetched from the
    exchange's trade history to fill a hole (published in id order with the live ones)."""

    kind: ClassVar[str] = "trade"
    channel: ClassVar[str] = "trade"
    exchange: str
    symbol: str
    native: str
    trade_id: str
    price: str
    qty: str
    side: Side
    ts_exchange: int
    ts_recv: int
    origin: Literal["live", "backfill"] = "live"


@dataclass(frozen=True, slots=True)
class TradeGap:
    """Trades ``gap_from``..``gap_to`` (exchange trade ids, inclusive) were missed and could not be
    fetched from the exchange's history; published in the trade stream where they belong."""

    kind: ClassVar[str] = "trade_gap"
    channel: ClassVar[str] = "trade"
    exchange: str
    symbol: str
    native: str
    gap_from: int
    gap_to: int
    reason: str
    ts_recv: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The whole book (as far as the exchange gave it) replacing any earlier state.

    ``seq`` is the exchange's update id the snapshot is valid at. Bids best (highest) first, asks
    best (lowest) first."""

    kind: ClassVar[str] = "snapshot"
    channel: ClassVar[str] = "book"
    exchange: str
    symbol: str
    native: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    seq: int | None
    ts_exchange: int
    ts_recv: int
    checksum: int | None = None


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changed levels, absolute quantities, applied in order; ``"0"`` deletes.

    ``seq`` is the exchange's id of this update; ``first_seq`` is, where ids are consecutive, the
    first id it covers (Binance ``U``: it covers ``first_seq``..``seq``), and where updates are
    chained, the id of the update before it (OKX ``prevSeqId``). ``checksum`` is
    the exchange's checksum of the book after this delta, where it sends one (``None`` otherwise)."""

    kind: ClassVar[str] = "delta"
    channel: ClassVar[str] = "book"
    exchange: str
    symbol: str
    native: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    first_seq: int | None
    seq: int | None
    ts_exchange: int
    ts_recv: int
    checksum: int | None = None


@dataclass(frozen=True, slots=True)
class BookStatus:
    """The book's state changed.

    ``valid``: a snapshot was applied and the book is live. ``resyncing``: the book must not be
    trusted until the next snapshot. ``gap``: updates ``gap_from``..``gap_to`` (exchange ids,
    inclusive) were missed; a resync follows."""

    kind: ClassVar[str] = "status"
    channel: ClassVar[str] = "book"
    exchange: str
    symbol: str
    native: str
    state: BookState
    reason: str
    gap_from: int | None
    gap_to: int | None
    ts_recv: int


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """A feed connection came up or went down. ``symbol`` is ``"*"``; ``symbols`` lists what it carries."""

    kind: ClassVar[str] = "conn"
    channel: ClassVar[str] = "conn"
    exchange: str
    symbol: str
    native: str
    connection: str
    state: ConnState
    reason: str
    symbols: tuple[str, ...]
    ts_recv: int


@dataclass(frozen=True, slots=True)
class Bar:
    """A 1-minute OHLCV bar of one symbol's trades in exchange time (`ingest.bars` builds them).

    ``start`` is the minute's first nanosecond (exchange time; the bar holds the trades with
    ``start <= ts_exchange < start + 60 s``). ``open``/``close`` are the prices of the first/last trade in
    trade-id order, ``high``/``low`` the extremes, all as the exchange's strings; ``volume`` is the sum of
    the quantities, ``notional`` the exact sum of price x quantity, ``vwap`` = notional / volume rounded
    half-even to 4 more decimal places than the finest price in the bar. ``trades`` counts the trades,
    ``backfilled`` those of them fetched from the exchange's history; ``missing`` counts trade ids
    reported lost (`TradeGap`) right after a trade of this bar; ``partial`` flags a bar that may lack trades: 1
    a symbol's first bar (its minute may have begun before the subscription), 2 a bar published when
    the shard stopped before its minute was over, 3 both; 0 a complete bar.
    ``revision`` is 0 when the bar is first published and counts up each time a late trade corrects
    it (the newest revision of a ``start`` replaces the earlier ones). ``ts_recv``: when it was
    published (local nanoseconds)."""

    kind: ClassVar[str] = "bar"
    channel: ClassVar[str] = "bar"
    exchange: str
    symbol: str
    native: str
    start: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    notional: str
    vwap: str
    trades: int
    first_trade_id: str
    last_trade_id: str
    backfilled: int
    missing: int
    partial: int
    revision: int
    ts_recv: int


Event = Trade | TradeGap | BookSnapshot | BookDelta | BookStatus | ConnectionStatus | Bar

_E = TypeVar("_E")


def _slot_init(cls: type[_E]) -> None:
    """Make a frozen slots dataclass's instances the cheap way: a ``__new__`` with the signature and
    defaults of the generated ``__init__`` (which then goes: ``object.__init__`` accepts the arguments
    ``__new__`` took) that fills an instance of a plain twin class (the same slots, no frozen
    ``__setattr__``, so each store is a specialized slot store) and makes it an instance of ``cls``
    (``__class__`` assignment, allowed between classes of the same layout). About a third of the
    generated ``__init__``'s cost (which calls ``object.__setattr__`` by name per field, as frozen
    requires), for an event made per frame. ``dataclasses.replace``, ``fields``, equality, hashing,
    the frozen check, pickling and copying work as before (tests/ingest/test_events.py)."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    twin = type(f"_{cls.__name__}Slots", (), {"__slots__": tuple(names)})
    scope: dict[str, Any] = {"_twin": twin}
    params = []
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default is MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    body = "".join(f"    self.{n} = {n}\n" for n in names)
    exec(f"def __new__(cls, {', '.join(params)}):\n    self = _twin()\n{body}    self.__class__ = cls\n"
         "    return self\n", scope)  # fmt: skip
    new = scope["__new__"]
    new.__qualname__ = f"{cls.__qualname__}.__new__"
    cls.__new__ = new  # type: ignore[method-assign]
    del cls.__init__  # object.__init__: the arguments were __new__'s
    # Pickle and copy by the constructor (the default reduction calls ``cls.__new__(cls)``, bare).
    cls.__reduce__ = lambda self: (type(self), tuple(getattr(self, n) for n in names))  # type: ignore[method-assign]


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls for cls in (Trade, TradeGap, BookSnapshot, BookDelta, BookStatus, ConnectionStatus, Bar)
}
for _cls in EVENT_TYPES.values():
    _slot_init(_cls)
