"""The script call on its own connection, against real redis-servers: URL forms, lost scripts, broken
connections, a reply that never came, error replies."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bus.embedded_redis import EmbeddedRedis, find_binary, free_port
from bus.rediscall import ScriptCall, bulk

# Pushes ARGV[1], then spins ARGV[2] empty loops (a slow call) and returns the list's length.
SCRIPT = "redis.call('RPUSH', KEYS[1], ARGV[1]) for _ = 1, tonumber(ARGV[2]) do end return redis.call('LLEN', KEYS[1])"


def _push(call: ScriptCall, value: bytes, spin: int = 0) -> int:
    return call.call(call.head(2) + bulk(value) + bulk(b"%d" % spin))


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server with a password, on a TCP port and a unix socket: (port, socket path)."""
    port, sock = free_port(), tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [find_binary(), "--port", str(port), "--bind", "127.0.0.1", "--unixsocket", str(sock),
         "--requirepass", "s3cret", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield port, sock
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("url", ["redis://:s3cret@127.0.0.1:{port}/3", "unix://:s3cret@{sock}?db=3",
                                 "redis://default:s3cret@127.0.0.1:{port}?db=3"])  # fmt: skip
def test_the_call_goes_where_the_clients_url_says(secured: tuple[int, Path], url: str) -> None:
    port, sock = secured
    client = redis.Redis.from_url(url.format(port=port, sock=sock))
    call = ScriptCall(client, SCRIPT, ["l"])
    assert _push(call, b"a") == 1
    assert _push(call, b"b\r\n$3") == 2  # an argument that looks like protocol is still one argument
    assert client.lrange("l", 0, -1) == [b"a", b"b\r\n$3"]
    assert redis.Redis(port=port, password="s3cret", db=0).exists("l") == 0  # db 3, not 0
    call.close()


def test_a_wrong_password_is_an_authentication_error(secured: tuple[int, Path]) -> None:
    call = ScriptCall(redis.Redis(port=secured[0], password="wrong"), SCRIPT, ["l"])
    with pytest.raises(redis.AuthenticationError):
        _push(call, b"a")


def test_a_flushed_script_is_loaded_again(redis_client: redis.Redis) -> None:
    call = ScriptCall(redis_client, SCRIPT, ["l"])
    assert _push(call, b"a") == 1  # never loaded: NOSCRIPT, loaded, called again
    redis_client.script_flush()
    assert _push(call, b"b") == 2
    assert redis_client.lrange("l", 0, -1) == [b"a", b"b"]


def test_an_idle_connection_that_broke_is_replaced_at_once(redis_client: redis.Redis) -> None:
    call = ScriptCall(redis_client, SCRIPT, ["l"])
    assert _push(call, b"a") == 1
    redis_client.client_kill_filter(_type="normal", skipme=True)  # as a Redis restart would
    assert _push(call, b"b") == 2
    assert redis_client.lrange("l", 0, -1) == [b"a", b"b"]


def test_a_redis_that_is_down_fails_the_call_at_once_and_a_later_call_connects(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r", appendonly=False)
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1.0)
    call = ScriptCall(client, SCRIPT, ["l"])
    with pytest.raises(redis.ConnectionError):
        _push(call, b"a")  # one attempt: no retries with back-off inside the call
    server.start()
    try:
        assert _push(call, b"b") == 1
        assert client.lrange("l", 0, -1) == [b"b"]
    finally:
        server.stop()


def test_a_reply_that_does_not_come_in_time_is_a_timeout_and_the_call_may_have_run(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    url = redis_server.url
    call = ScriptCall(redis.Redis.from_url(url, socket_timeout=0.2), SCRIPT, ["l"])
    assert _push(call, b"a") == 1
    with pytest.raises(redis.TimeoutError):
        _push(call, b"b", spin=100_000_000)  # seconds of Lua
    redis.Redis.from_url(url, socket_timeout=60).ping()  # answered once the script has run
    assert _push(call, b"c") == 3  # on a new connection; callers make a repeated call harmless
    assert redis_client.lrange("l", 0, -1) == [b"a", b"b", b"c"]


def test_an_error_reply_is_redis_pys_exception_and_the_connection_stays_usable(redis_client: redis.Redis) -> None:
    call = ScriptCall(redis_client, SCRIPT, ["l"])
    redis_client.set("l", "not a list")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        _push(call, b"a")
    redis_client.delete("l")
    assert _push(call, b"b") == 1
