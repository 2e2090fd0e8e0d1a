"""The examples, run as a user runs them, against `ingest run --simulate`: real processes, the
simulator, real ZeroMQ and the cluster's embedded Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import ROOT

from bus import wire
from bus.consumer import redis_url
from bus.embedded_redis import EmbeddedRedis
from ingest.book.book import OrderBook
from ingest.errors import UserError
from ingest.events import BookDelta, BookSnapshot
from tools.verify import stream_entries

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT"]


def _python(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)  # type: ignore[call-overload]  # fmt: skip


@pytest.fixture
def cluster(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """The cluster writes to the tests' Redis (it outlives the cluster: the group worker finishes
    the streams after the cluster stopped)."""
    url = redis_server.url
    settings = tmp_path / "settings.toml"
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    settings.write_text(f"""
[redis]
url = "{url}"
[cluster]
shards = 2
drain_timeout = 10.0
[simulator]
rate = 40.0
levels = 20
[log]
format = "json"
[[feeds]]
exchange = "binance"
symbols = [{symbols}]
""")
    run = _python("-m", "tools.cli", "run", "--simulate", "--settings", str(settings))
    deadline = time.monotonic() + 60
    while not (tmp_path / "var" / "pids.json").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
        time.sleep(0.2)
    time.sleep(3)  # books valid, trades flowing
    try:
        yield settings, run
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)
            run.communicate(timeout=60)


def _book_at(client: redis.Redis, key: str, last_id: str) -> OrderBook:
    book = OrderBook()
    for fields in stream_entries(client, key):
        ev = wire.decode_fields(fields)
        if isinstance(ev, BookSnapshot):
            book.replace(ev.bids, ev.asks)
        elif isinstance(ev, BookDelta):
            book.apply(ev.bids, ev.asks)
        if fields["_id"] == last_id:
            return book
    raise AssertionError(f"{last_id} is not in {key}")


def test_the_examples_run_against_the_simulated_cluster(cluster: tuple[Path, subprocess.Popen[str]],
                                                        tmp_path: Path) -> None:  # fmt: skip
    settings, run = cluster
    client = redis.Redis.from_url(redis_url(settings))

    # 1. trades from the bus
    out, err = _python("examples/print_trades.py", "trade.binance.", "--count", "5", "-c", str(settings)).communicate(
        timeout=60
    )
    lines = out.splitlines()
    assert len(lines) == 5, err
    for line in lines:
        m = re.fullmatch(r"binance +(\S+) +(buy|sell) +([0-9.]+) @ ([0-9.]+)  id=(\d+)", line)
        assert m and m[1] in SYMBOLS, line
        # the trade printed is the trade the cluster wrote to Redis
        rows = [f for f in stream_entries(client, f"md:trade:binance:{m[1]}") if f.get("trade_id") == m[5]]
        assert [(f["side"], f["qty"], f["price"]) for f in rows] == [(m[2], m[3], m[4])]

    # 2. a book kept from Redis: what it prints is the book of its stream up to the entry it names
    out, err = _python("examples/keep_book.py", "binance", "ETH-USDT", "-c", str(settings), "--seconds", "2.5",
                       "--levels", "2").communicate(timeout=60)  # fmt: skip
    lines = out.splitlines()
    assert len(lines) >= 3 and len(lines) % 3 == 0, err
    head, bids, asks = lines[-3:]
    m = re.fullmatch(r"binance ETH-USDT seq=(\d+) valid entry=(\S+)", head)
    assert m, head
    want_bids, want_asks = _book_at(client, "md:book:binance:ETH-USDT", m[2]).depth(2)
    assert bids == "  bids " + "  ".join(f"{q}@{p}" for p, q in want_bids)
    assert asks == "  asks " + "  ".join(f"{q}@{p}" for p, q in want_asks)

    # 3. a group worker killed mid-way: every entry is processed at least once
    done = tmp_path / "processed.txt"
    common = ["examples/group_worker.py", "-c", str(settings), "--start", "0", "--out", str(done)]
    first = _python(*common, "--name", "w1", "--work", "2")
    time.sleep(3)
    os.kill(first.pid, signal.SIGKILL)  # killed while it works: the batch it read stays pending
    first.communicate()
    left = client.xpending_range("md:trade:binance:BTC-USDT", "example-workers", "-", "+", 10000, "w1")
    assert left, "w1 had nothing pending when it was killed"
    second = _python(*common, "--name", "w2", "--claim-idle", "1", "--idle-exit", "4")
    time.sleep(2)
    run.send_signal(signal.SIGTERM)  # the cluster drains and stops; the worker finishes the streams
    _, run_err = run.communicate(timeout=60)
    assert run.returncode == 0, run_err[-3000:]
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0 and "pending in the group: 0" in err, err
    processed: dict[tuple[str, str], set[str]] = {}
    for line in done.read_text().splitlines():
        stream, entry_id, *what = line.split()
        processed.setdefault((stream, entry_id), set()).add(what[-1])
    written = {(f"md:trade:binance:{s}", f["_id"]): f.get("trade_id", "") for s in SYMBOLS
               for f in stream_entries(client, f"md:trade:binance:{s}")}  # fmt: skip
    assert len(written) > 100
    # every entry processed (at least once: those the kill caught before their ack twice), with its trade
    assert {k: processed.get(k) for k in written} == {k: {v or "trade_gap"} for k, v in written.items()}
    assert processed.keys() == written.keys()


def test_redis_url_finds_the_embedded_redis_of_a_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[cluster]\nvar_dir = "v"\n')
    with pytest.raises(UserError, match="no embedded Redis has run"):
        redis_url(settings)
    (tmp_path / "v" / "redis").mkdir(parents=True)
    (tmp_path / "v" / "redis" / "redis.log").write_text(
        "1:M 21 Nov 2026 07:57:40.685 * Running mode=standalone, port=38865.\n"
        "2:M 21 Nov 2026 08:57:40.685 * Running mode=standalone, port=40001.\n"
    )
    assert redis_url(settings) == "redis://127.0.0.1:40001/0"
    settings.write_text('[redis]\nurl = "redis://example:1/2"\n')
    assert redis_url(settings) == "redis://example:1/2"
