"""The verifier's Redis readers against a real Redis."""

from __future__ import annotations

import dataclasses

import redis

from bus import wire
from bus.streams import StreamWriter
from ingest.bars import MINUTE_NS, bar_of
from ingest.events import Bar, BookDelta, BookSnapshot, BookStatus, Trade, TradeGap
from tools.sim.truth import GroundTruth, TruthBook, TruthTrade
from tools.verify import PAGE, caught_up, rebuild_book, stream_entries, verify

KEY = "md:trade:binance:BTC-USDT"


def _write(client: redis.Redis, events: list[object]) -> None:
    writer = StreamWriter(client, "md", maxlen=10**6)
    for start in range(0, len(events), 1000):
        batch = [wire.encode(e) for e in events[start : start + 1000]]  # type: ignore[arg-type]
        writer.write([wire.batch_body(batch)], [])


def _trade(i: int) -> Trade:
    return Trade("binance", "BTC-USDT", "BTCUSDT", str(i), "1.5", "2", "buy", i, i)


def test_stream_entries_reads_every_page_once_in_order(redis_client: redis.Redis) -> None:
    n = 2 * PAGE + 7
    _write(redis_client, [_trade(i) for i in range(1, n + 1)])
    ids = [int(f["trade_id"]) for f in stream_entries(redis_client, KEY)]
    assert ids == list(range(1, n + 1))
    middle = redis_client.xrange(KEY, count=PAGE + 1)[-1][0].decode()
    assert [int(f["trade_id"]) for f in stream_entries(redis_client, KEY, middle)] == list(range(PAGE + 1, n + 1))


def test_rebuild_book_uses_the_last_snapshot_and_the_deltas_after_it(redis_client: redis.Redis) -> None:
    args = ("binance", "BTC-USDT", "BTCUSDT")
    _write(redis_client, [
        BookSnapshot(*args, (("9", "1"),), (("11", "1"),), 1, 0, 0),
        BookDelta(*args, (("9.5", "2"),), (), 2, 2, 0, 0),
        BookStatus(*args, "resyncing", "gap", None, None, 0),
        BookSnapshot(*args, (("10", "3"), ("9", "1")), (("12", "4"),), 7, 0, 0),
        BookDelta(*args, (("9", "0"),), (("11.5", "5"),), 8, 8, 0, 0),
    ])  # fmt: skip
    book = rebuild_book(redis_client, "md:book:binance:BTC-USDT")
    assert book.depth() == ([("10", "3")], [("11.5", "5"), ("12", "4")])


def test_verify_finds_lost_duplicated_reordered_and_wrong_trades_and_books(redis_client: redis.Redis) -> None:
    wrong_price = Trade("binance", "BTC-USDT", "BTCUSDT", "2", "9", "2", "buy", 2, 2)
    _write(redis_client, [_trade(1), _trade(3), wrong_price, _trade(3)])
    truth = GroundTruth(
        trades={("binance", "BTC-USDT"): [TruthTrade(i, "1.5", "2", "buy", i) for i in (1, 2, 3, 4)]},
        books={("binance", "BTC-USDT"): TruthBook(1, (("1", "1"),), ())},
    )
    result = verify(redis_client, "md", truth)
    assert result == {
        "verified": False, "trades_expected": 4, "trades_found": 3, "lost": 1, "duplicated": 1,
        "out_of_order": 1, "trades_mismatched": 1, "lost_reported": 0, "gaps_false": 0,
        "books_checked": 1, "books_mismatched": 1, "bars_checked": 0, "bars_mismatched": 0,
    }  # fmt: skip


def test_verify_counts_reported_gaps_apart_and_catches_false_ones(redis_client: redis.Redis) -> None:
    """Trades inside a published gap are reported losses, not silent ones; a gap over trades that are
    in the stream, or over ids that were never trades, is false."""
    args = ("binance", "BTC-USDT", "BTCUSDT")
    _write(redis_client, [
        _trade(1), TradeGap(*args, 2, 3, "not in the trade history", 0), _trade(4),
        TradeGap(*args, 4, 4, "wrong", 0), _trade(5), TradeGap(*args, 9, 9, "never a trade", 0),
    ])  # fmt: skip
    truth = GroundTruth(
        trades={("binance", "BTC-USDT"): [TruthTrade(i, "1.5", "2", "buy", i) for i in (1, 2, 3, 4, 5, 6)]},
        books={},
    )
    result = verify(redis_client, "md", truth)
    assert (result["lost"], result["lost_reported"], result["gaps_false"]) == (1, 2, 2)


