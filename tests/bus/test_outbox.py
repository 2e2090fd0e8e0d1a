"""The merger's outbox against a real redis-server that goes away and comes back, and its bounds in events."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import redis

from bus.embedded_redis import EmbeddedRedis
from bus.outbox import Entry, Outbox
from bus.streams import StreamWriter, entry

KEY = "md:trade:binance:BTC-USDT"


def _entry(seq: int, events: int = 1) -> Entry:
    """Bus batch ``seq`` of ``events`` trades, ids ``seq*100 ..`` (one trade: id ``seq``)."""
    ids = [seq] if events == 1 else range(seq * 100, seq * 100 + events)
    body = b",".join(entry("trade:binance:BTC-USDT", orjson.dumps(["type", "trade", "trade_id", str(i)])) for i in ids)
    return Entry(body, 0, 9, seq, events)


def _ids(client: redis.Redis) -> list[int]:
    return [int(f[b"trade_id"]) for _, f in client.xrange(KEY)]


def test_a_batch_whose_write_landed_but_whose_reply_was_lost_is_not_written_twice(tmp_path: Path) -> None:
    """The failed batch is retried exactly as it was, even when more entries queued meanwhile, so the
    script recognises it by its checkpoint. Here the lost reply is made certain: the batch is
    written to Redis directly, as the failed call would have done on the server side."""
    server = EmbeddedRedis(tmp_path / "redis", fsync_always=True).start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=1.0, socket_connect_timeout=0.5)
        writer = StreamWriter(client, "md", 1000)
        outbox = Outbox(writer, batch_size=100, limit=1000)
        server.stop()
        for seq in (1, 2, 3):
            outbox.add(_entry(seq))
        assert outbox.flush(time.monotonic(), budget_s=1.0) is False  # Redis is down
        server.start()
        writer.write([e.body for e in list(outbox.queue)], ["0", "9:3"])  # it had landed
        for seq in (4, 5, 6, 7, 8):
            outbox.add(_entry(seq))
        while outbox.queue:
            outbox.flush(time.monotonic() + 10, budget_s=1.0)
        assert _ids(client) == list(range(1, 9))
        assert outbox.skipped_rewrites == 1
    finally:
        server.stop()


def test_writes_take_whole_batches_up_to_batch_size_events(redis_client: redis.Redis) -> None:
    outbox = Outbox(StreamWriter(redis_client, "md", 10_000), batch_size=10, limit=1000)
    for seq, events in ((1, 4), (2, 4), (3, 4), (4, 30), (5, 1)):
        outbox.add(_entry(seq, events))
    assert outbox.events == 43
    assert outbox.flush(time.monotonic(), budget_s=5.0)
    # writes of 8 (4+4; a third batch would pass 10), 4, 30 (one batch larger than batch_size), 1 events
    assert outbox.batches == 4 and outbox.written == 43 and outbox.events == 0
    assert _ids(redis_client) == [*range(100, 104), *range(200, 204), *range(300, 304), *range(400, 430), 5]
    assert redis_client.hget("md:checkpoint", "0") == b"9:5"
    assert outbox.batch_sizes[:3] == [0, 3, 1]  # events per write: 8, 4 and 1 in [1, 10), 30 in [10, 50)
