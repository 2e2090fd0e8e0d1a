"""`ingest bench`: a short real bench (simulator, shards, merger, embedded Redis; no mocks) prints one
JSON object of the documented shape with nothing lost; the measuring helpers against a real Redis.
Timings are never asserted: only shapes, counts and exactness."""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tools.bench import BENCH_MAXLEN, bench_settings, bench_symbols
from tools.bench_measure import LatencyField, ProcessGroup, percentiles, window_stats
from tools.bench_peer import rebuild_peer_book
from tools.bench_phase import rss_summary
from tools.cli import main

FIGURES = {"messages", "seconds", "msgs_per_s", "cpu_us_per_msg", "latency_ms", "rss_mb", "lost"}


def _bench(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    argv = ["bench", "--duration", "5", "--warmup", "2", "--symbols", "3", "--rate", "40", "--shards", "1",
            "--msgs-per-s", "600"]  # fmt: skip
    assert main([*argv, "--var-dir", str(tmp_path / "var"), "--json", *extra]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one line"
    assert "redis may run out of memory" not in err  # its streams hold what it sends, whatever redis.maxlen
    result: dict[str, Any] = orjson.loads(lines[0])
    return result


def _check_figures(r: dict[str, Any]) -> None:
    assert set(r) >= FIGURES
    assert isinstance(r["messages"], int) and r["messages"] > 0
    assert isinstance(r["seconds"], float) and r["seconds"] > 0
    assert r["msgs_per_s"] == pytest.approx(r["messages"] / r["seconds"], rel=0.01)
    assert isinstance(r["cpu_us_per_msg"], float) and r["cpu_us_per_msg"] > 0
    assert set(r["latency_ms"]) == {"p50", "p99", "max"}
    assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
    assert r["rss_mb"] > 0 and r["rss_peak_mb"] >= r["rss_mb"]
    assert r["lost"] == 0


def test_bench_runs_the_cluster_and_loses_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _bench(tmp_path, capsys, "--rss-every", "1")
    _check_figures(r)
    assert r["shards"] == 1
    assert r["peer"] is None
    assert r["verify"]["verified"] is True
    assert r["verify"]["books_checked"] == 3
    assert r["verify"]["bars_checked"] >= 3 and r["verify"]["bars_mismatched"] == 0  # a bar per symbol and minute
    sim = r["sim"]  # the pre-built market: 600 msgs/s x 5 s built, sent from the subscriptions on
    assert sim["frames"] >= 3000 and 0 < sim["sent"] <= sim["frames"] and sim["msgs_per_s"] == 600.0
    assert r["setup"]["market"] == "pre-built"
    assert set(r["processes"]) == {"parent", "merger", "shard-0"}
    assert r["harness_cpu_s"] > 0  # the bench's own sampling and catch-up check, left out of the parent's CPU
    assert r["redis_cpu_s"] > 0 and r["redis_cpu_us_per_entry"] == pytest.approx(
        r["redis_cpu_s"] * 1e6 / r["messages"], rel=0.02
    )
    assert r["redis_mb"] > 1  # the streams' entries, as Redis counts its memory
    series = r["rss_series"]  # one sample a second over the 5 s run: at 0, 1, .. 4 s (give or take a tick)
    assert 4 <= len(series) <= 6 and [p["t"] for p in series] == sorted(p["t"] for p in series)
    assert all(set(p["rss_mb"]) == {"parent", "merger", "shard-0"} for p in series[1:])
    assert set(r["rss_flat"]) == {"parent", "merger", "shard-0"}


def test_discounted_cpu_is_left_out_of_what_a_process_used() -> None:
    group, me = ProcessGroup(), os.getpid()
    group.mark([me])
    deadline = time.process_time() + 0.08
    while time.process_time() < deadline:  # burn CPU in this process
        pass
    used = group.cpu_since_mark([me])
    assert used > 0.05  # os.times() counts in 10 ms clock ticks: 80 ms burnt reads as 70 ms or more
    group.discount(me, used)
    assert 0 <= group.cpu_since_mark([me]) <= 0.02  # a tick or two since
    assert group.breakdown({"me": me})["me"]["cpu_s"] <= 0.02


def test_rss_summary_compares_the_first_and_the_last_minute() -> None:
    series = [{"t": float(t), "rss_mb": {"shard-0": 100.0 + t / 10, "merger": 50.0}} for t in range(0, 601, 30)]
    flat = rss_summary(series)
    assert flat is not None
    assert flat["merger"] == {"first_min_mb": 50.0, "last_min_mb": 50.0, "growth_mb": 0.0}
    # first minute: t = 0, 30, 60 (mean 103 MB); last: t = 540, 570, 600 (mean 157 MB)
    assert flat["shard-0"] == {"first_min_mb": 103.0, "last_min_mb": 157.0, "growth_mb": 54.0}
    assert rss_summary(series[:1]) is None


@pytest.mark.skipif(importlib.util.find_spec("cryptofeed") is None, reason="the 'peer' extra is not installed")
def test_bench_with_cryptofeed_as_peer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _bench(tmp_path, capsys, "--peer", "cryptofeed")
    _check_figures(r)
    peer = r["peer"]
    assert peer["name"] == "cryptofeed", peer.get("error")
    _check_figures(peer)
    assert peer["verify"]["books_checked"] == 3
    assert r["ratio"] == pytest.approx(r["msgs_per_cpu_s"] / peer["msgs_per_cpu_s"], rel=0.01)


def test_bench_max_speed_ends_when_the_market_is_sent_and_takes_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 10000 x 30 frames: seconds of sending at the clients' pace, so the window (after the 2 s warm-up) has them
    # (3000 x 30 did until the compiled shard took them all within the warm-up)
    r = _bench(tmp_path, capsys, "--max-speed", "--msgs-per-s", "10000", "--duration", "30",
               "-s", "redis.batch_interval=0.001")  # fmt: skip
    _check_figures(r)
    assert r["sim"]["done"] is True and r["sim"]["sent"] == r["sim"]["frames"] >= 300_000
    assert r["seconds"] < 25  # ended when all was sent, not at --duration
    assert 0 <= r["sim"]["books_wait_s"] < 10  # the flood began once the shard had its 3 books, not at the cap
    assert r["verify"]["verified"] is True and r["setup"]["overrides"] == ["redis.batch_interval=0.001"]


def test_bench_live_model_and_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _bench(tmp_path, capsys, "--live")
    _check_figures(r)
    assert r["sim"] is None and r["setup"]["market"] == "live" and r["verify"]["verified"] is True
    var = str(tmp_path / "var")
    for extra, message in (
        (["--exchange", "kraken"], "the pre-built market is Binance-only; for kraken add --live"),
        (["-s", "redis.batch_interval"], "expected SECTION.KEY=VALUE"),
        (["-s", "redis.no_such_key=1"], "no_such_key"),
    ):
        assert main(["bench", "--var-dir", var, "--symbols", "2", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_bench_streams_keep_every_entry_unless_told_otherwise(tmp_path: Path) -> None:
    args = argparse.Namespace(shards=1, var_dir=str(tmp_path), rate=10.0, seed=7, exchange="binance", symbols=2,
                              overrides=[])  # fmt: skip
    assert bench_settings(args).redis.maxlen == BENCH_MAXLEN  # the verifier reads them all
    args.overrides = ["redis.maxlen=5000"]
    assert bench_settings(args).redis.maxlen == 5000


def test_bench_symbols_are_canonical_and_distinct() -> None:
    syms = bench_symbols("binance", 40)
    assert syms[:2] == ["BTC-USDT", "ETH-USDT"] and len(set(syms)) == 40
    assert syms[-1] == "X039-USDT"
    assert bench_symbols("kraken", 1) == ["BTC-USD"]


def test_percentiles_of_a_histogram() -> None:
    assert percentiles({}) is None
    assert percentiles({1: 98, 5: 1, 9: 1}) == {"p50": 1.0, "p99": 5.0, "max": 9.0}
    assert percentiles({-1: 1, 0: 1}) == {"p50": -1.0, "p99": 0.0, "max": 0.0}


def test_window_stats_counts_and_latencies_inside_redis(redis_client: redis.Redis) -> None:
    for ms, sent_ns, recv_ns, kind in (
        (1000, 997_000_000, 999_000_000, "delta"),
        (1001, 999_900_000, 1_000_500_000, "delta"),
        (1002, 990_000_000, 991_000_000, "trade"),  # not a delta: counted, no latency
        (2000, 1_000_000_000, 1_000_000_000, "delta"),  # outside the window
    ):
        fields = {"type": kind, "ts_exchange": str(sent_ns), "ts_recv": str(recv_ns)}
        redis_client.xadd("md:book:x:A", fields, id=f"{ms}-0")  # type: ignore[arg-type]
    lf = LatencyField("type", "delta", "ts_exchange", "ns", "ts_recv", "ns")
    stats = window_stats(redis_client, ["md:book:x:A"], 1000, 1500, lf)
    assert stats.messages == 3
    assert stats.sent == {3: 1, 2: 1}  # 1000 - 997, 1001 - 999
    assert stats.recv == {1: 2}  # 1000 - 999, 1001 - 1000
    seconds = LatencyField("delta", "", "timestamp", "s", "receipt_timestamp", "s")
    redis_client.xadd("p", {"delta": "{}", "timestamp": "1.5", "receipt_timestamp": "1.6"}, id="1700-0")
    assert window_stats(redis_client, ["p"], 0, 5000, seconds).sent == {200: 1}


def test_rebuild_peer_book_from_snapshot_and_deltas() -> None:
    entries = [
        {"delta": '{"bid": [["9", "1"]], "ask": []}'},  # before the snapshot: replaced
        {"book": '{"bid": {"10.0": "1", "9.5": "2"}, "ask": {"11": "3"}}'},
        {"delta": '{"bid": [["9.5", "0E-8"], ["9.9", "4"]], "ask": [["11.00", "5"]]}'},
    ]
    bids, asks = rebuild_peer_book(entries)
    assert bids == {Decimal("10"): Decimal("1"), Decimal("9.9"): Decimal("4")}
    assert asks == {Decimal("11"): Decimal("5")}
