"""`ingest run --simulate --verify` while its merger and its embedded Redis are SIGKILLed: the parent
restarts both, the merger resumes from its checkpoint and repairs from the shards' replay buffers,
and Redis ends up with every trade once, in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from conftest import ROOT

SYMBOLS = ["BTC-USDT", "ETH-USDT", "BNB-USDT", "SOL-USDT", "XRP-USDT", "ADA-USDT", "DOGE-USDT", "LTC-USDT"]


def _pids(path: Path, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the cluster did not start"
        time.sleep(0.1)
    pids: dict[str, object] = orjson.loads(path.read_bytes())
    return pids


def test_merger_and_redis_killed_mid_run_lose_nothing(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(f"""
[cluster]
shards = 2
drain_timeout = 10.0
restart_delay = 0.5
heartbeat_interval = 0.5
[simulator]
rate = 40.0
levels = 30
[log]
format = "json"
[[feeds]]
exchange = "binance"
symbols = {orjson.dumps(SYMBOLS).decode()}
""")
    run = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "run", "--simulate", "--duration", "18", "--verify",
         "--settings", str(settings)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    pids_file = tmp_path / "var" / "pids.json"
    time.sleep(1)
    first = _pids(pids_file)
    time.sleep(5)
    os.kill(int(first["merger"]), signal.SIGKILL)  # type: ignore[call-overload]
    time.sleep(4)
    os.kill(int(_pids(pids_file)["redis"]), signal.SIGKILL)  # type: ignore[call-overload]
    out, err = run.communicate(timeout=180)
    assert run.returncode == 0, err.decode()[-4000:]
    result = orjson.loads(out.decode().strip().splitlines()[-1])
    assert result["verified"] is True and result["lost"] == result["duplicated"] == result["out_of_order"] == 0
    log = [orjson.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    events = [r.get("event") for r in log]
    assert "embedded redis restarted" in events and "resuming from checkpoint" in events
    assert any(r.get("event") == "child restarted" and r.get("child") == "merger" for r in log)
    stopped = [r for r in log if r.get("event") == "merger stopped"][-1]
    assert stopped["lost"] == 0 and stopped["dropped"] == 0 and stopped["gaps"] == 0
    final = orjson.loads(pids_file.read_bytes())
    assert final["redis_restarts"] == 1 and final["children"]["merger"]["restarts"] == 1
