"""The merger's outbox against a real redis-server that goes away and comes back."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import redis

from bus.embedded_redis import EmbeddedRedis
from bus.outbox import Entry, Outbox
from bus.streams import StreamWriter

KEY = "md:trade:binance:BTC-USDT"


def _entry(seq: int) -> Entry:
    return Entry(KEY, orjson.dumps(["type", "trade", "trade_id", str(seq)]), 0, 9, seq)


def test_a_batch_whose_write_landed_but_whose_reply_was_lost_is_not_written_twice(tmp_path: Path) -> None:
    """The failed batch is retried exactly as it was, even when more entries queued meanwhile, so the
    script recognises it by its checkpoint. Here the lost reply is made certain: the batch is
    written to Redis directly, as the failed call would have done on the server side."""
    server = EmbeddedRedis(tmp_path / "redis", fsync_always=True).start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=1.0, socket_connect_timeout=0.5)
        writer = StreamWriter(client, "md", 1000)
        outbox = Outbox(writer, batch_size=100, limit=1000, gaps_key="md:gaps")
        server.stop()
        for seq in (1, 2, 3):
            outbox.add(_entry(seq))
        assert outbox.flush(time.monotonic(), budget_s=1.0) is False  # Redis is down
        server.start()
        writer.write([(e.key, e.body) for e in list(outbox.queue)], ["0", "9:3"])  # it had landed
        for seq in (4, 5, 6, 7, 8):
            outbox.add(_entry(seq))
        while outbox.queue:
            outbox.flush(time.monotonic() + 10, budget_s=1.0)
        ids = [int(f[b"trade_id"]) for _, f in client.xrange(KEY)]
        assert ids == list(range(1, 9))
        assert outbox.skipped_rewrites == 1
    finally:
        server.stop()
