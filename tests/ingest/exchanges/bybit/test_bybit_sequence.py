"""Bybit's ``u`` rule: +1 applies, anything else (a jump, a repeat, a chain gone backwards) is a gap,
with the lost ids where they can be told; and the book sync around it: a mid-stream snapshot and the
``u = 1`` restart replace the book, and the chain carries on from the new ``u``."""

from __future__ import annotations

import pytest

from ingest.book.sync import NeedSnapshot, sync_for
from ingest.events import BookDelta, BookSnapshot, BookStatus
from ingest.exchanges.bybit.sequence import BybitRule
from ingest.exchanges.bybit.spec import SPEC


def delta(u: int, bids: tuple[tuple[str, str], ...] = (), asks: tuple[tuple[str, str], ...] = ()) -> BookDelta:
    return BookDelta("bybit", "BTC-USDT", "BTCUSDT", bids, asks, u, u, 0, 0)


def snapshot(u: int, bids: tuple[tuple[str, str], ...], asks: tuple[tuple[str, str], ...]) -> BookSnapshot:
    return BookSnapshot("bybit", "BTC-USDT", "BTCUSDT", bids, asks, u, 0, 0)


@pytest.mark.parametrize(
    ("last", "u", "verdict", "missing"),
    [
        (100, 101, "apply", None),
        (100, 103, "gap", (101, 102)),
        (100, 100, "gap", None),  # a repeat: never sent on one connection
        (100, 2, "gap", None),  # a restart whose u=1 message we did not see
        (1, 2, "apply", None),  # right after a restart
    ],
)
def test_verdicts(last: int, u: int, verdict: str, missing: tuple[int, int] | None) -> None:
    rule = BybitRule()
    assert rule.first(last, delta(u)) == verdict
    assert rule.next(last, delta(u)) == verdict
    assert rule.missing(last, delta(u)) == missing


def test_sync_resets_on_every_snapshot_and_follows_a_restart() -> None:
    sync = sync_for(SPEC, "BTC-USDT", "BTCUSDT")
    out = sync.on_snapshot(snapshot(10, (("100", "1"), ("99", "2")), (("101", "1"),)))
    assert [type(a) for a in out] == [BookSnapshot, BookStatus]
    assert sync.on_delta(delta(11, bids=(("99", "0"),))) == [delta(11, bids=(("99", "0"),))]
    # A snapshot Bybit resends mid-stream replaces the book, levels and all.
    sync.on_snapshot(snapshot(15, (("98", "5"),), (("102", "3"),)))
    assert sync.book.depth() == ([("98", "5")], [("102", "3")])
    assert sync.on_delta(delta(16, asks=(("103", "1"),)))
    # The restart: u=1 (the codec made it a snapshot), then 2, 3...
    sync.on_snapshot(snapshot(1, (("97", "1"),), (("104", "1"),)))
    assert sync.on_delta(delta(2, bids=(("96", "1"),))) and sync.on_delta(delta(3))
    assert sync.book.depth() == ([("97", "1"), ("96", "1")], [("104", "1")])
    assert (sync.state, sync.last_seq, sync.stats.gaps) == ("live", 3, 0)


def test_sync_a_break_in_u_asks_for_a_resubscribe_and_the_next_snapshot_heals() -> None:
    sync = sync_for(SPEC, "BTC-USDT", "BTCUSDT")
    sync.on_snapshot(snapshot(10, (("100", "1"),), (("101", "1"),)))
    out = sync.on_delta(delta(12))
    status = out[0]
    assert isinstance(status, BookStatus) and (status.state, status.gap_from, status.gap_to) == ("gap", 11, 11)
    assert out[1] == NeedSnapshot("BTCUSDT", "gap")
    assert sync.on_delta(delta(13)) == []  # buffered, then discarded: the stream's snapshot is newer
    sync.on_snapshot(snapshot(20, (("100", "2"),), (("101", "1"),)))
    assert sync.on_delta(delta(21)) == [delta(21)]
    assert sync.book.depth() == ([("100", "2")], [("101", "1")])


def test_sync_truncates_to_the_subscribed_depth() -> None:
    """Whether or not Bybit deletes a level pushed out of the depth, the book keeps ``depth`` levels."""
    sync = sync_for(SPEC, "BTC-USDT", "BTCUSDT", depth=1)
    sync.on_snapshot(snapshot(10, (("100", "1"),), (("101", "1"),)))
    (out,) = sync.on_delta(delta(11, bids=(("100.5", "3"),)))
    assert isinstance(out, BookDelta) and out.bids == (("100.5", "3"), ("100", "0"))
    assert sync.book.depth() == ([("100.5", "3")], [("101", "1")])
