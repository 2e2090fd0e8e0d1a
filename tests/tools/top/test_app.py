"""Done-when: `ingest top` and `ingest status` against a real running cluster (`ingest run --simulate`),
drawn headless on an 80x24 screen; and `ingest status` with nothing listening."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import cast

import orjson
import pytest
import redis
from conftest import ROOT
from rich.console import Console

from bus.consumer import decode_entry, redis_url, stream_key
from bus.embedded_redis import free_port
from ingest.events import BookDelta, BookSnapshot
from ingest.settings import load
from shards.supervisor import Cluster
from tools.sim.process import SimulatorProcess
from tools.top import app
from tools.top.app import Top, run_top
from tools.top.data import NoCluster, fetch_status, status_url

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FEEDS = {"binance": ["BTC-USDT", "ETH-USDT", "SOL-USDT"], "kraken": ["BTC-USD", "ETH-USD"]}


def _ingest(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running `ingest run --simulate` (2 shards, two exchanges) whose status endpoint is on a free port;
    yields its settings file once every feed is connected with a valid book."""
    folder = tmp_path_factory.mktemp("top")
    settings = folder / "settings.toml"
    feeds = "".join(f'[[feeds]]\nexchange = "{e}"\nsymbols = {orjson.dumps(s).decode()}\n' for e, s in FEEDS.items())
    settings.write_text(f"""
[cluster]
shards = 2
drain_timeout = 10.0
[simulator]
rate = 20.0
levels = 20
[metrics]
listen = "127.0.0.1:0"
interval = 0.2
ready_grace = 0.0
[log]
format = "json"
{feeds}""")
    run = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "run", "--simulate", "--settings", str(settings)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(folder / "run.log").open("wb"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert run.poll() is None, (folder / "run.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "the cluster did not become ready"
            try:
                if fetch_status(status_url(None, (folder / "var" / "metrics.addr").read_text().strip()))["ready"]:
                    break
            except (OSError, NoCluster):
                pass
            time.sleep(0.3)
        yield settings
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)


def _book_prices(settings: Path, exchange: str, symbol: str) -> set[Decimal]:
    """Every price the cluster wrote into the symbol's book stream."""
    client = redis.Redis.from_url(redis_url(settings))
    key = stream_key("book", exchange, symbol)
    rows = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key))
    client.close()
    events = [decode_entry(key, i, f).event for i, f in rows]
    return {Decimal(p) for e in events if isinstance(e, BookSnapshot | BookDelta) for p, _ in (*e.bids, *e.asks)}


def test_top_draws_the_running_cluster_on_80x24(cluster: Path) -> None:
    console = Console(file=io.StringIO(), width=80, height=24, record=True, color_system=None)
    assert run_top(Top(str(cluster), None, "kraken:ETH-USD"), console, interval=0.5, frames=2) == 0
    lines = console.export_text().rstrip("\n").split("\n")
    assert len(lines) == 48 and max(len(line) for line in lines) <= 80
    frame = lines[24:]  # the second frame
    assert frame[0].startswith("READY  up ")
    assert re.match(r"shard-0 \d+% \d+M  shard-1 \d+% \d+M  merger \d+% \d+M  parent \d+% \d+M", frame[1]), frame[1]
    assert re.match(r"merger [\d.k]+/s  written \d+", frame[2]) and frame[3].startswith("redis up  errors 0")
    feeds = {(line[:9].strip(), line[9:19].strip()): line[19:25].strip() for line in frame[5:10]}
    assert feeds == {(e, s): "valid" for e, ss in FEEDS.items() for s in ss}
    assert frame[4][43:].rstrip() == "kraken ETH-USD  book valid      n/p q"
    bid, ask = frame[6][43:].split()[1:3]  # bid qty, bid, ask, ask qty
    written = _book_prices(cluster, "kraken", "ETH-USD")
    assert Decimal(bid) in written and Decimal(ask) in written and Decimal(bid) < Decimal(ask)


def test_n_and_p_walk_through_every_feed(cluster: Path) -> None:
    top = Top(str(cluster), None, None)
    titles = []
    for _ in range(6):
        titles.append(console_frame_of(top)[4][43:].split("  book")[0])
        top.switch(1)
    top.switch(-1)
    assert titles[-1] == console_frame_of(top)[4][43:].split("  book")[0]
    top.close()
    assert sorted(titles[:5]) == sorted(f"{e} {s}" for e, ss in FEEDS.items() for s in ss) and titles[5] == titles[0]


def console_frame_of(top: Top) -> list[str]:
    console = Console(file=io.StringIO(), width=80, height=24, record=True, color_system=None)
    console.print(top.frame(80, 24))
    return console.export_text().splitlines()


def test_status_prints_every_feed_and_exits_0_when_ready(cluster: Path) -> None:
    done = _ingest("status", "--settings", str(cluster))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("READY  up ") and "http://127.0.0.1:" in lines[0]
    assert [line.split()[0] for line in lines[3:7]] == ["shard-0", "shard-1", "merger", "parent"]
    rows = [line.split() for line in lines if line.startswith(("binance ", "kraken "))]
    assert sorted((r[0], r[1]) for r in rows) == sorted((e, s) for e, ss in FEEDS.items() for s in ss)
    assert all(r[3] == "yes" and r[4] == "valid" for r in rows)
    doc = orjson.loads(_ingest("status", "--settings", str(cluster), "--json").stdout)
    assert doc["version"] == 1 and doc["ready"] is True and len(doc["feeds"]) == 5


