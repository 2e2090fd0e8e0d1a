"""The merger under faults, with real processes, ZeroMQ sockets and redis-servers: killed and started
again, Redis stopped and started again, an outage longer than the buffer."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import multiprocess as mp
import pytest
import redis

from bus.embedded_redis import EmbeddedRedis
from bus.merger import Merger, run_merger
from bus.publisher import Publisher
from ingest.events import Trade

_ctx = mp.get_context("spawn")


def _trade(i: int) -> Trade:
    return Trade("binance", "BTC-USDT", "BTCUSDT", str(i), "10.5", "1", "buy", i, i)


def _ids(client: redis.Redis) -> list[int]:
    return [int(f[b"trade_id"]) for _, f in client.xrange("md:trade:binance:BTC-USDT")]


def _until(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


class Shard(threading.Thread):
    """A shard stand-in publishing ``total`` trades in bursts, one bus batch each (batch ``b`` holds
    trades ``(b - 1) * burst + 1 .. b * burst``), while serving repairs (one thread owns the publisher,
    as a shard's event loop does); ``gate`` pauses it; it ends when the merger has acknowledged its
    end marker."""

    def __init__(self, tmp: Path, total: int, burst: int = 50, pause: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pub = Publisher(f"ipc://{tmp}/bus-0.sock", 0, repair_endpoint=f"ipc://{tmp}/rep-0.sock")
        self.total, self.burst, self.pause = total, burst, pause
        self.gate = threading.Event()
        self.gate.set()
        self.done = threading.Event()

    def run(self) -> None:
        i = 0
        while i < self.total:
            self.gate.wait()
            for _ in range(min(self.burst, self.total - i)):
                i += 1
                self.pub.add(_trade(i))
            self.pub.flush()
            self.pub.serve_repairs()
            time.sleep(self.pause)
        self.pub.send_end()
        deadline = time.monotonic() + 60
        while not self.pub.end_acked and time.monotonic() < deadline:
            self.pub.serve_repairs()
            time.sleep(0.002)
        self.pub.close(2.0)
        self.done.set()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own (these tests stop it), append-only, fsync on every write."""
    server = EmbeddedRedis(tmp_path / "redis", fsync_always=True).start()
    yield server
    server.stop()


def _client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=2.0, socket_connect_timeout=1.0)


def _merger_process(tmp: Path, url: str) -> mp.Process:
    args = ([f"ipc://{tmp}/bus-0.sock"], url, "md", 1_000_000, 200, 0.005, 20.0, "info", "json")
    proc = _ctx.Process(target=run_merger, args=args, kwargs={"repair_endpoints": [f"ipc://{tmp}/rep-0.sock"]})
    proc.start()
    return proc


def _checkpoint_seq(client: redis.Redis) -> int:
    raw = client.hget("md:checkpoint", "0")
    return 0 if raw is None else int(raw.split(b":")[1])


def test_a_killed_merger_resumes_from_its_checkpoint_with_no_loss_and_no_duplicate(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    url = redis_server.url
    shard = Shard(tmp_path, total=20_000)
    merger = _merger_process(tmp_path, url)
    assert shard.pub.wait_for_subscriber(30)
    shard.start()
    _until(lambda: _checkpoint_seq(redis_client) >= 60)  # batches of 50
    os.kill(merger.pid, signal.SIGKILL)  # mid-stream: the shard keeps publishing to no one
    merger.join(10)
    written_before = _checkpoint_seq(redis_client)
    _until(lambda: shard.pub.seq >= written_before + 40)  # batches the bus dropped while it was down
    merger = _merger_process(tmp_path, url)
    assert shard.done.wait(120), "the restarted merger never acknowledged the end marker"
    merger.terminate()
    merger.join(30)
    assert merger.exitcode == 0
    assert _ids(redis_client) == list(range(1, 20_001))  # every trade once, in order
    stats = {k.decode(): v.decode() for k, v in redis_client.hgetall("md:merger").items()}
    assert stats["lost"] == "0" and int(stats["repaired"]) > 0 and stats["written"] == str(20_000 - written_before * 50)


def test_redis_down_for_a_while_then_back_loses_nothing(tmp_path: Path, own_redis: EmbeddedRedis) -> None:
    client = _client(own_redis)
    shard = Shard(tmp_path, total=6_000, burst=20, pause=0.005)
    merger = Merger([f"ipc://{tmp_path}/bus-0.sock"], _client(own_redis), "md", 1_000_000, 200, 0.005,
                    repair_endpoints=[f"ipc://{tmp_path}/rep-0.sock"], outage_buffer=100_000)  # fmt: skip
    thread = threading.Thread(target=merger.run, args=(30.0,), daemon=True)
    thread.start()
    assert shard.pub.wait_for_subscriber(30)
    shard.start()
    _until(lambda: merger.stats.written >= 500)
    own_redis.stop()
    received = merger.stats.received
    _until(lambda: merger.stats.received >= received + 1_000)  # the merger keeps reading the bus
    assert merger.outbox.up is False and len(merger.outbox) > 0
    own_redis.start()  # same port, same append-only data
    assert shard.done.wait(120)
    merger.request_stop()
    thread.join(60)
    assert not thread.is_alive()
    assert _ids(client) == list(range(1, 6_001))
    st = merger.stats
    assert st.redis_outages >= 1 and st.dropped == 0 and st.lost == 0 and st.written == 6_000
    assert client.hget("md:merger", "redis_outages") == str(st.redis_outages).encode()


def test_an_outage_longer_than_the_buffer_drops_the_oldest_as_counted_gaps(
    tmp_path: Path, own_redis: EmbeddedRedis
) -> None:
    client = _client(own_redis)
    shard = Shard(tmp_path, total=3_000)
    merger = Merger([f"ipc://{tmp_path}/bus-0.sock"], _client(own_redis), "md", 1_000_000, 100, 0.005,
                    repair_endpoints=[f"ipc://{tmp_path}/rep-0.sock"], outage_buffer=500)  # fmt: skip
    thread = threading.Thread(target=merger.run, args=(30.0,), daemon=True)
    thread.start()
    assert shard.pub.wait_for_subscriber(30)
    shard.gate.clear()
    shard.start()
    own_redis.stop()  # before the first frame: everything waits in the outbox
    shard.gate.set()
    _until(lambda: merger.stats.received >= 3_000)  # 60 batches of 50; the buffer holds 500 events
    own_redis.start()
    assert shard.done.wait(120)
    merger.request_stop()
    thread.join(60)
    assert not thread.is_alive()
    ids = _ids(client)
    st = merger.stats
    assert st.dropped > 0 and st.written == len(ids) and st.written + st.dropped == 3_000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    gaps = [{k.decode(): v.decode() for k, v in f.items()} for _, f in client.xrange("md:gaps")]
    batches = [q for g in gaps for q in range(int(g["first_seq"]), int(g["last_seq"]) + 1)]
    dropped = {i for q in batches for i in range(q * 50 - 49, q * 50 + 1)}  # whole batches of 50
    assert sum(int(g["count"]) for g in gaps) == len(batches) and len(dropped) == st.dropped
    assert sum(int(g["events"]) for g in gaps) == st.dropped
    assert dropped | set(ids) == set(range(1, 3_001)) and not dropped & set(ids)
    assert all(g["reason"] == "redis outage longer than the buffer" for g in gaps)
