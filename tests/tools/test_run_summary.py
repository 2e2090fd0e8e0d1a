"""The summary `ingest run` ends with: counted from a real Redis, and through the real CLI (a real
cluster against the simulator, with a fault and --verify)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis
from conftest import ROOT

from tools import run_summary
from tools.run_summary import ExchangeCounts, RunSummary, entries_since, format_summary, gather


def test_entries_since_counts_only_this_runs_entries(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_summary, "PAGE", 3)  # several pages
    for n in range(1, 5):
        redis_client.xadd("md:trade:binance:BTC-USDT", {"n": n}, id=f"1000-{n}")  # an earlier run
    for n in range(1, 8):
        redis_client.xadd("md:trade:binance:BTC-USDT", {"n": n}, id=f"2000-{n}")
    redis_client.xadd("md:book:binance:BTC-USDT", {"n": 1}, id="2500-0")
    assert entries_since(redis_client, "md:trade:binance:BTC-USDT", "2000-0") == 7
    assert entries_since(redis_client, "md:trade:binance:BTC-USDT", "2000-3") == 5
    assert entries_since(redis_client, "md:trade:binance:BTC-USDT", "0-0") == 11
    assert entries_since(redis_client, "md:book:binance:BTC-USDT", "2000-0") == 1
    assert entries_since(redis_client, "md:trade:okx:BTC-USDT", "2000-0") == 0
    summary = gather(redis_client, "md", {"binance": ["BTC-USDT", "ETH-USDT"]}, "2000-0", RunSummary(1.0, 1, "x"))
    assert summary.exchanges == {"binance": ExchangeCounts(symbols=1, trades=7, book=1, bars=0, conn=0)}


def test_format_summary() -> None:
    summary = RunSummary(
        12.34, 2, "duration reached", {"binance": ExchangeCounts(24, 4210, 51234, 96, 4)},
        {"written": "55444", "lost": "0", "buffered": "0"}, {"shard-0": 0, "shard-1": 1}, faults=3,
        verify={"verified": True, "trades_found": 4210, "trades_expected": 4210, "lost": 0, "duplicated": 0,
                "out_of_order": 0, "books_mismatched": 0, "books_checked": 24, "bars_mismatched": 0,
                "bars_checked": 48},
    )  # fmt: skip
    assert format_summary(summary).splitlines() == [
        "# run summary: 12.3s, 2 shards, duration reached",
        "# exchange   symbols     trades book entries   bars  conn",
        "# binance         24       4210        51234     96     4",
        "# merger: written=55444 lost=0",
        "# restarts: shard-0=0 shard-1=1; faults injected: 3",
        "# verified: true (trades 4210/4210, lost 0, duplicated 0, out of order 0, books mismatched 0/24,"
        " bars mismatched 0/48)",
    ]



def test_a_restarted_mergers_counters_are_labelled_as_counting_from_its_restart() -> None:
    summary = RunSummary(1.0, 1, "duration reached", {}, {"written": "7"}, {"merger": 2, "shard-0": 0})
    assert format_summary(summary).splitlines()[2] == "# merger since its last restart: written=7"

def test_run_ends_with_the_summary_on_stderr_and_the_verdict_last_on_stdout(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(f"""
[cluster]
shards = 2
var_dir = "{tmp_path / "var"}"
[simulator]
rate = 30.0
levels = 20
[log]
format = "json"
[[feeds]]
exchange = "binance"
symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
[[feeds]]
exchange = "okx"
symbols = ["BTC-USDT", "ETH-USDT"]
""")
    run = subprocess.run(
        [sys.executable, "-m", "tools.cli", "run", "-c", str(settings), "--simulate", "--duration", "5", "--verify",
         "--faults"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    verdict = orjson.loads(run.stdout.splitlines()[-1])
    assert verdict["verified"] is True
    lines = [line for line in run.stderr.splitlines() if line.startswith("# ")]
    start = next(i for i, line in enumerate(lines) if line.startswith("# run summary: "))
    summary = lines[start:]
    assert summary[0].endswith(", 2 shards, duration reached")
    rows = {line.split()[1]: [int(x) for x in line.split()[2:]] for line in summary[2:4]}
    assert sorted(rows) == ["binance", "okx"]
    assert rows["binance"][0] == 3 and rows["okx"][0] == 2
    assert rows["binance"][1] + rows["okx"][1] >= verdict["trades_found"] > 0  # trade entries include the gaps
    merger = dict(kv.split("=") for kv in summary[4].removeprefix("# merger: ").split())
    assert int(merger["written"]) == sum(sum(r[1:]) for r in rows.values())  # every entry is in one stream
    assert all(r[3] > 0 and r[4] >= 2 for r in rows.values())  # bars; connected and disconnected events
    assert merger["lost"] == "0"
    faults = verdict["faults_injected"]
    assert summary[5] == f"# restarts: merger=0 shard-0=0 shard-1=0 redis=0; faults injected: {faults}"
    assert summary[6] == (
        f"# verified: true (trades {verdict['trades_found']}/{verdict['trades_expected']}, lost 0, duplicated 0,"
        f" out of order 0, books mismatched 0/5, bars mismatched 0/{verdict['bars_checked']})"
    )
