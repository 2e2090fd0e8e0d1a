"""The private redis-server: append-only with fsync on every write when asked, and its append-only
file rewritten less often than Redis's default (see `bus.embedded_redis`)."""

from __future__ import annotations

from pathlib import Path

import redis

from bus.embedded_redis import EmbeddedRedis


def test_it_runs_append_only_with_the_rewrite_thresholds_and_keeps_data_across_a_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", fsync_always=True).start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        config = client.config_get("*aof*") | client.config_get("append*")
        assert config["appendonly"] == "yes" and config["appendfsync"] == "always"
        assert config["auto-aof-rewrite-percentage"] == "400"
        assert config["auto-aof-rewrite-min-size"] == str(256 * 2**20)
        client.xadd("md:trade:x:BTC-USDT", {"price": "100.5"})
        client.close()
        port = server.port
        server.stop()
        server = EmbeddedRedis(tmp_path / "redis", port=port, fsync_always=True).start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        [(_, fields)] = client.xrange("md:trade:x:BTC-USDT")
        assert fields == {"price": "100.5"}
        client.close()
    finally:
        server.stop()
