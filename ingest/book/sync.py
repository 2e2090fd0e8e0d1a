"""Book synchronisation for one symbol: snapshot + buffered deltas -> a live, continuous book.

A pure state machine. Inputs are `reset()`, `on_snapshot()` and `on_delta()`; each returns a list of
actions: canonical events to publish, and `NeedSnapshot` when the I/O layer must fetch (or
resubscribe for) a snapshot. The exchange's continuity rule is injected (`SequenceRule`).

States and transitions (the table `_TRANSITIONS` is the single source of truth)::

    awaiting_snapshot --snapshot(bridges or nothing buffered)--> live
    awaiting_snapshot --snapshot(too old)----------------------> awaiting_snapshot  (+NeedSnapshot)
    awaiting_snapshot --delta----------------------------------> awaiting_snapshot  (buffered)
    live              --delta(apply|drop)----------------------> live
    live              --delta(gap)-----------------------------> awaiting_snapshot  (+gap status, NeedSnapshot)
    live              --snapshot-------------------------------> live               (book replaced)
    any               --reset------------------------------------> awaiting_snapshot  (+resyncing, NeedSnapshot)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from ingest.book.book import ZERO, OrderBook
from ingest.events import BookDelta, BookSnapshot, BookStatus, Event, Level
from ingest.exchanges.base import ExchangeSpec, SequenceRule

State = Literal["awaiting_snapshot", "live"]
Input = Literal["reset", "snapshot", "delta"]


@dataclass(frozen=True, slots=True)
class NeedSnapshot:
    """The I/O layer must obtain a fresh snapshot for this symbol (REST fetch or resubscribe)."""

    native: str
    reason: str


Action = Event | NeedSnapshot


@dataclass(slots=True)
class SyncStats:
    snapshots: int = 0
    deltas_applied: int = 0
    deltas_dropped: int = 0
    gaps: int = 0
    resyncs: int = 0
    buffer_overflows: int = 0
    checksums_verified: int = 0
    checksum_failures: int = 0


class BookSync:
    """Keeps one symbol's book correct. See the module docstring for the state table."""

    def __init__(
        self,
        exchange: str,
        symbol: str,
        native: str,
        rule: SequenceRule,
        max_buffer: int = 10_000,
        *,
        checksum: Callable[[OrderBook], int] | None = None,
        depth: int | None = None,
        stream_snapshots: bool = False,
    ) -> None:
        """``checksum``: the exchange's book checksum, verified whenever a message carries one.
        ``depth``: truncate each side to this many levels after every message (exchanges that send
        no deletes for levels leaving the subscribed depth). ``stream_snapshots``: snapshots arrive
        in the stream itself, so deltas received before one are older than it and are discarded."""
        self.exchange = exchange
        self.symbol = symbol
        self.native = native
        self.rule = rule
        self.checksum = checksum
        self.depth = depth
        self.stream_snapshots = stream_snapshots
        self.book = OrderBook()
        self.state: State = "awaiting_snapshot"
        self.last_seq: int | None = None
        self.bridged = False
        self.buffer: deque[BookDelta] = deque(maxlen=max_buffer)
        self.stats = SyncStats()
        self.first_applied: BookDelta | None = None

    # -- inputs ---------------------------------------------------------------------------------

    def reset(self, reason: str, ts_recv: int) -> list[Action]:
        return self._dispatch("reset", reason, ts_recv)

    def on_snapshot(self, snapshot: BookSnapshot) -> list[Action]:
        return self._dispatch("snapshot", snapshot, snapshot.ts_recv)

    def on_delta(self, delta: BookDelta) -> list[Action]:
        if self.state == "live":  # nearly every call: `_TRANSITIONS[("live", "delta")]`, without the lookup
            return self._delta(delta, delta.ts_recv)
        return self._dispatch("delta", delta, delta.ts_recv)

    # -- handlers -------------------------------------------------------------------------------

    def _dispatch(self, what: Input, arg: object, ts_recv: int) -> list[Action]:
        handler = _TRANSITIONS[(self.state, what)]
        return handler(self, arg, ts_recv)

    def _reset(self, reason: object, ts_recv: int) -> list[Action]:
        self.stats.resyncs += 1
        self.state = "awaiting_snapshot"
        self.buffer.clear()
        self.bridged = False
        return [self._status("resyncing", str(reason), ts_recv), NeedSnapshot(self.native, str(reason))]

    def _buffer(self, delta: object, ts_recv: int) -> list[Action]:
        assert isinstance(delta, BookDelta)
        if len(self.buffer) == self.buffer.maxlen:
            self.stats.buffer_overflows += 1
        self.buffer.append(delta)
        return []

    def _take_snapshot(self, snapshot: object, ts_recv: int) -> list[Action]:
        assert isinstance(snapshot, BookSnapshot)
        snap_seq = snapshot.seq
        pending = [] if self.stream_snapshots else list(self.buffer)
        self.buffer.clear()
        if snap_seq is not None and pending:
            verdicts = [(d, self.rule.first(snap_seq, d)) for d in pending]
            # Deltas wholly covered by the snapshot are dropped; if what remains does not bridge
            # the snapshot, the snapshot is older than the stream: keep buffering and fetch again.
            remaining = [(d, v) for d, v in verdicts if v != "drop"]
            self.stats.deltas_dropped += len(pending) - len(remaining)
            if remaining and remaining[0][1] == "gap":
                self.buffer.extend(d for d, _ in remaining)
                return [NeedSnapshot(self.native, "snapshot older than the buffered stream")]
            pending = [d for d, _ in remaining]
        self.state = "live"
        self.stats.snapshots += 1
        self.book.replace(snapshot.bids, snapshot.asks)
        self.last_seq = snap_seq
        self.bridged = snap_seq is None
        if any(self._truncate()):  # publish the book as it is kept: at the subscribed depth
            bids, asks = self.book.depth()
            snapshot = replace(snapshot, bids=tuple(bids), asks=tuple(asks))
        if not self._checksum_ok(snapshot.checksum):
            return self._checksum_failed(ts_recv)
        out: list[Action] = [snapshot, self._status("valid", "snapshot applied", ts_recv)]
        for i, delta in enumerate(pending):
            out.extend(self._delta(delta, ts_recv))
            if self.state != "live":  # a gap inside the buffer: keep what follows for the next try
                self.buffer.extend(pending[i + 1 :])
                break
        return out

    def _replace_live(self, snapshot: object, ts_recv: int) -> list[Action]:
        self.state = "awaiting_snapshot"
        return self._take_snapshot(snapshot, ts_recv)

    def _live_delta(self, delta: object, ts_recv: int) -> list[Action]:
        assert isinstance(delta, BookDelta)
        return self._delta(delta, ts_recv)

    def _delta(self, delta: BookDelta, ts_recv: int) -> list[Action]:
        """A delta in the live state (`_live_delta`, typed: `on_delta` calls it for nearly every delta)."""
        last, seq = self.last_seq, delta.seq
        if last is not None and seq is not None:
            verdict = self.rule.next(last, delta) if self.bridged else self.rule.first(last, delta)
            if verdict != "apply":
                if verdict == "drop":
                    self.stats.deltas_dropped += 1
                    return []
                return self._gap(delta, ts_recv)
        bids, asks = delta.bids, delta.asks
        if bids:  # an update often changes one side only
            self.book.bids.apply(bids)
        if asks:
            self.book.asks.apply(asks)
        if self.depth is not None:
            gone_bids, gone_asks = self._truncate()
            if gone_bids or gone_asks:  # the exchange sends no deletes for these: publish them
                delta = replace(
                    delta,
                    bids=delta.bids + tuple((p, ZERO) for p, _ in gone_bids),
                    asks=delta.asks + tuple((p, ZERO) for p, _ in gone_asks),
                )
        if delta.checksum is not None and not self._checksum_ok(delta.checksum):
            return self._checksum_failed(ts_recv)
        self.stats.deltas_applied += 1
        if seq is not None:
            self.last_seq = seq
        if not self.bridged:
            self.bridged = True
            self.first_applied = delta
        return [delta]

    def _truncate(self) -> tuple[list[Level], list[Level]]:
        """Cut each side to the subscribed depth (if any); the levels removed, per side."""
        if self.depth is None:
            return [], []
        return self.book.bids.truncate(self.depth), self.book.asks.truncate(self.depth)

    def _checksum_ok(self, expected: int | None) -> bool:
        """Check the exchange's checksum if the message carried one."""
        if expected is None or self.checksum is None:
            return True
        if self.checksum(self.book) == expected:
            self.stats.checksums_verified += 1
            return True
        self.stats.checksum_failures += 1
        return False

    def _checksum_failed(self, ts_recv: int) -> list[Action]:
        self.stats.resyncs += 1
        self.state = "awaiting_snapshot"
        self.bridged = False
        self.buffer.clear()
        return [self._status("resyncing", "checksum mismatch", ts_recv), NeedSnapshot(self.native, "checksum")]

    def _gap(self, delta: BookDelta, ts_recv: int) -> list[Action]:
        self.stats.gaps += 1
        self.stats.resyncs += 1
        missing = None if self.last_seq is None else self.rule.missing(self.last_seq, delta)
        gap_from, gap_to = missing or (None, None)
        self.state = "awaiting_snapshot"
        self.bridged = False
        self.buffer.clear()
        self.buffer.append(delta)
        status = replace(
            self._status("gap", "update ids missing", ts_recv), gap_from=gap_from, gap_to=gap_to
        )
        return [status, NeedSnapshot(self.native, "gap")]

    def _status(self, state: Literal["valid", "resyncing", "gap"], reason: str, ts_recv: int) -> BookStatus:
        return BookStatus(self.exchange, self.symbol, self.native, state, reason, None, None, ts_recv)


Handler = Callable[[BookSync, object, int], list[Action]]

_TRANSITIONS: dict[tuple[State, Input], Handler] = {
    ("awaiting_snapshot", "reset"): BookSync._reset,
    ("awaiting_snapshot", "snapshot"): BookSync._take_snapshot,
    ("awaiting_snapshot", "delta"): BookSync._buffer,
    ("live", "reset"): BookSync._reset,
    ("live", "snapshot"): BookSync._replace_live,
    ("live", "delta"): BookSync._live_delta,
}


def sync_for(spec: ExchangeSpec, symbol: str, native: str, depth: int = 0) -> BookSync:
    """The `BookSync` an exchange's spec calls for (rule, checksum, depth truncation, snapshots)."""
    levels = depth or spec.default_depth
    return BookSync(
        spec.name, symbol, native, spec.sequence_rule,
        checksum=spec.checksum,
        depth=levels if spec.truncate_to_depth and levels else None,
        stream_snapshots=spec.snapshot_source == "stream",
    )  # fmt: skip