def test_top_without_a_terminal_says_to_use_frames(cluster: Path) -> None:
    done = _ingest("top", "--settings", str(cluster))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "ingest: error: ingest top draws on a terminal: give --frames N to print N frames instead\n"
    done = _ingest("top", "--settings", str(cluster), "--frames", "1", "--symbol", "kraken:DOGE-USD")
    assert done.returncode == 2
    assert done.stderr.startswith("ingest: error: --symbol kraken:DOGE-USD: the cluster has no such feed (it has ")


def _top_in_a_terminal(settings: Path, stop: Callable[[subprocess.Popen[bytes], int], None]) -> tuple[int, str]:
    """Run `ingest top` on a real 80x24 pseudo-terminal, let it draw, ``stop`` it; its exit status and what
    it left on the terminal after leaving the full screen."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "top", "--settings", str(settings), "--interval", "0.2"],
        cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    screen = bytearray()
    reader = threading.Thread(target=_drain, args=(master, screen), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while b"shard-1" not in screen:  # a frame was drawn
        assert time.monotonic() < deadline and proc.poll() is None, screen.decode(errors="replace")[-2000:]
        time.sleep(0.1)
    stop(proc, master)
    code = proc.wait(timeout=30)
    reader.join(timeout=5)
    os.close(master)
    text = screen.decode(errors="replace")
    return code, text.rpartition("\x1b[?1049l")[2]  # what follows the end of the alternate screen


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into += chunk


@pytest.mark.parametrize("how", ["q", "ctrl-c"])
def test_top_ends_cleanly_on_q_and_ctrl_c_with_a_summary(cluster: Path, how: str) -> None:
    def stop(proc: subprocess.Popen[bytes], master: int) -> None:
        if how == "q":
            os.write(master, b"q")
        else:
            proc.send_signal(signal.SIGINT)

    code, after = _top_in_a_terminal(cluster, stop)
    assert code == 0, after
    lines = [ANSI.sub("", line).rstrip() for line in after.replace("\r", "").split("\n") if line.strip()]
    assert lines[0].startswith("READY  up ") and lines[1].startswith("shard-0 ")
    assert lines[-1] == "5 feeds, 5 fine"
    assert "Traceback" not in after


def test_a_stalled_feed_is_not_ready_in_status_exit_1_and_first_in_top(tmp_path: Path) -> None:
    """The simulator stalls one symbol: `ingest status` exits 1 naming it, `ingest top` says NOT READY and
    lists it first; when the stall ends, status exits 0 again."""
    path = tmp_path / "settings.toml"
    path.write_text("""
[cluster]
shards = 2
drain_timeout = 5.0
[simulator]
rate = 40.0
levels = 20
[metrics]
listen = "127.0.0.1:0"
interval = 0.2
ready_grace = 0.5
stale_after = 1.0
[log]
format = "json"
[[feeds]]
exchange = "binance"
symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
""")
    settings = load(path)
    sim = SimulatorProcess(settings.simulator, {"binance": ["BTC-USDT", "ETH-USDT", "SOL-USDT"]},
                           tmp_path / "truth.jsonl").start()  # fmt: skip
    try:
        with Cluster(sim.point_feeds(settings)) as cluster:
            cluster.start()

            def ready() -> bool:  # and every feed reported: a cluster just started is ready within the grace
                doc = fetch_status(status_url(settings, None))
                valid = [f for f in doc["feeds"] if f["book"] == "valid" and f["messages"]]
                return bool(doc["ready"]) and len(valid) == 3

            def until(cond: Callable[[], bool], timeout: float) -> None:
                deadline = time.monotonic() + timeout
                cluster.supervise(lambda: cond() or time.monotonic() > deadline, tick=0.1)
                assert cond(), "condition not reached in time"

            until(ready, 60.0)
            sim.fault("stall", "binance", symbol="ETH-USDT", seconds=5.0)
            until(lambda: not ready(), 10.0)
            console = Console(file=io.StringIO(), width=80, record=True, color_system=None)
            assert app.status(str(path), None, False, console) == 1
            lines = console.export_text().splitlines()
            assert lines[0].startswith("NOT READY  up ")
            assert lines[1].startswith("  not ready: binance ETH-USDT: no message for "), lines
            top = Top(str(path), None, None)
            frame = console_frame_of(top)
            assert frame[0].startswith("NOT READY  binance ETH-USDT: no message for "), frame[0]
            assert frame[5].startswith("binance  ETH-USDT  valid "), frame[5]  # listed first
            until(ready, 30.0)
            assert app.status(str(path), None, False, Console(file=io.StringIO())) == 0
        # The cluster is gone: top goes on with the last answer and says so.
        top.refresh()
        frame = console_frame_of(top)
        top.close()
        assert frame[0].startswith("NO ANSWER for 0s, showing the last answer: no cluster answers at "), frame[0]
        assert sorted(line.split()[1] for line in frame[5:8]) == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    finally:
        sim.stop()



def test_status_with_nothing_listening_is_one_line_and_exit_2(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[metrics]\nlisten = "127.0.0.1:0"\n[[feeds]]\nexchange = "binance"\nsymbols = ["BTC-USDT"]\n')
    done = _ingest("status", "--settings", str(settings))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"ingest: error: no cluster is serving its status endpoint (no {tmp_path / 'var' / 'metrics.addr'}): "
        "is `ingest run` running?\n"
    )
    port = free_port()
    done = _ingest("status", "--url", f"127.0.0.1:{port}")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"ingest: error: no cluster answers at http://127.0.0.1:{port}/status (")
