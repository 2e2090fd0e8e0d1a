"""The arbiter, pure: sessions carrying the same symbols publish each event once, a broken session
hands its books to a valid one without a resync, and a break no session can cover is published."""

from __future__ import annotations

from ingest.book.sync import BookSync, sync_for
from ingest.events import BookDelta, BookSnapshot, BookStatus, Event, Level, Trade
from ingest.exchanges import get_spec
from ingest.session.arbiter import Arbiter

BINANCE = get_spec("binance")
OKX = get_spec("okx")
KRAKEN = get_spec("kraken")


ONE_BID: tuple[Level, ...] = (("10", "1"),)
ONE_ASK: tuple[Level, ...] = (("11", "1"),)


def snap(seq: int | None, bids: tuple[Level, ...] = ONE_BID, asks: tuple[Level, ...] = ONE_ASK) -> BookSnapshot:
    return BookSnapshot("x", "BTC-USDT", "BTCUSDT", bids, asks, seq, 0, 0)


def delta(first: int | None, last: int | None, px: str = "10", qty: str = "2") -> BookDelta:
    return BookDelta("x", "BTC-USDT", "BTCUSDT", ((px, qty),), (), first, last, 0, 0)


class Feed:
    """Sessions each with their own sync, feeding one arbiter: what a FeedConnection does."""

    def __init__(self, spec_name: str, sessions: int = 2) -> None:
        spec = get_spec(spec_name)
        self.arbiter = Arbiter(spec.sequence_rule)
        self.syncs: dict[int, BookSync] = {}
        for sid in range(sessions):
            self.open(sid, spec_name)
        self.published: list[Event] = []

    def open(self, sid: int, spec_name: str = "binance") -> None:
        self.syncs[sid] = sync_for(get_spec(spec_name), "BTC-USDT", "BTCUSDT")
        self.arbiter.open(sid)

    def close(self, sid: int) -> None:
        self._feed(sid, self.syncs[sid].reset("lost", 0))
        del self.syncs[sid]
        self.arbiter.forget(sid)

    def snapshot(self, sid: int, s: BookSnapshot) -> None:
        self._feed(sid, self.syncs[sid].on_snapshot(s))

    def delta(self, sid: int, d: BookDelta) -> None:
        self._feed(sid, self.syncs[sid].on_delta(d))

    def _feed(self, sid: int, actions: list[object]) -> None:
        for a in actions:
            if isinstance(a, BookDelta | BookSnapshot | BookStatus):
                self.published += self.arbiter.book(sid, a, self.syncs[sid], lambda _n: dict(self.syncs))

    def kinds(self) -> list[str]:
        return [e.state if isinstance(e, BookStatus) else e.kind for e in self.published]


def test_each_delta_is_published_once_whichever_session_delivers_it_first() -> None:
    f = Feed("binance")
    f.snapshot(0, snap(100))
    f.snapshot(1, snap(100))
    f.delta(0, delta(101, 102))
    f.delta(1, delta(101, 102))
    f.delta(1, delta(103, 105, "10", "3"))  # session 1 is ahead now
    f.delta(0, delta(103, 105, "10", "3"))
    assert f.kinds() == ["snapshot", "valid", "delta", "delta"]
    assert [e.seq for e in f.published if isinstance(e, BookDelta)] == [102, 105]
    assert f.arbiter.stats.duplicates == 2


def test_losing_the_publishing_session_hands_over_without_a_resync() -> None:
    f = Feed("binance")
    f.snapshot(0, snap(100))
    f.snapshot(1, snap(100))
    f.delta(0, delta(101, 102))
    f.close(0)
    f.delta(1, delta(101, 102))  # the copy of what session 0 published
    f.delta(1, delta(103, 104))
    assert f.kinds() == ["snapshot", "valid", "delta", "delta"]
    assert f.arbiter.stats.handovers == 1