M0 = 1_700_000_040_000_000_000  # a minute's first nanosecond
SEC = 1_000_000_000


def _bar_of(*rows: tuple[int, str, str, int]) -> Bar:
    return bar_of(Trade("binance", "BTC-USDT", "BTCUSDT", str(i), p, q, "buy", ts, 0) for i, p, q, ts in rows)


def test_verify_compares_the_newest_bar_of_each_minute_with_the_truth(redis_client: redis.Redis) -> None:
    rows = [(1, "10", "1", M0 + SEC), (2, "12", "2", M0 + 50 * SEC), (3, "11", "1", M0 + MINUTE_NS + SEC),
            (4, "9", "1", M0 + 2 * MINUTE_NS + SEC), (5, "9.5", "3", M0 + 3 * MINUTE_NS)]  # fmt: skip
    trades = [Trade("binance", "BTC-USDT", "BTCUSDT", str(i), p, q, "buy", ts, 0) for i, p, q, ts in rows]
    first = _bar_of(rows[0])  # minute 0 published without trade 2, then revised: the revision counts
    revised = dataclasses.replace(_bar_of(*rows[:2]), revision=1)
    wrong = dataclasses.replace(_bar_of(rows[2]), high="11.5")  # minute 1: a wrong high
    _write(redis_client, [*trades, first, revised, wrong])  # minute 2 ended before the freeze: missing
    truth = GroundTruth(
        trades={("binance", "BTC-USDT"): [TruthTrade(i, p, q, "buy", ts) for i, p, q, ts in rows]},
        books={}, frozen=True, frozen_ts=M0 + 3 * MINUTE_NS + 5 * SEC,
    )  # fmt: skip
    result = verify(redis_client, "md", truth, bar_grace=2.0)
    assert (result["bars_checked"], result["bars_mismatched"]) == (3, 2)
    assert not caught_up(redis_client, "md", truth, bar_grace=2.0)  # the bar of minute 2 is not there
    _write(redis_client, [_bar_of(rows[3]), dataclasses.replace(wrong, high="11", revision=1)])
    assert caught_up(redis_client, "md", truth, bar_grace=2.0)
    result = verify(redis_client, "md", truth, bar_grace=2.0)
    assert (result["bars_checked"], result["bars_mismatched"]) == (3, 0)
    _write(redis_client, [dataclasses.replace(_bar_of(rows[3]), start=M0 + 9 * MINUTE_NS)])  # no trades then
    assert verify(redis_client, "md", truth, bar_grace=2.0)["bars_mismatched"] == 1
    assert verify(redis_client, "md", truth)["bars_checked"] == 0  # bars disabled: not checked


def test_caught_up_takes_a_book_whose_ids_are_its_own_once_its_content_equals_the_truth(
    redis_client: redis.Redis,
) -> None:
    """A book at or past the truth's update id is caught up; one with ids of the exchange's own (below
    the market's id, like Bybit's per-topic ``u``) is caught up once its levels equal the truth's."""
    args = ("bybit", "BTC-USDT", "BTCUSDT")
    truth = GroundTruth(trades={}, books={("bybit", "BTC-USDT"): TruthBook(500, (("10", "2"),), (("11", "1"),))})
    _write(redis_client, [BookSnapshot(*args, (("10", "1"),), (("11", "1"),), 1, 0, 0)])
    assert not caught_up(redis_client, "md", truth)
    _write(redis_client, [BookDelta(*args, (("10", "2"),), (), 2, 2, 0, 0)])
    assert caught_up(redis_client, "md", truth)
    other = GroundTruth(trades={}, books={("binance", "ETH-USDT"): TruthBook(7, (("1", "1"),), ())})
    _write(redis_client, [BookSnapshot("binance", "ETH-USDT", "ETHUSDT", (("1", "9"),), (), 7, 0, 0)])
    assert caught_up(redis_client, "md", other)  # its id has reached the truth's: content is not read
