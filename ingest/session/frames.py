"""A session's per-frame work: count the frame, decode it, and route what it holds.

The items nearly every frame is take the shortest way: a book update that a live book applied goes
straight to the feed (``delta``: its `BookOut.delta`, below, with no interpreted call between), a trade of a
subscribed symbol to ``trade``; a book update the sync answered otherwise goes to ``act`` with the
sync's actions, anything else (snapshots in the stream, replies, greetings, resyncs) to ``other``.

`BookOut` is the feed's side of a book update: the arbiter's verdict, then the publish, and the
newest update kept (the bars' clock reads it). `TradeOut` is the feed's side of a trade: the arbiter's
verdict, then id order per symbol (a hole goes to the feed's backfill, `ingest.session.trades`).

Kept apart from `ingest.session.session` and `ingest.session.connection` so that it is compiled with
the other per-message modules (`ingest.compiled`): their coroutines cannot be (mypyc loses a local of
one across an await in a try/finally).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from time import time_ns  # the wall clock as `ingest.clock.now_ns` reads it, without a call around it

from ingest.book.sync import BookSync, NeedSnapshot
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Event, Trade
from ingest.exchanges.base import Codec
from ingest.session.arbiter import Arbiter
from ingest.session.tap import Tap


class BookOut:
    """Where a feed's book updates go: ``publish``, once the arbiter let them through; ``last`` is
    the newest published."""

    def __init__(self, arbiter: Arbiter, publish: Callable[[Event], None]) -> None:
        self.last: BookDelta | BookSnapshot | None = None
        self._arbiter = arbiter
        self._publish = publish

    def delta(self, session: int, delta: BookDelta, sync: BookSync) -> None:
        """A book update a live book of ``session`` applied (the bulk of a feed's events)."""
        out = self._arbiter.delta(session, delta, sync)
        if out is not None:
            self.last = out
            self._publish(out)

    def publish(self, update: BookDelta | BookSnapshot) -> None:
        """A book update the arbiter let through another way (a snapshot, a takeover)."""
        self.last = update
        self._publish(update)


class TradeOut:
    """Where a feed's trades go: ``publish``, once the arbiter let them through, in id order per
    symbol. ``last[native]`` is the newest trade published; a trade past a hole in the ids (where
    they are ``contiguous``), or the first after a spell when no session carried its symbol
    (``uncovered``; where they are not), is handed to ``gap(last, trade)`` (the backfill, which
    publishes the trades between) and kept in ``held[native]`` with the symbol's later trades until
    the backfill takes them back."""

    def __init__(
        self, arbiter: Arbiter, contiguous: bool, publish: Callable[[Event], None], gap: Callable[[Trade, Trade], None]
    ) -> None:
        self.last: dict[str, Trade] = {}
        self.uncovered: set[str] = set()
        self.held: dict[str, list[Trade]] = {}
        self._arbiter = arbiter
        self._contiguous = contiguous
        self._publish = publish
        self._gap = gap

    def trade(self, trade: Trade) -> None:
        """A trade a session received (every copy of it)."""
        if self._arbiter.trade(trade):
            self.admit(trade)

    def admit(self, trade: Trade) -> None:
        """Publish a trade in order, or hold it behind a hole being backfilled."""
        native = trade.native
        if self.held:  # a backfill runs (rarely): its symbol's trades wait
            held = self.held.get(native)
            if held is not None:
                held.append(trade)
                return
        last = self.last.get(native)
        uncovered = False
        if self.uncovered and native in self.uncovered:
            uncovered = True
            self.uncovered.discard(native)
        if last is not None and trade.trade_id.isdigit() and last.trade_id.isdigit():
            tid, last_id = int(trade.trade_id), int(last.trade_id)
            if tid <= last_id:  # older than what is out already (a late copy): never out of order
                return
            if (tid > last_id + 1 and self._contiguous) or (uncovered and not self._contiguous):
                self.held[native] = [trade]
                self._gap(last, trade)
                return
        self.last[native] = trade
        self._publish(trade)


class Frames:
    """One session's frames; ``on_frame`` is the WebSocket's callback. ``count`` and ``size`` are the
    frames and bytes received; ``heard[native]`` is the frame count when that symbol's book last spoke."""

    def __init__(
        self,
        session: int,
        codec: Codec,
        syncs: Mapping[str, BookSync],
        natives: Mapping[str, str],
        tap: Tap | None,
        delta: Callable[[int, BookDelta, BookSync], None],
        trade: Callable[[Trade], None],
        act: Callable[[BookSync, Sequence[Event | NeedSnapshot]], None],
        other: Callable[[object, int], None],
        undecodable: Callable[[DecodeError], None],
    ) -> None:
        self.count = 0
        self.size = 0
        self.heard: dict[str, int] = {}
        self._session = session
        self._codec = codec
        self._syncs = syncs
        self._natives = natives
        self._tap = tap
        self._delta = delta
        self._trade = trade
        self._act = act
        self._other = other
        self._undecodable = undecodable

    def on_frame(self, data: bytes, binary: bool) -> None:
        """One complete message, handed over by the socket's callback."""
        frames = self.count = self.count + 1
        self.size += len(data)
        ts = time_ns()
        if self._tap is not None:  # a recording keeps text frames as text
            self._tap.received(ts, data if binary else data.decode("utf-8", "replace"))
        try:
            decoded = self._codec.decode(data, ts)
        except DecodeError as e:
            self._undecodable(e)
            return
        for item in decoded:
            if type(item) is BookDelta:
                native = item.native
                sync = self._syncs.get(native)
                if sync is not None:
                    self.heard[native] = frames
                    actions = sync.on_delta(item)
                    if len(actions) == 1 and type(actions[0]) is BookDelta:  # applied to a live book
                        self._delta(self._session, actions[0], sync)
                    else:
                        self._act(sync, actions)
            elif type(item) is Trade:
                if item.native in self._natives:
                    self._trade(item)
            else:
                self._other(item, frames)
