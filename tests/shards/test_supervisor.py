"""The supervisor with real child processes: a hung worker (SIGSTOP) is killed and restarted, a crash
loop backs off, a dead embedded Redis is started again with its data; one cluster per var_dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from structlog.testing import capture_logs

from bus.embedded_redis import EmbeddedRedis
from ingest.errors import UserError
from ingest.settings import Settings, from_dict
from shards.supervisor import Child, Cluster


def _settings(tmp: Path, redis_url: str = "embedded", **cluster: Any) -> Settings:
    raw = {
        "cluster": {"shards": 1, "heartbeat_interval": 0.2, "hang_timeout": 3.0, "restart_delay": 0.1,
                    "restart_delay_max": 0.4, "drain_timeout": 5.0, **cluster},
        "redis": {"url": redis_url},
        "log": {"format": "json"},
        # Nothing listens there: the shard's connection keeps retrying, its event loop keeps running.
        "feeds": [{"exchange": "binance", "symbols": ["BTC-USDT"], "ws_url": "ws://127.0.0.1:1",
                   "rest_url": "http://127.0.0.1:1"}],
    }  # fmt: skip
    return from_dict(raw, str(tmp / "settings.toml"))


def _supervise_until(cluster: Cluster, cond: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        cluster.check_children()
        time.sleep(0.05)


def _crash(heartbeat: Any) -> None:
    raise SystemExit(3)


def _live_and_beat(heartbeat: Any) -> None:
    while True:
        heartbeat.beat()
        time.sleep(0.05)


def test_a_hung_worker_is_killed_and_restarted(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    url = redis_server.url
    with Cluster(_settings(tmp_path, url)) as cluster:
        cluster.start()
        worker = cluster.workers[0]
        _supervise_until(cluster, lambda: time.monotonic() - worker.started_at > 1 and worker.heartbeat.age() < 0.5)
        victim = worker.pid
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)  # alive, but its event loop no longer runs
        _supervise_until(cluster, lambda: worker.restarts == 1 and worker.alive)
        assert worker.hangs == 1 and worker.pid != victim
        pids = orjson.loads((tmp_path / "var" / "pids.json").read_bytes())
        assert pids["shards"] == [worker.pid] and pids["children"]["shard-0"]["hangs"] == 1
        _supervise_until(cluster, lambda: worker.heartbeat.age() < 0.5 and time.monotonic() - worker.started_at > 1)
        assert cluster.merger is not None and cluster.merger.hangs == 0 and cluster.merger.alive


def test_a_crash_loop_backs_off_and_a_healthy_run_resets_the_delay(tmp_path: Path) -> None:
    cluster = Cluster(_settings(tmp_path))  # it makes var_dir (its lock is there)
    cluster.healthy_after = 20.0  # generous: a spawn on a loaded machine takes seconds to crash
    child = Child("crashy", _crash, ())
    cluster.workers = [child]
    child.start()
    delays = []
    while child.restarts < 5:
        _supervise_until(cluster, lambda: child.died_at is not None)
        delays.append(child.delay)
        _supervise_until(cluster, lambda: child.died_at is None)  # restarted after its delay
    assert delays[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]  # doubles from restart_delay, capped at restart_delay_max
    assert child.crash_loops == 1 and child.quick_deaths >= 5
    child.target = _live_and_beat  # the fault is gone: the next start lives
    cluster.healthy_after = 1.0
    # A start that has lived healthy_after: not one just started after a slow crash had reset the count.
    _supervise_until(cluster, lambda: child.alive and child.quick_deaths == 0
                     and time.monotonic() - child.started_at > cluster.healthy_after)  # fmt: skip
    child.proc.kill()
    _supervise_until(cluster, lambda: child.died_at is not None)
    assert child.delay == 0.1 and child.quick_deaths == 0
    child.proc.join()
    cluster._stopping = True


def test_a_dead_embedded_redis_is_started_again_with_its_data(tmp_path: Path) -> None:
    cluster = Cluster(_settings(tmp_path))
    try:
        url = cluster.start_redis()
        client = redis.Redis.from_url(url)
        client.set("kept", "yes")
        assert cluster.redis is not None and cluster.redis.proc is not None
        os.kill(cluster.redis.proc.pid, signal.SIGKILL)
        _supervise_until(cluster, lambda: cluster.redis_restarts == 1)
        assert client.get("kept") == b"yes"  # same port, and the append-only file had it
    finally:
        cluster.close()


def test_the_start_warns_when_full_streams_would_not_fit_in_redis(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    cluster = Cluster(_settings(tmp_path, redis_server.url))
    with capture_logs() as logs:
        assert cluster.check_redis_memory() is None  # 1 symbol: 5 streams of 100k entries, ~65 MB
    assert [(e["event"], e["streams"], e["maxlen"]) for e in logs] == [("redis streams bounded", 5, 100_000)]
    redis_client.config_set("maxmemory", str(64 << 20))
    try:
        with capture_logs() as logs:
            why = cluster.check_redis_memory()
    finally:
        redis_client.config_set("maxmemory", "0")
    assert why is not None and "more than half of its maxmemory (0.1 GB)" in why
    assert logs == [{"event": "redis may run out of memory", "why": why, "log_level": "warning"}]


def test_the_memory_check_is_skipped_while_redis_does_not_answer(tmp_path: Path) -> None:
    cluster = Cluster(_settings(tmp_path, "redis://127.0.0.1:1/0"))
    with capture_logs() as logs:
        assert cluster.check_redis_memory() is None
    assert logs == []


def test_a_second_cluster_on_the_same_var_dir_is_refused_until_the_first_is_closed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    holder = subprocess.Popen(  # another process's cluster, as far as the lock goes
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from shards.supervisor import lock_var_dir;"
         f"lock_var_dir(Path({str(settings.var_path)!r})); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(UserError, match=rf"is in use by another cluster \(pid {holder.pid}\).*cluster.var_dir"):
            Cluster(settings)
    finally:
        holder.kill()
        holder.wait()
    first = Cluster(settings)  # the holder's lock went with its process
    with pytest.raises(UserError, match=rf"pid {os.getpid()}"):
        Cluster(settings)
    first.close()
    Cluster(settings).close()
    assert (settings.var_path / "cluster.lock").read_text() == str(os.getpid())
