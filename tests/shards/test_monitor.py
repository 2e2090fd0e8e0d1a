"""Readiness rules and the /status document from report dicts (pure: no sockets, no clock)."""

from __future__ import annotations

from typing import Any

from bus.meter import LATENCY_BOUNDS_NS
from shards.monitor import Expected, Reports, Supervised, not_ready, quantile, status

T0 = 1_000.0
EXPECTED = [Expected("binance", "BTC-USDT", True), Expected("okx", "ETH-USDT", True)]


def _shard(ts: float, count: int, *, connected: bool = True, book: str | None = "valid", since: float = T0,
           pid: int = 11, last: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Shard 0's report at ``ts``: ``count`` events so far, the last one at ``last`` (default: ``ts``)."""
    last_ns = int((ts if last is None else last) * 1e9)
    books = {"BTC-USDT": {"state": book, "since": int(since * 1e9), "gaps": 2, "resyncs": 3, "checksum_failures": 1}}
    conn = {"connection": "binance-s0-c0", "exchange": "binance", "connected": connected, "symbols": ["BTC-USDT"],
            "channels": ["trades", "book"], "books": books, "bytes": 5000, "frames": count, "reconnects": 1,
            "trade_gaps": 0, "decode_errors": 0, "trades_backfilled": 0}  # fmt: skip
    return {"kind": "shard", "name": "shard-0", "shard": 0, "pid": pid, "ts": ts, "cpu_s": ts / 10,
            "rss_bytes": 50 * 2**20, "published": count, "replay_depth": count, "epoch": 1,
            "topics": {"book.binance.BTC-USDT": count, "trade.binance.BTC-USDT": count // 2}, "latency": {},
            "last": {"book.binance.BTC-USDT": last_ns, "trade.binance.BTC-USDT": last_ns},
            "connections": [conn]}  # fmt: skip


def _okx(ts: float, count: int, last: float | None = None) -> dict[str, Any]:
    r = _shard(ts, count, last=last)
    conn = {**r["connections"][0], "connection": "okx-s1-c0", "exchange": "okx", "symbols": ["ETH-USDT"],
            "books": {"ETH-USDT": r["connections"][0]["books"]["BTC-USDT"]}}  # fmt: skip
    return {**r, "name": "shard-1", "shard": 1, "topics": {"book.okx.ETH-USDT": count},
            "last": {"book.okx.ETH-USDT": r["last"]["book.binance.BTC-USDT"]}, "connections": [conn]}  # fmt: skip


def _check(reports: Reports, now: float) -> list[str]:
    return not_ready(reports, EXPECTED, now, T0, grace=5.0, stale_after=10.0, stale_report_s=5.0)


def test_ready_when_every_feed_is_connected_valid_and_fresh() -> None:
    r = Reports()
    for ts, n in ((T0 + 1, 100), (T0 + 2, 200)):
        r.add(_shard(ts, n))
        r.add(_okx(ts, n))
    assert _check(r, T0 + 2.5) == []


def test_nothing_reported_is_ready_only_within_the_grace() -> None:
    assert _check(Reports(), T0 + 4) == []
    assert _check(Reports(), T0 + 6) == [
        "binance BTC-USDT: no shard reports it yet",
        "okx ETH-USDT: no shard reports it yet",
    ]


def test_a_book_resyncing_longer_than_the_grace_is_not_ready() -> None:
    r = Reports()
    r.add(_okx(T0 + 20, 10))
    r.add(_shard(T0 + 20, 10, book="resyncing", since=T0 + 17))
    assert _check(r, T0 + 20.5) == []  # 3.5 s: within the grace
    r.add(_okx(T0 + 23, 20))
    r.add(_shard(T0 + 23, 20, book="resyncing", since=T0 + 17))
    assert _check(r, T0 + 23.5) == ["binance BTC-USDT: book resyncing for 6.5 s"]


def test_a_disconnected_feed_a_silent_symbol_a_silent_shard_and_redis_down() -> None:
    r = Reports()
    r.add(_okx(T0 + 10, 10))
    r.add(_shard(T0 + 10, 10, connected=False))
    r.add(_okx(T0 + 16, 10, last=T0 + 10))  # okx: no new message since T0 + 10
    r.add(_shard(T0 + 16, 10, connected=False))
    assert _check(r, T0 + 16.5) == ["binance BTC-USDT: disconnected for 6.5 s"]
    r.add(_okx(T0 + 20.5, 10, last=T0 + 10))
    assert _check(r, T0 + 20.5) == ["binance BTC-USDT: disconnected for 10.5 s", "okx ETH-USDT: no message for 10.5 s"]
    merger = {"kind": "merger", "name": "merger", "pid": 3, "ts": T0 + 16, "cpu_s": 1.0, "rss_bytes": 1,
              "stats": {"redis_state": "down"}, "batch_sizes": [], "write_ns": [], "lag_ns": []}  # fmt: skip
    r.add(merger)
    assert _check(r, T0 + 21.5)[-1] == "redis: unreachable from the merger for 5.5 s"
    assert _check(r, T0 + 30)[0] == "binance BTC-USDT: no report from shard-0 for 14.0 s"


def test_status_document_from_reports() -> None:
    r = Reports()
    lag = [0] * (len(LATENCY_BOUNDS_NS) + 1)
    for ts, n in ((T0 + 1, 100), (T0 + 3, 300)):
        r.add(_shard(ts, n, last=ts - 0.5))
        lag[2] += 50  # 1..2.5 ms
        stats = {"received": n, "written": n, "batches": n // 10, "buffered": 4, "redis_state": "up",
                 "redis_errors": 0}  # fmt: skip
        r.add({"kind": "merger", "name": "merger", "pid": 3, "ts": ts, "cpu_s": ts / 20, "rss_bytes": 2**21,
               "stats": stats, "batch_sizes": [0] * 11, "write_ns": [0] * 13, "lag_ns": list(lag)})  # fmt: skip
    procs = [Supervised("merger", "merger", 3, True), Supervised("shard-0", "shard", 11, True, restarts=2)]
    doc = status(r, procs, [], T0 + 3.5, T0)
    assert doc["version"] == 1 and doc["ready"] is True and doc["uptime_s"] == 3.5
    assert doc["processes"][1] == {"name": "shard-0", "kind": "shard", "pid": 11, "alive": True, "cpu_percent": 10.0,
                                   "rss_mb": 50.0, "restarts": 2, "hangs": 0, "report_age_s": 0.5}  # fmt: skip
    m = doc["merger"]
    assert (m["received"], m["written"], m["entries_per_s"]) == (300, 300, 100.0)
    assert (m["batches"], m["batch_mean"], m["buffered"]) == (30, 10.0, 4)
    assert m["redis_up"] is True and m["write_p99_ms"] is None
    assert m["lag_p50_ms"] == 1.75  # the window's 50 observations, all in the 1..2.5 ms bucket
    [feed] = doc["feeds"]
    assert feed == {"exchange": "binance", "symbol": "BTC-USDT", "shard": 0, "connection": "binance-s0-c0",
                    "connected": True, "book": "valid", "book_since": T0, "messages": 450, "bytes": 5000,
                    "msgs_per_s": 150.0, "staleness_s": 0.5, "gaps": 2, "resyncs": 3, "checksum_failures": 1,
                    "reconnects": 1, "trade_gaps": 0}  # fmt: skip


def test_a_restarted_child_starts_its_window_again() -> None:
    r = Reports()
    r.add(_shard(T0 + 1, 500))
    r.add(_shard(T0 + 2, 10, pid=12))
    assert r.oldest("shard-0") is None and r.latest("shard-0")["pid"] == 12  # type: ignore[index]


def test_quantile_interpolates_within_a_bucket() -> None:
    assert quantile([0, 0], [10], 0.5) is None
    assert quantile([10, 0], [10], 0.5) == 5.0
    assert quantile([0, 4], [10], 0.99) == 10.0  # the top bucket answers its lower bound
