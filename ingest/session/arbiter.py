"""Arbitration between sessions that carry the same subscriptions: each event is published once.

A feed may hold more than one WebSocket session for the same symbols at a time: ``redundancy`` keeps
two (or three) up all along, and a make-before-break handover (the exchange announced the end of a
connection) overlaps the old session with its successor. Every session keeps its own books (its own
`BookSync` per symbol, so each proves its own continuity); this module decides which of their
outputs reach the bus. Pure: no I/O, no clock.

Books, per symbol. The *published* book is valid once some session's snapshot was published; then:

- Where updates carry the exchange's sequence, a delta from any session with a valid book is
  published when it continues the published chain (the exchange's `SequenceRule.next`), and dropped
  when the published chain already holds it (the rule says ``drop``, or the same ``first_seq``/``seq``
  pair was published recently: OKX's maintenance reset would look like a gap the second time). The
  first session to deliver an update wins; the others' copies are duplicates.
- Where they carry none (Kraken), one session, the *owner*, is published; the others stand by.
- When the owner's book breaks (a gap, a checksum mismatch, its connection lost) and another
  session's book is valid, that session takes over without a resync: with sequences, its next
  deltas continue the published chain; without, its book is published as a snapshot (the standby's
  book is checksummed and current, so consumers' books stay correct). Only when no session has a
  valid book is the break itself published (``resyncing``/``gap``), and the next snapshot any
  session gets is published.
- A session whose deltas are valid for itself but do not continue the published chain (it
  overtook a hole no other session will fill) publishes its own book as a snapshot.
- A snapshot the owner's stream sends while its book is live (the exchange replaced the book) is
  published, and the chain restarts at its id.

Trades, per symbol: published the first time their ``trade_id`` is seen within the last
`RECENT_TRADES` ids; later copies from other sessions are dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from ingest.book.sync import BookSync
from ingest.events import BookDelta, BookSnapshot, BookStatus, Event, Trade
from ingest.exchanges.base import SequenceRule

RECENT_TRADES = 4096
RECENT_DELTAS = 1024


class _Recent:
    """A bounded set: membership of the last ``size`` keys added."""

    __slots__ = ("keys", "order")

    def __init__(self, size: int) -> None:
        self.keys: set[Hashable] = set()
        self.order: deque[Hashable] = deque(maxlen=size)

    def add(self, key: Hashable) -> bool:
        """Add ``key``; False if it was already there."""
        if key in self.keys:
            return False
        if len(self.order) == self.order.maxlen:
            self.keys.discard(self.order[0])
        self.order.append(key)
        self.keys.add(key)
        return True


@dataclass(slots=True)
class _Symbol:
    live: bool = False  # the published book is valid
    seq: int | None = None  # the published chain's last id
    owner: int | None = None  # the session whose book is published (the last to publish, with sequences)
    announce: int | None = None  # the session whose snapshot was just published: its "valid" follows
    state: str | None = None  # the last published status: valid, resyncing or gap (None: none yet)
    since: int = 0  # its ts_recv
    deltas: _Recent = field(default_factory=lambda: _Recent(RECENT_DELTAS))


@dataclass(slots=True)
class ArbiterStats:
    duplicates: int = 0  # deltas and trades dropped as already published
    handovers: int = 0  # a standby session took over a symbol's book without a resync
    takeovers: int = 0  # a session's book was published as a snapshot to continue the published book


class Arbiter:
    """One feed's arbitration; see the module docstring."""

    def __init__(self, rule: SequenceRule) -> None:
        self.rule = rule
        self.stats = ArbiterStats()
        self._books: dict[str, _Symbol] = {}
        self._trades: dict[str, _Recent] = {}
        self._sessions: set[int] = set()

    def open(self, session: int) -> None:
        """``session`` starts delivering events."""
        self._sessions.add(session)

    def trade(self, trade: Trade) -> bool:
        """Whether ``trade`` is to be published (its id not seen recently for its symbol)."""
        recent = self._trades.get(trade.native)
        if recent is None:
            recent = self._trades[trade.native] = _Recent(RECENT_TRADES)
        if recent.add(trade.trade_id):
            return True
        self.stats.duplicates += 1
        return False

    def delta(self, session: int, delta: BookDelta, sync: BookSync) -> BookDelta | BookSnapshot | None:
        """`book` for a `BookDelta` (the bulk of a feed's events), without the list: what to publish
        for it (itself, a snapshot of ``sync``'s book to continue the published book, or nothing)."""
        s = self._books.get(sync.native)
        if s is None:
            s = self._books[sync.native] = _Symbol()
        if not s.live:
            return None
        seq = delta.seq
        if seq is None or s.seq is None:  # no sequence to splice by: the owner's book only
            return delta if session == s.owner else None
        several = len(self._sessions) > 1
        if several and (delta.first_seq, seq) in s.deltas.keys:
            self.stats.duplicates += 1
            return None
        verdict = self.rule.next(s.seq, delta)
        if verdict == "apply":
            if several:  # the recent-delta set only matters while another session may repeat this one
                s.deltas.add((delta.first_seq, seq))
            s.seq, s.owner = seq, session
            return delta
        if verdict == "drop":
            self.stats.duplicates += 1
            return None
        if session != s.owner:
            return None  # the publishing session is valid and will deliver the chain's next update
        # The owner's own chain is sound but the published one does not continue into it.
        self.stats.takeovers += 1
        s.seq = seq
        return _snapshot_of(sync, seq, delta.ts_exchange, delta.ts_recv)

    def book(
        self, session: int, event: Event, sync: BookSync, books: Callable[[str], dict[int, BookSync]]
    ) -> list[Event]:
        """What to publish for ``event``, a book event ``session``'s ``sync`` emitted. ``books(native)``:
        every live session's sync for that symbol, by session id (read only for a handover)."""
        if type(event) is BookDelta:
            out = self.delta(session, event, sync)
            return [] if out is None else [out]
        s = self._books.get(sync.native)
        if s is None:
            s = self._books[sync.native] = _Symbol()
        if isinstance(event, BookSnapshot):
            if s.live:
                if session != s.owner:
                    return []
                # The exchange replaced the book mid-stream (Bybit re-sends one after trouble on its
                # side, and after a restart its ids start again at 1): consumers take it too, and
                # the published chain restarts at its id.
                s.seq, s.deltas = event.seq, _Recent(RECENT_DELTAS)
                return [event]
            s.live, s.seq, s.owner, s.announce = True, event.seq, session, session
            return [event]
        if isinstance(event, BookStatus):
            return self._status(s, session, event, books)
        return [event]

    def book_states(self) -> dict[str, tuple[str, int]]:
        """The published state of each book that has one, and since when (ts_recv ns), by native symbol."""
        return {native: (s.state, s.since) for native, s in self._books.items() if s.state is not None}

    def forget(self, session: int) -> None:
        """``session`` is gone (its books were reset through `book` already)."""
        self._sessions.discard(session)

    def _status(
        self, s: _Symbol, session: int, status: BookStatus, books: Callable[[str], dict[int, BookSync]]
    ) -> list[Event]:
        if status.state == "valid":
            if s.announce == session:
                s.announce = None
                s.state, s.since = status.state, status.ts_recv
                return [status]
            return []
        if not s.live or s.owner != session:
            return []  # a standby's trouble, or the published book already says it is broken
        for other, sync in sorted(books(status.native).items()):
            if other == session or sync.state != "live":  # only a session whose own book is valid
                continue
            self.stats.handovers += 1
            s.owner = other
            if s.seq is not None and sync.last_seq is not None:
                return []  # its next deltas continue the published chain
            s.seq = sync.last_seq
            return [_snapshot_of(sync, sync.last_seq, 0, status.ts_recv)]
        s.live, s.owner, s.seq = False, None, None
        s.state, s.since = status.state, status.ts_recv
        return [status]


def _snapshot_of(sync: BookSync, seq: int | None, ts_exchange: int, ts_recv: int) -> BookSnapshot:
    bids, asks = sync.book.depth()
    return BookSnapshot(sync.exchange, sync.symbol, sync.native, tuple(bids), tuple(asks), seq, ts_exchange, ts_recv)
