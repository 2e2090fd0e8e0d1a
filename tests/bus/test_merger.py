"""The merger against real ZeroMQ sockets and a real Redis."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from bus.merger import Merger, MergerStats, SequenceChecker
from bus.publisher import Publisher
from ingest.events import Trade


def _trade(i: int, symbol: str = "BTC-USDT") -> Trade:
    return Trade("binance", symbol, symbol.replace("-", ""), str(i), "10.5", "1", "buy", i, i)


def test_sequence_checker_reports_holes_and_restarts() -> None:
    stats = MergerStats()
    check = SequenceChecker(stats)
    assert check.see(0, 7, 1) is None
    assert check.see(0, 7, 2) is None
    assert check.see(0, 7, 5) == (3, 4)
    assert check.see(0, 9, 1) is None  # a new epoch: the shard restarted
    assert stats.restarts_seen == 1
    assert check.see(1, 3, 4) == (1, 3)  # joined late: the first three were never seen


def test_merges_two_shards_detects_a_hole_and_drains(tmp_path: Path, redis_client: redis.Redis) -> None:
    endpoints = [f"ipc://{tmp_path}/bus-{i}.sock" for i in range(2)]
    pubs = [Publisher(ep, i) for i, ep in enumerate(endpoints)]
    url = f"redis://127.0.0.1:{redis_client.connection_pool.connection_kwargs['port']}/0"
    merger = Merger(endpoints, redis.Redis.from_url(url), "md", 10_000, 100, 0.005)
    thread = threading.Thread(target=merger.run, args=(10.0,))
    thread.start()
    assert all(p.wait_for_subscriber(5.0) for p in pubs)
    for i in range(1, 301):
        pubs[0].publish(_trade(i, "BTC-USDT"))
        pubs[1].publish(_trade(i, "ETH-USDT"))
        if i == 150:
            pubs[1].seq += 2  # two frames "lost" on the way: the merger must see the hole
    for p in pubs:
        p.close(5.0)
    merger.request_stop()
    thread.join(15)
    assert not thread.is_alive()
    ids = lambda key: [int(f[b"trade_id"]) for _, f in redis_client.xrange(key)]  # noqa: E731
    assert ids("md:trade:binance:BTC-USDT") == list(range(1, 301))
    assert ids("md:trade:binance:ETH-USDT") == list(range(1, 301))
    assert merger.stats.holes == 1 and merger.stats.missing == 2
    assert merger.stats.written == 600
    checkpoint = redis_client.hgetall("md:checkpoint")
    assert checkpoint[b"0"] == f"{pubs[0].epoch}:300".encode()
    assert checkpoint[b"1"] == f"{pubs[1].epoch}:302".encode()
    assert all(t.ended for t in merger.stats.shards.values())


def test_frames_lost_just_before_the_end_marker_are_a_hole(tmp_path: Path, redis_client: redis.Redis) -> None:
    endpoint = f"ipc://{tmp_path}/bus-0.sock"
    pub = Publisher(endpoint, 0)
    url = f"redis://127.0.0.1:{redis_client.connection_pool.connection_kwargs['port']}/0"
    merger = Merger([endpoint], redis.Redis.from_url(url), "md", 10_000, 100, 0.005)
    thread = threading.Thread(target=merger.run, args=(10.0,))
    thread.start()
    assert pub.wait_for_subscriber(5.0)
    for i in range(1, 6):
        pub.publish(_trade(i))
    pub.seq += 3  # the last three frames never reach the merger; only the end marker does
    pub.close(5.0)
    merger.request_stop()
    thread.join(15)
    assert [int(f[b"trade_id"]) for _, f in redis_client.xrange("md:trade:binance:BTC-USDT")] == [1, 2, 3, 4, 5]
    assert (merger.stats.holes, merger.stats.missing) == (1, 3)
    assert merger.stats.shards[0].ended and merger.stats.shards[0].last_seq == 8
