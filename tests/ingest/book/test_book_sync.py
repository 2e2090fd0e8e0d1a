"""BookSync with Binance's rule: the B1/B2 vectors from the real recording, and the failure paths
(a dropped u == lastUpdateId, a gap, a snapshot older than the buffered stream)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.book.sync import _TRANSITIONS, BookSync, NeedSnapshot
from ingest.events import BookDelta, BookSnapshot, BookStatus
from ingest.exchanges.binance.sequence import BinanceRule

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "vectors" / "checksums.json"
SYNC_VECTORS: list[dict[str, Any]] = json.loads(VECTORS.read_text())["binance_sync"]


def new_sync(native: str = "NKNUSDT") -> BookSync:
    return BookSync("binance", "NKN-USDT", native, BinanceRule())


def delta(first: int, last: int, bids: tuple[tuple[str, str], ...] = (), ts: int = 0) -> BookDelta:
    return BookDelta("binance", "NKN-USDT", "NKNUSDT", bids, (), first, last, 0, ts)


def snapshot(seq: int, bids: tuple[tuple[str, str], ...] = (("1.0", "5"),)) -> BookSnapshot:
    return BookSnapshot("binance", "NKN-USDT", "NKNUSDT", bids, (("2.0", "7"),), seq, 0, 0)


@pytest.mark.parametrize("vector", SYNC_VECTORS, ids=lambda v: v["id"])
def test_vector_buffered_before_the_snapshot(vector: dict[str, Any]) -> None:
    """NKNUSDT's order: the dropped event arrives before the snapshot, the bridging one after."""
    sync = new_sync(vector["symbol"])
    snap = vector["lastUpdateId"]
    for d in vector["dropped"]:
        assert sync.on_delta(delta(d["U"], d["u"], (("1.0", "0"),))) == []
    out = sync.on_snapshot(snapshot(snap))
    assert [type(a) for a in out] == [BookSnapshot, BookStatus]
    assert isinstance(out[1], BookStatus) and out[1].state == "valid"
    assert sync.book.bids.best() == ("1.0", "5")  # the dropped delete was not applied
    first = vector["first_applied"]
    bridging = delta(first["U"], first["u"], (("1.1", "3"),))
    assert sync.on_delta(bridging) == [bridging]
    assert sync.first_applied == bridging
    assert (sync.last_seq, sync.stats.deltas_dropped, sync.stats.gaps) == (first["u"], 1, 0)
    assert sync.book.bids.best() == ("1.1", "3")


@pytest.mark.parametrize("vector", SYNC_VECTORS, ids=lambda v: v["id"])
def test_vector_dropped_event_arriving_after_the_snapshot(vector: dict[str, Any]) -> None:
    """LRCBTC's order: the snapshot lands first; the event with u == lastUpdateId comes later and
    must still be dropped, live, before the bridging event."""
    sync = new_sync(vector["symbol"])
    snap = vector["lastUpdateId"]
    sync.on_snapshot(snapshot(snap))
    assert sync.state == "live"
    for d in vector["dropped"]:
        assert sync.on_delta(delta(d["U"], d["u"], (("1.0", "0"),))) == []
    assert sync.book.bids.best() == ("1.0", "5")
    first = vector["first_applied"]
    bridging = delta(first["U"], first["u"])
    assert sync.on_delta(bridging) == [bridging]
    assert sync.first_applied == bridging
    assert sync.bridged


def test_gap_reports_the_missing_range_and_asks_for_a_snapshot() -> None:
    sync = new_sync()
    sync.on_snapshot(snapshot(100))
    sync.on_delta(delta(101, 104))
    out = sync.on_delta(delta(108, 110, ts=42))  # 105..107 are missing
    assert len(out) == 2
    status, need = out
    assert isinstance(status, BookStatus)
    assert (status.state, status.gap_from, status.gap_to, status.ts_recv) == ("gap", 105, 107, 42)
    assert need == NeedSnapshot("NKNUSDT", "gap")
    assert sync.state == "awaiting_snapshot"
    assert (sync.stats.gaps, sync.stats.resyncs) == (1, 1)
    # The delta that revealed the gap is kept; a snapshot at 107 bridges it.
    out = sync.on_snapshot(snapshot(107))
    assert [type(a) for a in out] == [BookSnapshot, BookStatus, BookDelta]
    assert (sync.state, sync.last_seq) == ("live", 110)


