"""`ingest record` end to end: the real simulator (its own process), the real feed connections, real
files; the recordings replayed through `tools.replay` and the `ingest replay` CLI must end with the
simulator's own final books and trades."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from conftest import ROOT
from live import books_from

from ingest.events import Trade
from tools.recording import HttpResponse, Opened, Received, Sent, read_records
from tools.replay import replay_events
from tools.sim.truth import load_truth

FEEDS = {
    "binance": ["BTC-USDT", "ETH-USDT", "SOL-USDT"],
    "okx": ["BTC-USDT", "ETH-USDT"],
    "kraken": ["BTC-USD", "ETH-USD"],
    "bybit": ["BTC-USDT", "ETH-USDT"],
    "coinbase": ["BTC-USD", "ETH-USD"],
    "kucoin": ["BTC-USDT", "ETH-USDT"],
}


def _settings(tmp_path: Path, feeds: dict[str, list[str]] = FEEDS) -> Path:
    tables = "".join(
        f'\n[[feeds]]\nexchange = "{ex}"\nsymbols = [{", ".join(repr(s) for s in symbols)}]\n'.replace("'", '"')
        for ex, symbols in feeds.items()
    )
    text = f"""
[cluster]
var_dir = "{tmp_path / "var"}"
[simulator]
rate = 30.0
levels = 30
[log]
format = "json"
{tables}"""
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def _ingest(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One recording of all six simulated exchanges: (its directory, the truth log, stderr)."""
    tmp = tmp_path_factory.mktemp("record")
    out = tmp / "out"
    run = _ingest("record", "-c", str(_settings(tmp)), "--simulate", "--duration", "6", "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    return out, tmp / "var" / "sim" / "truth.jsonl", run.stderr


def test_replayed_recording_ends_with_the_simulators_books_and_trades(recorded: tuple[Path, Path, str]) -> None:
    out, truth_path, _ = recorded
    truth = load_truth(truth_path)
    assert truth.frozen
    for exchange, symbols in FEEDS.items():
        events = list(replay_events(exchange, sorted(out.glob(f"{exchange}-*.rec"))))
        books = books_from(events)
        for symbol in symbols:
            want = truth.books[(exchange, symbol)]
            assert books[symbol].depth() == ([tuple(x) for x in want.bids], [tuple(x) for x in want.asks]), (
                exchange, symbol,
            )  # fmt: skip
            assert len(want.bids) >= 10 and len(want.asks) >= 10  # whole books (Kraken's: 10 deep)
            trades = [e for e in events if isinstance(e, Trade) and e.symbol == symbol]
            expected = truth.trades[(exchange, symbol)]
            assert expected, (exchange, symbol)
            assert [int(t.trade_id) for t in trades] == [t.trade_id for t in expected], (exchange, symbol)
            assert [(t.price, t.qty, t.side) for t in trades] == [(t.price, t.qty, t.side) for t in expected]


def test_recording_through_the_replay_cli(recorded: tuple[Path, Path, str]) -> None:
    out, truth_path, _ = recorded
    truth = load_truth(truth_path)
    run = _ingest("replay", "--exchange", "binance", *map(str, sorted(out.glob("binance-*.rec"))))
    assert run.returncode == 0, run.stderr
    result = orjson.loads(run.stdout.splitlines()[-1])
    assert result["decode_errors"] == 0
    for symbol in FEEDS["binance"]:
        want, got = truth.books[("binance", symbol)], result["symbols"][symbol]
        assert got["best_bid"] == list(want.bids[0]) and got["best_ask"] == list(want.asks[0])
        assert (got["bid_levels"], got["ask_levels"]) == (len(want.bids), len(want.asks))
        assert got["trades"] == len(truth.trades[("binance", symbol)])
        assert got["gaps"] == 0


def test_recorded_lines_parse(recorded: tuple[Path, Path, str]) -> None:
    out, _, _ = recorded
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"{ex}-s0-c0.rec" for ex in sorted(FEEDS)]
    for path in files:
        assert path.read_bytes().endswith(b"\n")
        records = list(read_records(path))
        assert isinstance(records[0], Opened | HttpResponse)  # KuCoin asks for its endpoint first
        opened = [r for r in records if isinstance(r, Opened)]
        assert len(opened) == 1 and opened[0].url.startswith("ws://127.0.0.1:")
        if not path.name.startswith("binance"):  # Binance subscribes in its URL, the others with frames
            assert any(isinstance(r, Sent) and "subscribe" in r.text.lower() for r in records), path.name
        assert sum(isinstance(r, Received) for r in records) > 10
        times = [r.ts for r in records]
        assert times == sorted(times)
    binance = list(read_records(out / "binance-s0-c0.rec"))
    snapshots = [r for r in binance if isinstance(r, HttpResponse)]
    assert sorted(r.url.rsplit("/", 1)[1] for r in snapshots) == [
        f"depth?symbol={s.replace('-', '')}&limit=1000" for s in sorted(FEEDS["binance"])
    ]
    assert all(r.body.startswith('{"lastUpdateId":') for r in snapshots)


def test_record_summary_names_files_and_replay_commands(recorded: tuple[Path, Path, str]) -> None:
    out, _, stderr = recorded
    lines = stderr.splitlines()
    assert f"# recording 6 connections into {out}" in lines
    assert any(line.startswith("#    ") and "binance frames=" in line and "okx frames=" in line for line in lines)
    assert any(line.startswith("# recorded ") and f"into {out} (market frozen, caught up)" in line for line in lines)
    table = {line.split()[1]: line.split()[2:] for line in lines if line.split()[1:2] and line.split()[1] in FEEDS}
    assert sorted(table) == sorted(FEEDS)
    files, sessions, frames = (int(x) for x in table["okx"][:3])
    assert (files, sessions) == (1, 1)
    assert frames == sum(isinstance(r, Received) for r in read_records(out / "okx-s0-c0.rec"))
    for ex in FEEDS:
        assert f"ingest replay --exchange {ex} {out / f'{ex}-s0-c0.rec'}" in lines


def test_ctrl_c_leaves_complete_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    settings = _settings(tmp_path, {"binance": ["BTC-USDT", "ETH-USDT"]})
    exe = [sys.executable, "-m", "tools.cli", "record", "-c", str(settings), "--simulate", "--out", str(out)]
    proc = subprocess.Popen(exe, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    path = out / "binance-s0-c0.rec"
    deadline = time.monotonic() + 60
    while not (path.exists() and path.stat().st_size > 20_000):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1].decode()[-3000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert stdout == b""
    assert "(interrupted)" in stderr.decode()
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert sum(isinstance(r, Received) for r in read_records(path)) > 50


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exchange", "nasdaq"], "ingest: error: --exchange nasdaq: no feed of it in "),
        (["--out", "/proc/no-such-dir"], "ingest: error: --out /proc/no-such-dir: cannot write there: "),
    ],
)
def test_user_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    run = _ingest("record", "-c", str(_settings(tmp_path)), "--duration", "1", *args)
    assert run.returncode == 2
    assert run.stderr.startswith(message) and run.stderr.count("\n") == 1, run.stderr
    assert run.stdout == ""


def test_an_out_directory_with_a_recording_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "binance-s0-c0.rec").write_text("")
    run = _ingest("record", "-c", str(_settings(tmp_path)), "--out", str(tmp_path / "out"))
    assert run.returncode == 2
    assert run.stderr == f"ingest: error: --out {tmp_path / 'out'}: already holds a recording (binance-s0-c0.rec); "\
        "give another directory\n"