def test_a_break_no_session_covers_is_published_and_the_next_snapshot_restores_the_book() -> None:
    f = Feed("binance")
    f.snapshot(0, snap(100))
    f.snapshot(1, snap(100))
    f.close(1)  # the standby goes first: nothing to publish
    f.close(0)
    assert f.kinds() == ["snapshot", "valid", "resyncing"]
    f.open(2)
    f.snapshot(2, snap(200))
    f.delta(2, delta(201, 201))
    assert f.kinds()[3:] == ["snapshot", "valid", "delta"]


def test_a_standby_that_overtook_a_hole_publishes_its_book_as_a_snapshot() -> None:
    f = Feed("binance")
    f.snapshot(0, snap(100))
    f.close(0)  # the only valid session: published resyncing
    f.snapshot(1, snap(100))  # session 1 valid: published
    f.open(3)
    f.snapshot(3, snap(110, bids=(("10", "5"),)))  # a newer snapshot, not published (1 is valid)
    f.close(1)  # 3 takes over; the published chain is at 100, 3's at 110
    f.delta(3, delta(111, 111, "10", "6"))
    assert f.kinds() == ["snapshot", "valid", "resyncing", "snapshot", "valid", "snapshot"]
    taken = f.published[-1]
    assert isinstance(taken, BookSnapshot) and taken.seq == 111 and taken.bids == (("10", "6"),)
    assert f.arbiter.stats.takeovers == 1


def test_okx_reset_is_not_mistaken_for_a_gap_when_the_second_copy_arrives() -> None:
    f = Feed("okx")
    for sid in (0, 1):
        f.syncs[sid] = sync_for(OKX, "BTC-USDT", "BTCUSDT")
        f.snapshot(sid, snap(500))
    f.delta(0, delta(500, 510))
    f.delta(0, delta(510, 3))  # maintenance reset: seqId below prevSeqId
    f.delta(1, delta(500, 510))
    f.delta(1, delta(510, 3))
    f.delta(1, delta(3, 7))
    f.delta(0, delta(3, 7))
    assert f.kinds() == ["snapshot", "valid", "delta", "delta", "delta"]


def test_without_sequences_the_owner_publishes_and_a_standby_takes_over_with_its_book() -> None:
    f = Feed("kraken")
    for sid in (0, 1):
        f.syncs[sid] = sync_for(KRAKEN, "BTC-USDT", "BTCUSDT")
        f.snapshot(sid, snap(None))
    f.delta(0, delta(None, None, "10", "4"))
    f.delta(1, delta(None, None, "10", "4"))
    f.close(0)
    f.delta(1, delta(None, None, "10", "5"))
    assert f.kinds() == ["snapshot", "valid", "delta", "snapshot", "delta"]
    handed = f.published[3]
    assert isinstance(handed, BookSnapshot) and handed.bids == (("10", "4"),)


def test_trades_are_published_once_per_id() -> None:
    arbiter = Arbiter(BINANCE.sequence_rule)
    trades = [Trade("x", "BTC-USDT", "BTCUSDT", str(i), "1", "1", "buy", 0, 0) for i in (1, 2, 2, 3, 1)]
    assert [arbiter.trade(t) for t in trades] == [True, True, False, True, False]
    other = Trade("x", "ETH-USDT", "ETHUSDT", "1", "1", "1", "buy", 0, 0)
    assert arbiter.trade(other)  # ids are per symbol


def test_a_snapshot_the_owners_stream_sends_while_live_replaces_the_published_book() -> None:
    """Bybit re-sends a snapshot after trouble on its side, and restarts its ids at 1: consumers get
    the new book, and the chain continues from its id; another session's copy is not published."""
    f = Feed("bybit")
    f.snapshot(0, snap(500))
    f.snapshot(1, snap(500))
    f.delta(0, delta(501, 501))
    f.delta(1, delta(501, 501))
    restart = snap(1, (("9", "4"),), (("12", "5"),))
    f.snapshot(0, restart)
    f.snapshot(1, restart)
    f.delta(1, delta(2, 2, "9", "6"))  # either session may deliver the restarted chain first
    f.delta(0, delta(2, 2, "9", "6"))
    assert f.kinds() == ["snapshot", "valid", "delta", "snapshot", "delta"]
    assert f.published[3] == restart
    assert [e.seq for e in f.published if isinstance(e, BookDelta)] == [501, 2]
