"""OKX's seqId chain rule: the docs' example sequence, then every verdict and its edges."""

from __future__ import annotations

import pytest

from ingest.book.sync import BookSync, NeedSnapshot
from ingest.events import BookDelta, BookSnapshot, BookStatus
from ingest.exchanges.okx.sequence import OkxRule
from ingest.exchanges.okx.spec import SPEC

RULE = OkxRule()


def delta(prev: int | None, seq: int | None, bids: tuple[tuple[str, str], ...] = ()) -> BookDelta:
    return BookDelta("okx", "BTC-USDT", "BTC-USDT", bids, (), prev, seq, 0, 0)


def snapshot(seq: int | None) -> BookSnapshot:
    return BookSnapshot("okx", "BTC-USDT", "BTC-USDT", (("100", "1"),), (("101", "1"),), seq, 0, 0)


def test_the_docs_example_chain() -> None:
    """Snapshot (-1,10); update (10,15); no-change update (15,15); reset (15,3); update (3,5)."""
    assert RULE.first(10, delta(10, 15)) == "apply"
    assert RULE.next(15, delta(15, 15)) == "apply"  # keep-alive
    assert RULE.next(15, delta(15, 3)) == "apply"  # maintenance reset
    assert RULE.next(3, delta(3, 5)) == "apply"  # the normal rule again, from the reset's seqId


@pytest.mark.parametrize("check", ["first", "next"])
def test_verdicts(check: str) -> None:
    verdict = getattr(RULE, check)
    assert verdict(100, delta(100, 180)) == "apply"  # seqIds jump: not +1
    assert verdict(100, delta(100, 101)) == "apply"
    assert verdict(100, delta(100, 100)) == "apply"  # keep-alive: seqId == prevSeqId == last
    assert verdict(100, delta(100, 0)) == "apply"  # a reset to the smallest seqId
    assert verdict(100, delta(80, 100)) == "drop"  # the update we already applied, again
    assert verdict(100, delta(120, 150)) == "gap"  # the update 100 -> 120 was lost
    # Below our position: OKX does not replay old updates, but a chain restarted by a reset we
    # missed looks just like this; dropping would leave the book stale, so it is a gap.
    assert verdict(100, delta(60, 80)) == "gap"
    assert verdict(100, delta(90, 90)) == "gap"
    assert verdict(100, delta(3, 5)) == "gap"
    assert verdict(100, delta(99, 150)) == "gap"  # a prevSeqId that is not the last seqId
    assert verdict(100, delta(120, 120)) == "gap"  # a keep-alive naming a seqId we never saw
    assert verdict(100, delta(150, 3)) == "gap"  # a reset whose prevSeqId is not ours


def test_deltas_without_ids_apply_and_rely_on_the_checksum() -> None:
    """Sessions recorded before the chain existed carry neither id (the codec gives ``None``)."""
    assert RULE.first(100, delta(None, None)) == "apply"
    assert RULE.next(100, delta(None, None)) == "apply"


def test_the_sync_follows_a_chain_through_keepalive_and_reset_and_resyncs_on_a_gap() -> None:
    sync = BookSync("okx", "BTC-USDT", "BTC-USDT", SPEC.sequence_rule, stream_snapshots=True)
    sync.on_delta(delta(5, 9))  # before the snapshot: discarded, the snapshot comes from the stream
    out = sync.on_snapshot(snapshot(10))
    assert [type(a) for a in out] == [BookSnapshot, BookStatus]
    for d in (delta(10, 15, (("100", "2"),)), delta(15, 15), delta(15, 3), delta(3, 5, (("99", "1"),))):
        assert sync.on_delta(d) == [d]
    assert sync.last_seq == 5
    assert sync.on_delta(delta(3, 5)) == []  # a duplicate
    assert sync.book.depth() == ([("100", "2"), ("99", "1")], [("101", "1")])
    out = sync.on_delta(delta(7, 9))
    assert isinstance(out[0], BookStatus) and out[0].state == "gap"
    assert out[1] == NeedSnapshot("BTC-USDT", "gap")
    assert sync.on_delta(delta(9, 11)) == []  # buffered until the new snapshot, then discarded
    out = sync.on_snapshot(snapshot(20))
    assert [type(a) for a in out] == [BookSnapshot, BookStatus] and sync.last_seq == 20
    assert sync.on_delta(delta(20, 21)) == [delta(20, 21)]


def test_missing_range_reaches_the_lost_messages_seq_id() -> None:
    """After 100, an update naming 130 as its predecessor: 130 itself (and whatever came between)
    was lost, so the gap runs 101..130; a chain that went backwards has no range."""
    rule = OkxRule()
    assert rule.missing(100, delta(130, 140)) == (101, 130)
    assert rule.missing(100, delta(90, 95)) is None
    assert rule.missing(100, delta(None, None)) is None
