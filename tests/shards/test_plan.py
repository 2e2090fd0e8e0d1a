from __future__ import annotations

from ingest.settings import FeedSettings
from shards.plan import make_plan

SYMS = tuple(f"S{i:02d}-USDT" for i in range(25))


def test_plan_is_deterministic_balanced_and_complete() -> None:
    feeds = [FeedSettings("binance", SYMS)]
    a = make_plan(feeds, 2)
    assert a == make_plan(list(feeds), 2)
    assert sorted(x.symbol for s in a.shards for x in s) == sorted(SYMS)
    assert abs(a.load(0) - a.load(1)) <= 4  # one symbol's weight at most
    assert {len(s) for s in a.shards} == {12, 13}


def test_every_exchange_is_spread_over_the_shards() -> None:
    feeds = [FeedSettings("binance", SYMS[:4]), FeedSettings("other", SYMS[:4], ("trades",))]
    p = make_plan(feeds, 2)
    for shard in p.shards:
        assert sum(1 for a in shard if a.exchange == "binance") == 2
        assert sum(1 for a in shard if a.exchange == "other") == 2
    assert p.shard_of("other", SYMS[0]) in (0, 1)


def test_more_shards_than_symbols_leaves_some_empty() -> None:
    p = make_plan([FeedSettings("binance", SYMS[:2])], 4)
    assert [len(s) for s in p.shards] == [1, 1, 0, 0]