def test_snapshot_older_than_the_buffer_is_refused() -> None:
    sync = new_sync()
    buffered = [delta(105, 106), delta(107, 109)]
    for d in buffered:
        sync.on_delta(d)
    assert sync.on_snapshot(snapshot(100)) == [
        NeedSnapshot("NKNUSDT", "snapshot older than the buffered stream")
    ]
    assert sync.state == "awaiting_snapshot"
    assert list(sync.buffer) == buffered and sync.stats.snapshots == 0
    # A fresh snapshot inside the buffered range: the older event is dropped, the rest applies.
    out = sync.on_snapshot(snapshot(106))
    assert out[2:] == [buffered[1]]
    assert sync.last_seq == 109 and sync.stats.deltas_dropped == 1


def test_gap_inside_the_buffer_keeps_what_follows() -> None:
    sync = new_sync()
    for d in (delta(101, 102), delta(105, 106), delta(107, 107)):
        sync.on_delta(d)
    out = sync.on_snapshot(snapshot(100))
    assert [type(a) for a in out] == [BookSnapshot, BookStatus, BookDelta, BookStatus, NeedSnapshot]
    gap = out[3]
    assert isinstance(gap, BookStatus) and (gap.gap_from, gap.gap_to) == (103, 104)
    assert [(d.first_seq, d.seq) for d in sync.buffer] == [(105, 106), (107, 107)]


def test_reset_asks_for_a_snapshot() -> None:
    sync = new_sync()
    sync.on_snapshot(snapshot(100))
    out = sync.reset("reconnected", 7)
    assert isinstance(out[0], BookStatus) and out[0].state == "resyncing"
    assert out[1] == NeedSnapshot("NKNUSDT", "reconnected")
    assert sync.state == "awaiting_snapshot"


class _ApplyAll:
    def first(self, snapshot_seq: int, delta: BookDelta) -> str:
        return "apply"

    def next(self, last_seq: int, delta: BookDelta) -> str:
        return "apply"


def test_truncation_is_published_as_deletes_and_checksums_gate_the_book() -> None:
    """A depth-truncating exchange sends no deletes for levels pushed out of the depth: the sync
    publishes them, so a consumer rebuilding from the events holds exactly the sync's book."""
    top_bid = lambda book: int(float(book.bids.best()[0]) * 10)  # noqa: E731 - a toy checksum
    sync = BookSync("x", "A-B", "AB", _ApplyAll(), depth=2, checksum=top_bid, stream_snapshots=True)  # type: ignore[arg-type]
    snap = BookSnapshot("x", "A-B", "AB", (("3.0", "1"), ("2.0", "1"), ("1.0", "1")), (("4.0", "1"),), None, 0, 0, 30)
    out = sync.on_snapshot(snap)
    assert out[0] == BookSnapshot("x", "A-B", "AB", (("3.0", "1"), ("2.0", "1")), (("4.0", "1"),), None, 0, 0, 30)
    out = sync.on_delta(BookDelta("x", "A-B", "AB", (("3.5", "2"),), (), None, None, 0, 1, 35))
    assert out == [BookDelta("x", "A-B", "AB", (("3.5", "2"), ("2.0", "0")), (), None, None, 0, 1, 35)]
    assert sync.book.depth() == ([("3.5", "2"), ("3.0", "1")], [("4.0", "1")])
    assert sync.stats.checksums_verified == 2
    out = sync.on_delta(BookDelta("x", "A-B", "AB", (("3.6", "1"),), (), None, None, 0, 2, 99))  # wrong checksum
    assert isinstance(out[0], BookStatus) and out[0].state == "resyncing" and out[0].reason == "checksum mismatch"
    assert isinstance(out[1], NeedSnapshot)
    assert sync.stats.checksum_failures == 1 and sync.state == "awaiting_snapshot"


def test_a_live_delta_takes_the_handler_the_table_names() -> None:
    # `on_delta` calls it directly while live (the common case); the table stays the one truth.
    assert _TRANSITIONS[("live", "delta")] is BookSync._live_delta
