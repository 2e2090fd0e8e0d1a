"""Stream readers, consumer groups and the live book against a real Redis."""

from __future__ import annotations

import time

import redis

from bus import wire
from bus.consumer import Entry, Group, LiveBook, StreamReader, stream_key
from bus.streams import StreamWriter
from ingest.events import BookDelta, BookSnapshot, BookStatus, Event, Trade

KEY = stream_key("trade", "binance", "BTC-USDT")
BOOK = ("binance", "BTC-USDT", "BTCUSDT")


def _trade(i: int) -> Trade:
    return Trade("binance", "BTC-USDT", "BTCUSDT", str(i), "1.5", "2", "buy", i, i)


def _write(client: redis.Redis, events: list[Event], maxlen: int = 10**6) -> None:
    writer = StreamWriter(client, "md", maxlen=maxlen)
    writer.write([wire.batch_body([wire.encode(e) for e in events])], [])


def _ids(entries: list[Entry]) -> list[str]:
    return [e.event.trade_id for e in entries if isinstance(e.event, Trade)]


def test_a_reader_from_the_latest_misses_nothing_written_after_it_was_made(redis_client: redis.Redis) -> None:
    _write(redis_client, [_trade(1), _trade(2)])
    latest = StreamReader(redis_client, [KEY])
    whole = StreamReader(redis_client, [KEY], start="0")
    _write(redis_client, [_trade(3)])
    _write(redis_client, [_trade(4)])
    assert _ids(latest.read(block=None)) == ["3", "4"]
    assert latest.read(block=0.05) == []
    assert _ids(whole.read(count=3, block=None)) == ["1", "2", "3"]
    after = StreamReader(redis_client, [KEY], start=whole.positions[KEY])
    assert _ids(after.read(block=None)) == ["4"]


def test_a_group_member_gets_its_unacked_entries_back_after_a_restart(redis_client: redis.Redis) -> None:
    _write(redis_client, [_trade(1)])
    g = Group(redis_client, "g", "w1", [KEY], start="0")
    _write(redis_client, [_trade(2), _trade(3)])
    first = g.read(count=2, block=None)
    assert _ids(first) == ["1", "2"]
    g.ack(first[0])  # w1 "dies" after processing 1 and before acking 2
    again = Group(redis_client, "g", "w1", [KEY])  # the same consumer started again: the group keeps its place
    assert _ids(again.read(block=None)) == ["2"]
    assert _ids(again.read(block=None)) == ["3"]
    assert again.pending() == {KEY: 2}
    assert again.read(block=0.05) == []


def test_claim_takes_over_what_a_dead_consumer_left_pending(redis_client: redis.Redis) -> None:
    _write(redis_client, [_trade(1), _trade(2), _trade(3)])
    dead = Group(redis_client, "g", "dead", [KEY], start="0")
    assert _ids(dead.read(count=2, block=None)) == ["1", "2"]
    other = Group(redis_client, "g", "other", [KEY])
    assert other.claim(min_idle=60.0) == []  # not idle long enough
    time.sleep(0.05)
    claimed = other.claim(min_idle=0.01)
    assert _ids(claimed) == ["1", "2"]
    assert other.ack(*claimed) == 2
    assert _ids(other.read(block=None)) == ["3"]


def test_entries_trimmed_before_processing_are_counted_not_returned(redis_client: redis.Redis) -> None:
    g = Group(redis_client, "g", "w", [KEY], start="0")
    _write(redis_client, [_trade(1), _trade(2)])
    assert _ids(g.read(block=None)) == ["1", "2"]
    redis_client.xtrim(KEY, maxlen=1, approximate=False)
    again = Group(redis_client, "g", "w", [KEY])
    assert _ids(again.read(block=None)) == ["2"]
    assert again.trimmed == 1


def test_the_live_book_starts_at_the_newest_snapshot_and_follows_statuses(redis_client: redis.Redis) -> None:
    _write(redis_client, [
        BookSnapshot(*BOOK, (("9", "1"),), (("11", "1"),), 1, 0, 0),
        BookDelta(*BOOK, (("9.5", "2"),), (), 2, 2, 0, 0),
        BookSnapshot(*BOOK, (("10", "3"), ("9", "1")), (("12", "4"),), 7, 0, 0),
        BookDelta(*BOOK, (("9", "0"),), (("11.5", "5"),), 8, 8, 0, 0),
    ])  # fmt: skip
    book = LiveBook(redis_client, "binance", "BTC-USDT").load()
    assert book.valid and book.seq == 8
    assert book.depth() == ([("10", "3")], [("11.5", "5"), ("12", "4")])
    _write(redis_client, [BookStatus(*BOOK, "resyncing", "gap", None, None, 0),
                          BookDelta(*BOOK, (), (("12", "0"),), 9, 9, 0, 0)])  # fmt: skip
    assert book.update() == 2
    assert not book.valid and book.best() == (("10", "3"), ("11.5", "5"))
    _write(redis_client, [BookSnapshot(*BOOK, (("8", "1"),), (("13", "1"),), 20, 0, 0)])
    events = book.follow(block=0.05)
    assert isinstance(next(events), BookSnapshot)
    assert book.valid and book.depth(1) == ([("8", "1")], [("13", "1")])


def test_a_live_book_without_a_snapshot_waits_for_one(redis_client: redis.Redis) -> None:
    _write(redis_client, [BookDelta(*BOOK, (("9", "1"),), (), 2, 2, 0, 0)])
    book = LiveBook(redis_client, "binance", "BTC-USDT").load()
    assert not book.valid and book.depth() == ([], [])
    _write(redis_client, [BookSnapshot(*BOOK, (("8", "1"),), (), 3, 0, 0),
                          BookDelta(*BOOK, (("8", "2"),), (), 4, 4, 0, 0)])  # fmt: skip
    assert book.update() == 2 and book.valid and book.best() == (("8", "2"), None)
