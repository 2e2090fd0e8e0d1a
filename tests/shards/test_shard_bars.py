"""A restarted shard's bars: read back from a real Redis, carried on, never mixed with an earlier run."""

from __future__ import annotations

import dataclasses
import time

import redis

from bus import wire
from bus.streams import StreamWriter
from ingest.bars import MINUTE_NS, PARTIAL_END, PARTIAL_START, bar_of
from ingest.events import Bar, BookDelta, Event, Trade
from ingest.settings import BarSettings
from shards.bars import BarFeed, read_tails
from shards.plan import Assignment

T0 = 1_700_000_040_000_000_000
S = 1_000_000_000
ASSIGNED = [Assignment("binance", "BTC-USDT", ("trades", "book")), Assignment("binance", "ETH-USDT", ("trades",))]


def _trade(tid: int, price: str, at: int) -> Trade:
    return Trade("binance", "BTC-USDT", "BTCUSDT", str(tid), price, "1", "buy", at, at)


def _write(client: redis.Redis, events: list[Event]) -> None:
    writer = StreamWriter(client, "md", maxlen=10**6)
    for ev in events:  # one call each: entry ids in publication order, as the merger writes them
        writer.write([wire.batch_body([wire.encode(ev)])], [])


def test_a_restart_carries_the_open_bar_from_redis_and_ignores_an_earlier_run(redis_client: redis.Redis) -> None:
    earlier = [_trade(1, "50", T0 + 1 * S), _trade(2, "51", T0 + 2 * S)]  # a run that stopped at T0 + 3 s
    stop_bar = dataclasses.replace(bar_of(earlier), partial=PARTIAL_START | PARTIAL_END)
    t10, t11 = _trade(10, "10", T0 + 40 * S), _trade(11, "11", T0 + MINUTE_NS + S)
    t12 = _trade(12, "9", T0 + MINUTE_NS + 5 * S)
    first_bar = dataclasses.replace(bar_of([t10]), partial=PARTIAL_START)
    _write(redis_client, [*earlier, stop_bar])
    time.sleep(0.01)  # the next run starts later (stream ids of different streams compare by the ms)
    _write(redis_client, [t10, t11, first_bar, t12])  # then the shard was killed

    tails = read_tails(redis_client, "md", ASSIGNED, keep_ns=600 * S)
    assert tails == {("binance", "BTC-USDT", "BTCUSDT"): ([t10, t11, t12], [first_bar])}

    out: list[Event] = []
    feed = BarFeed(BarSettings(), out.append)
    feed.restore(tails, now=7)
    assert out == []  # the bar of the first minute in Redis is right: nothing to revise
    feed.publish(_trade(13, "12", T0 + 2 * MINUTE_NS))
    b11 = bar_of([t11, t12])
    assert out[1:] == [dataclasses.replace(b11, native="BTCUSDT", ts_recv=T0 + 2 * MINUTE_NS)]
    assert isinstance(out[1], Bar) and (out[1].open, out[1].low, out[1].close, out[1].trades) == ("11", "9", "9", 2)


def test_a_revision_the_killed_shard_did_not_get_out_is_published_on_restart(redis_client: redis.Redis) -> None:
    t1, t2, t3 = _trade(1, "10", T0 + S), _trade(3, "12", T0 + MINUTE_NS + S), _trade(2, "8", T0 + 30 * S)
    b1 = bar_of([t1])
    _write(redis_client, [t1, t2, b1, dataclasses.replace(t3, origin="backfill")])  # its revision was lost
    out: list[Event] = []
    feed = BarFeed(BarSettings(), out.append)
    feed.restore(read_tails(redis_client, "md", ASSIGNED, keep_ns=600 * S), now=9)
    assert [(b.start, b.revision, b.trades, b.low, b.backfilled) for b in out if isinstance(b, Bar)] == [
        (T0, 1, 2, "8", 1)
    ]


def test_the_book_updates_clock_moves_the_watermark_when_the_tick_reads_it() -> None:
    """Book updates go past the bars (to the publisher): the tick takes their time as the exchange's clock
    when they are newer than the last trade, and a bar closes on it; an older update changes nothing."""
    out: list[Event] = []
    feed = BarFeed(BarSettings(grace=2.0), out.append)
    t1 = _trade(1, "50", T0 + S)
    feed.publish(t1)
    old = BookDelta("binance", "BTC-USDT", "BTCUSDT", (("1", "1"),), (), 1, 1, T0 + 5 * MINUTE_NS, T0)
    feed.tick(T0 + 2 * S, [None, old])  # received before the trade: the trade's clock still holds
    assert out == [t1]
    new = dataclasses.replace(old, ts_exchange=T0 + MINUTE_NS + S, ts_recv=T0 + 2 * S)
    feed.tick(T0 + 2 * S, [new])  # still within the grace
    assert out == [t1]
    feed.tick(T0 + 3 * S, [new])  # the exchange's clock: T0 + 1 min + 2 s
    assert out[1:] == [dataclasses.replace(bar_of([t1]), partial=PARTIAL_START, ts_recv=T0 + 3 * S)]
