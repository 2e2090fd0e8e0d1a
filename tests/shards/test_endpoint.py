"""The parent's metrics endpoint on a real cluster fed by the real simulator: every metric is there
with live values, /ready turns 503 while the simulator stalls a feed and 200 once it recovers,
/health is 200, /status has the documented keys; a taken address is one clear error."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bus.sched import io_thread_policies
from ingest.errors import UserError
from ingest.settings import MetricsSettings, Settings, from_dict
from shards.endpoint import MetricsEndpoint
from shards.supervisor import Cluster
from tools.commands import feed_symbols
from tools.sim.process import SimulatorProcess

METRICS = [
    "ingest_messages_total", "ingest_book_state", "ingest_book_gaps_total", "ingest_book_resyncs_total",
    "ingest_book_checksum_failures_total", "ingest_feed_staleness_seconds", "ingest_connection_up",
    "ingest_connection_frames_total", "ingest_connection_received_bytes_total", "ingest_connection_reconnects_total",
    "ingest_trade_gaps_total", "ingest_exchange_to_receive_seconds_bucket", "ingest_shard_published_total",
    "ingest_shard_replay_buffer_events", "ingest_merger_received_entries_total", "ingest_merger_written_entries_total",
    "ingest_merger_batch_size_entries_bucket", "ingest_merger_redis_write_seconds_bucket",
    "ingest_receive_to_redis_seconds_bucket", "ingest_merger_redis_errors_total", "ingest_merger_outbox_entries",
    "ingest_redis_up", "ingest_process_cpu_seconds_total", "ingest_process_resident_memory_bytes",
    "ingest_process_restarts_total", "ingest_process_up", "ingest_ready",
]  # fmt: skip


def _settings(tmp: Path, listen: str = "127.0.0.1:0") -> Settings:
    raw = {
        "cluster": {"shards": 2, "heartbeat_interval": 0.5, "drain_timeout": 5.0},
        "simulator": {"rate": 40.0, "levels": 20},
        "metrics": {"listen": listen, "interval": 0.2, "ready_grace": 1.0, "stale_after": 1.5},
        "log": {"format": "json"},
        "feeds": [{"exchange": "binance", "symbols": ["BTC-USDT", "ETH-USDT"]},
                  {"exchange": "okx", "symbols": ["BTC-USDT"]}],
    }  # fmt: skip
    return from_dict(raw, str(tmp / "settings.toml"))


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def _samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def _until(cluster: Cluster, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    cluster.supervise(lambda: cond() or time.monotonic() > deadline, tick=0.1)
    assert cond(), "condition not reached in time"


def test_metrics_ready_health_and_status_on_a_live_cluster(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    sim = SimulatorProcess(settings.simulator, feed_symbols(settings), tmp_path / "truth.jsonl").start()
    try:
        with Cluster(sim.point_feeds(settings)) as cluster:
            cluster.start()
            base = "http://" + (tmp_path / "var" / "metrics.addr").read_text().strip()
            assert orjson.loads((tmp_path / "var" / "pids.json").read_bytes())["metrics"] == base[7:]

            def ready() -> bool:
                return _get(base + "/ready")[0] == 200

            _until(cluster, lambda: ready() and orjson.loads(_get(base + "/status")[1])["merger"]["written"] > 50)
            first = _samples(_get(base + "/metrics")[1].decode())
            t0 = time.monotonic()
            cluster.supervise(lambda: time.monotonic() - t0 > 1.0, tick=0.1)
            code, body = _get(base + "/metrics")
            assert code == 200
            text = body.decode()
            for name in METRICS:
                assert f"\n{name}{{" in text or f"\n{name} " in text, name
            now = _samples(text)
            shard = next(s for s in "01" if f'exchange="binance",shard="{s}",symbol="BTC-USDT"' in text)
            btc = f'exchange="binance",shard="{shard}",symbol="BTC-USDT"'
            book_msgs = f'ingest_messages_total{{channel="book",{btc}}}'
            assert now[book_msgs] > first[book_msgs] > 0  # counters move
            state = f'ingest_book_state{{exchange="binance",shard="{shard}",state="%s",symbol="BTC-USDT"}}'
            assert now[state % "valid"] == 1.0 and now[state % "resyncing"] == now[state % "gap"] == 0.0
            assert now[f"ingest_feed_staleness_seconds{{{btc}}}"] < 1.5
            assert now['ingest_receive_to_redis_seconds_bucket{le="+Inf"}'] > 0
            assert now['ingest_merger_batch_size_entries_bucket{le="+Inf"}'] == now["ingest_merger_batches_total"]
            assert now["ingest_merger_written_entries_total"] > first["ingest_merger_written_entries_total"]
            assert now[f'ingest_exchange_to_receive_seconds_bucket{{exchange="binance",le="+Inf",shard="{shard}"}}'] > 0
            assert now['ingest_process_up{kind="merger",process="merger"}'] == 1.0
            assert now['ingest_process_resident_memory_bytes{kind="shard",process="shard-0"}'] > 10 * 2**20
            assert now["ingest_redis_up"] == 1.0 and now["ingest_ready"] == 1.0

            assert _get(base + "/health") == (200, b"ok\n")
            assert _get(base + "/nowhere")[0] == 404
            status: dict[str, Any] = orjson.loads(_get(base + "/status")[1])
            assert status["version"] == 1 and status["ready"] is True and status["not_ready"] == []
            assert [p["name"] for p in status["processes"]] == ["parent", "merger", "shard-0", "shard-1"]
            assert all(p["alive"] and p["pid"] and p["report_age_s"] < 1.0 for p in status["processes"])
            for p in status["processes"][1:]:  # the merger's and the shards' ZeroMQ I/O threads (`bus.sched`)
                assert io_thread_policies(p["pid"]) == [os.SCHED_BATCH], p["name"]
            assert status["merger"]["redis_up"] is True and status["merger"]["entries_per_s"] > 0
            assert status["merger"]["lag_p50_ms"] is not None and status["merger"]["write_p99_ms"] is not None
            feeds = {(f["exchange"], f["symbol"]): f for f in status["feeds"]}
            assert sorted(feeds) == [("binance", "BTC-USDT"), ("binance", "ETH-USDT"), ("okx", "BTC-USDT")]
            for f in feeds.values():
                assert f["connected"] is True and f["book"] == "valid" and f["msgs_per_s"] > 0
                assert f["messages"] > 0 and f["bytes"] > 0 and f["staleness_s"] < 1.5 and f["gaps"] == 0

            # The simulator stalls Binance's connections: its symbols go quiet, /ready says so; then back.
            sim.fault("stall", "binance", symbol="BTC-USDT", seconds=4.0)
            _until(cluster, lambda: not ready(), timeout=10.0)
            doc = orjson.loads(_get(base + "/ready")[1])
            assert doc["ready"] is False
            assert any(r.startswith("binance BTC-USDT: no message for") for r in doc["not_ready"]), doc
            assert not any(r.startswith("okx") for r in doc["not_ready"]), doc
            _until(cluster, ready, timeout=20.0)
            assert orjson.loads(_get(base + "/ready")[1]) == {"ready": True, "not_ready": []}
    finally:
        sim.stop()
    assert not (tmp_path / "var" / "metrics.addr").exists()


def test_a_taken_address_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with Cluster(_settings(tmp_path, f"127.0.0.1:{port}")) as cluster, pytest.raises(UserError) as e:
            cluster.start()
    assert str(e.value).startswith(f"metrics.listen = '127.0.0.1:{port}': cannot listen there")
    assert cluster.merger is None  # nothing was started


def test_a_taken_default_port_falls_back_to_a_free_one_named_in_metrics_addr(tmp_path: Path) -> None:
    """Two clusters on one host with default settings both serve: the second on a free port."""
    default = MetricsSettings().listen
    host, _, port = default.rpartition(":")
    settings = dataclasses.replace(_settings(tmp_path), metrics=MetricsSettings())
    with socket.socket() as taken:
        with contextlib.suppress(OSError):  # already taken by someone else: just as good
            taken.bind((host, int(port)))
            taken.listen()
        endpoint = MetricsEndpoint(settings)
        try:
            address = endpoint.start()
            told = (settings.var_path / "metrics.addr").read_text().strip()
        finally:
            endpoint.stop()
    assert address != default and address.startswith(f"{host}:")
    assert told == address
