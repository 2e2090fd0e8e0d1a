from __future__ import annotations

import redis

from bus import wire
from bus.streams import ENTRY_BYTES, StreamWriter, checkpoint_key, entry, memory_bound, memory_warning, redis_memory
from ingest.events import BookDelta, Trade


def test_batch_lands_in_order_with_checkpoint(redis_client: redis.Redis) -> None:
    writer = StreamWriter(redis_client, "md", maxlen=1000)
    events = [
        Trade("binance", "BTC-USDT", "BTCUSDT", str(i), "1.5", "2", "buy", i, i + 1) for i in range(1, 6)
    ] + [BookDelta("binance", "BTC-USDT", "BTCUSDT", (("1.4", "0"),), (("1.6", "3.25"),), 10, 11, 1, 2)]
    encoded = [wire.encode(e) for e in events]
    batches = [wire.batch_body(encoded[:4]), wire.batch_body(encoded[4:])]  # as two bus batches come
    assert writer.write(batches, ["0", "42:6"]) == 6
    trades = redis_client.xrange("md:trade:binance:BTC-USDT")
    assert [f[b"trade_id"] for _, f in trades] == [b"1", b"2", b"3", b"4", b"5"]
    (_, book_fields), = redis_client.xrange("md:book:binance:BTC-USDT")
    decoded = wire.decode_fields({k.decode(): v.decode() for k, v in book_fields.items()})
    assert decoded == events[-1]
    assert redis_client.hgetall(checkpoint_key("md")) == {b"0": b"42:6"}


def test_maxlen_trims_approximately(redis_client: redis.Redis) -> None:
    writer = StreamWriter(redis_client, "md", maxlen=100)
    ev = Trade("binance", "BTC-USDT", "BTCUSDT", "1", "1", "1", "buy", 1, 1)
    one = entry("trade:binance:BTC-USDT", wire.encode(ev)[1])
    for _ in range(10):
        writer.write([one] * 100, [])
    length = redis_client.xlen("md:trade:binance:BTC-USDT")
    assert 100 <= length < 1000


def test_entries_go_under_the_writers_prefix_and_empty_batches_are_skipped(redis_client: redis.Redis) -> None:
    writer = StreamWriter(redis_client, "other", maxlen=1000)
    ev = Trade("okx", "ETH-USDT", "ETH-USDT", "7", "1", "1", "sell", 1, 1)
    assert writer.write([b"", wire.batch_body([wire.encode(ev)]), b""], []) == 1
    (_, fields), = redis_client.xrange("other:trade:okx:ETH-USDT")
    assert wire.decode_fields({k.decode(): v.decode() for k, v in fields.items()}) == ev


def test_memory_bound_and_when_it_warns() -> None:
    assert memory_bound(302, 100_000) == 302 * 100_000 * ENTRY_BYTES
    # 302 streams x 100k entries (~3.9 GB) fit in half of 24 GB; x 1M (~39 GB) do not.
    assert memory_warning(302, 100_000, 0, 24 * 10**9) is None
    why = memory_warning(302, 1_000_000, 0, 24 * 10**9)
    assert why is not None
    assert why.startswith("302 streams of up to 1,000,000 entries (redis.maxlen) take ~39.3 GB in Redis once full")
    assert "the memory of its host (24.0 GB)" in why
    assert why.endswith(f"lower redis.maxlen to about {12 * 10**9 // (302 * ENTRY_BYTES):,}")
    # Redis's own limit comes first; nothing known, nothing said.
    assert "its maxmemory (1.0 GB)" in (memory_warning(302, 100_000, 10**9, 24 * 10**9) or "")
    assert memory_warning(302, 10**9, 0, 0) is None


def test_redis_memory_reads_the_servers_limit_and_host(redis_client: redis.Redis) -> None:
    assert redis_memory(redis_client)[0] == 0
    redis_client.config_set("maxmemory", str(64 << 20))
    try:
        maxmemory, system = redis_memory(redis_client)
    finally:
        redis_client.config_set("maxmemory", "0")
    assert maxmemory == 64 << 20
    assert system > 10**9  # the test machine's memory, as Redis reads it
