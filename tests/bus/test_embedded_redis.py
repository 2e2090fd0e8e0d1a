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


def test_its_url_is_a_unix_socket_and_its_port_answers_too(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        assert server.url == f"unix://{tmp_path / 'redis' / 'redis.sock'}?db=0"
        over_socket = redis.Redis.from_url(server.url)
        over_socket.set("k", "v")
        over_tcp = redis.Redis.from_url(server.tcp_url)
        assert over_tcp.get("k") == b"v"
        assert "U" in over_socket.client_info()["flags"]  # Redis's flag for a Unix socket client
        assert "U" not in over_tcp.client_info()["flags"]
        over_socket.close()
        over_tcp.close()
    finally:
        server.stop()


def test_a_data_folder_too_deep_for_a_socket_address_gets_tcp_only(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    server = EmbeddedRedis(deep).start()
    try:
        assert server.socket_path is None and server.url == server.tcp_url
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        client.close()
        assert not (deep / "redis.sock").exists()
    finally:
        server.stop()
