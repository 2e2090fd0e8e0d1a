"""KuCoin's level2 calibration rule, step by step as protocols.md E' states it, through the rule and
through the generic `BookSync` (buffer, drop, bridge, apply, gap), with the negative cases."""

from __future__ import annotations

import pytest

from ingest.book.sync import BookSync, NeedSnapshot
from ingest.events import BookDelta, BookSnapshot, BookStatus, Level
from ingest.exchanges.kucoin.sequence import KucoinRule

RULE = KucoinRule()


def delta(start: int, end: int, bids: tuple[Level, ...] = (), asks: tuple[Level, ...] = ()) -> BookDelta:
    return BookDelta("kucoin", "BTC-USDT", "BTC-USDT", bids, asks, start, end, 1, 1)


def snapshot(
    seq: int, bids: tuple[Level, ...] = (("100", "1"),), asks: tuple[Level, ...] = (("101", "1"),)
) -> BookSnapshot:
    return BookSnapshot("kucoin", "BTC-USDT", "BTC-USDT", bids, asks, seq, 1, 1)


@pytest.mark.parametrize(
    ("start", "end", "verdict"),
    [
        (90, 100, "drop"),  # sequenceEnd == sequence
        (95, 99, "drop"),
        (100, 101, "apply"),  # straddles
        (95, 105, "apply"),
        (101, 101, "apply"),  # starts right after
        (101, 110, "apply"),
        (102, 110, "gap"),  # 101 is missing
        (150, 160, "gap"),
    ],
)
def test_verdicts_against_sequence_100(start: int, end: int, verdict: str) -> None:
    assert RULE.first(100, delta(start, end)) == verdict
    assert RULE.next(100, delta(start, end)) == verdict


def test_missing_names_the_lost_sequences() -> None:
    assert RULE.missing(100, delta(105, 110)) == (101, 104)
    assert RULE.missing(100, delta(101, 110)) is None
    assert RULE.missing(100, delta(90, 110)) is None


def test_a_delta_without_ids_is_a_gap() -> None:
    no_ids = BookDelta("kucoin", "BTC-USDT", "BTC-USDT", (), (), None, None, 1, 1)
    assert RULE.first(1, no_ids) == RULE.next(1, no_ids) == "gap"


def test_calibration_through_the_book_sync() -> None:
    """Buffer; the snapshot at 14103844 drops what it covers and bridges with the straddling update;
    later updates chain on sequenceEnd; a hole is a gap naming the lost sequences."""
    sync = BookSync("kucoin", "BTC-USDT", "BTC-USDT", RULE)
    assert sync.on_delta(delta(14103840, 14103843, bids=(("99", "5"),))) == []  # buffered
    assert sync.on_delta(delta(14103844, 14103847, asks=(("18906", "0.00331"),))) == []
    out = sync.on_snapshot(snapshot(14103845, bids=(("18891.9", "0.15"),), asks=(("18906", "1"),)))
    assert [type(a).__name__ for a in out] == ["BookSnapshot", "BookStatus", "BookDelta"]
    assert sync.stats.deltas_dropped == 1 and sync.last_seq == 14103847
    assert sync.book.depth() == ([("18891.9", "0.15")], [("18906", "0.00331")])
    assert sync.on_delta(delta(14103846, 14103847)) == []  # old: dropped
    [applied] = sync.on_delta(delta(14103848, 14103850, asks=(("18906", "0"),)))
    assert isinstance(applied, BookDelta) and sync.book.depth() == ([("18891.9", "0.15")], [])
    out = sync.on_delta(delta(14103853, 14103860))
    status = out[0]
    assert isinstance(status, BookStatus) and status.state == "gap"
    assert (status.gap_from, status.gap_to) == (14103851, 14103852)
    assert out[1] == NeedSnapshot("BTC-USDT", "gap")


def test_a_snapshot_older_than_the_buffered_stream_is_fetched_again() -> None:
    sync = BookSync("kucoin", "BTC-USDT", "BTC-USDT", RULE)
    sync.on_delta(delta(120, 125))
    assert sync.on_snapshot(snapshot(100)) == [NeedSnapshot("BTC-USDT", "snapshot older than the buffered stream")]
    assert sync.state == "awaiting_snapshot"
    out = sync.on_snapshot(snapshot(121))
    state: str = sync.state
    assert state == "live" and sync.last_seq == 125 and isinstance(out[-1], BookDelta)
