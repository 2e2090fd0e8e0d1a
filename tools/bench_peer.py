"""The benchmark's peer phase: cryptofeed (`tools.peer_cryptofeed`, its own process) against a fresh
simulator with the same settings and seed as our phase, writing to its own embedded Redis, measured
the same way, and checked against the simulator's truth log.

cryptofeed's entries are not ours, so the check is done here from its documented stream layout
(`tools.peer_cryptofeed`): trades by id, price, amount and side; books rebuilt from the last full
``book`` entry and the ``delta`` entries after it, compared with the simulator's final books at every
level (the simulated books have fewer levels than the 1000 its snapshot request asks for).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any, cast

import orjson
import redis

from bus.embedded_redis import EmbeddedRedis
from ingest.errors import UserError
from ingest.lifetime import at_exec
from ingest.settings import Settings
from tools import peer_cryptofeed as peer
from tools.bench_measure import LatencyField, ProcessGroup, redis_ms, streams, window_stats
from tools.bench_phase import Phase, Say, SentAll, figures, sim_figures, start_simulator
from tools.sim.prebuilt import ReplaySpec
from tools.sim.process import SimulatorProcess
from tools.sim.truth import GroundTruth, load_truth

# Book deltas: timestamp = Binance "E" / 1000, receipt_timestamp = cryptofeed's time.time() on receipt.
LATENCY = LatencyField("delta", "", "timestamp", "s", "receipt_timestamp", "s")
Book = dict[Decimal, Decimal]


def run_peer(
    settings: Settings, duration: float, warmup: float, say: Say, *, replay: ReplaySpec | None = None
) -> dict[str, Any]:
    """Run the peer phase (``replay``: the same pre-built market as ours, with cryptofeed's trade stream);
    the figures (as our phase's) or ``{"error": why}``."""
    problem = peer.available()
    if problem is not None:
        return {"name": "cryptofeed", "error": problem}
    feeds = {f.exchange: list(f.symbols) for f in settings.feeds}
    if set(feeds) != {"binance"}:
        return {"name": "cryptofeed", "error": "the peer runner drives cryptofeed's Binance feed only"}
    symbols = feeds["binance"]
    var = settings.var_path / "peer"
    shutil.rmtree(var / "redis", ignore_errors=True)
    var.mkdir(parents=True, exist_ok=True)
    truth_path = var / "sim" / "truth.jsonl"
    # The same Redis configuration as the cluster's embedded one (append-only, fsync on every write).
    store = EmbeddedRedis(var / "redis", fsync_always=True).start()
    simulator: SimulatorProcess | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path = var / "cryptofeed.log"
    try:
        client = redis.Redis.from_url(store.url)
        since_ms = redis_ms(client)
        simulator, build_s = start_simulator(settings, truth_path, replay, say)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tools.peer_cryptofeed",
                 "--ws-url", simulator.urls["ws_url"]["binance"], "--rest-url", simulator.urls["rest_url"]["binance"],
                 "--redis-url", store.url, "--symbols", ",".join(symbols)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=at_exec,
            )  # fmt: skip
        pid = proc.pid
        group = ProcessGroup()
        phase = Phase("cryptofeed", client, group, lambda: [pid], lambda: _written(client), warmup, say)
        sent_all = SentAll(simulator if replay is not None and replay.msgs_per_s == 0 else None)
        while not (phase.done(duration) or (phase.in_window and sent_all())):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-800:]
                return {"name": "cryptofeed", "error": f"cryptofeed exited with status {proc.returncode}: {tail}"}
            time.sleep(0.2)
            phase.tick()
        simulator.freeze()
        frozen_at = time.monotonic()
        sim = sim_figures(simulator, build_s)
        truth = load_truth(truth_path)
        caught_up = _wait_caught_up(client, truth, since_ms, settings.cluster.drain_timeout)
        ended_at = time.monotonic() if sent_all.active else frozen_at  # as ours (tools.bench)
        cpu_s = group.cpu_since_mark([pid])
        last_ms = redis_ms(client)
        rss = group.rss([pid])
        proc.terminate()
        proc.wait(15)
        keys = [*streams(client, f"{peer.TRADE_KEY}-*"), *streams(client, f"{peer.BOOK_KEY}-*")]
        stats = window_stats(client, keys, phase.first_ms, last_ms, LATENCY)
        check = verify_peer(client, truth, since_ms)
        lost = check["lost"] + check["books_mismatched"]
        out = {"name": "cryptofeed", "version": _version()}
        out |= figures(stats, ended_at - phase.started_window, cpu_s, rss, group.peak_rss, lost)
        return out | {"caught_up": caught_up, "verify": check, "sim": sim}
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if simulator is not None:
            simulator.stop()
        store.stop()


def _version() -> str:
    from importlib.metadata import version

    return version("cryptofeed")


def _written(client: redis.Redis) -> int:
    total = 0
    for key in streams(client, f"*-{peer.FEED_ID}-*"):
        total += int(client.xlen(key))
    return total


def _wait_caught_up(client: redis.Redis, truth: GroundTruth, since_ms: int, timeout: float) -> bool:
    """After the freeze: every symbol's last trade is in Redis and nothing new arrived for 0.5 s."""
    deadline = time.monotonic() + timeout
    last_count, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = _written(client)
        if count != last_count:
            last_count, still_since = count, time.monotonic()
        elif time.monotonic() - still_since >= 0.5 and _last_trades_in(client, truth, since_ms):
            return True
        time.sleep(0.1)
    return False


def _last_trades_in(client: redis.Redis, truth: GroundTruth, since_ms: int) -> bool:
    for (_, symbol), trades in truth.trades.items():
        if not trades:
            continue
        rows = cast(list[Any], client.xrevrange(peer.stream_key(peer.TRADE_KEY, symbol), min=str(since_ms), count=1))
        if not rows or int(rows[0][1][b"id"]) < trades[-1].trade_id:
            return False
    return True


def _entries(client: redis.Redis, key: str, since_ms: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    start = str(since_ms)
    while True:
        rows = cast(list[Any], client.xrange(key, min=start, max="+", count=10_000))
        out += [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]
        if len(rows) < 10_000:
            return out
        start = "(" + rows[-1][0].decode()


def verify_peer(client: redis.Redis, truth: GroundTruth, since_ms: int) -> dict[str, int]:
    """Trades (each once, in id order, same price/amount/side) and final books, as `tools.verify` does
    for our streams."""
    result = dict.fromkeys(
        ("trades_expected", "trades_found", "lost", "duplicated", "out_of_order", "trades_mismatched",
         "books_checked", "books_mismatched"), 0,
    )  # fmt: skip
    for (_, symbol), expected in sorted(truth.trades.items()):
        want = {t.trade_id: t for t in expected}
        seen: list[int] = []
        for f in _entries(client, peer.stream_key(peer.TRADE_KEY, symbol), since_ms):
            tid = int(f["id"])
            seen.append(tid)
            t = want.get(tid)
            if t is not None and (Decimal(f["price"]), Decimal(f["amount"]), f["side"]) != (
                Decimal(t.price),
                Decimal(t.qty),
                t.side,
            ):
                result["trades_mismatched"] += 1
        counted = set(seen)
        result["trades_expected"] += len(want)
        result["trades_found"] += sum(1 for i in want if i in counted)
        result["lost"] += sum(1 for i in want if i not in counted)
        result["duplicated"] += len(seen) - len(counted)
        result["out_of_order"] += sum(1 for a, b in itertools.pairwise(seen) if b < a)
    for (_, symbol), tb in sorted(truth.books.items()):
        result["books_checked"] += 1
        bids, asks = rebuild_peer_book(_entries(client, peer.stream_key(peer.BOOK_KEY, symbol), since_ms))
        want_bids = {Decimal(p): Decimal(q) for p, q in tb.bids}
        want_asks = {Decimal(p): Decimal(q) for p, q in tb.asks}
        if (bids, asks) != (want_bids, want_asks):
            result["books_mismatched"] += 1
    return result


def rebuild_peer_book(entries: list[dict[str, str]]) -> tuple[Book, Book]:
    """A book from cryptofeed's ``BookStream`` entries: a ``book`` entry (``{"bid": {price: qty}, "ask":
    ...}``) replaces it, a ``delta`` entry (``{"bid": [[price, qty], ...], "ask": ...}``) sets levels,
    quantity 0 deleting."""
    bids: Book = {}
    asks: Book = {}
    for f in entries:
        if "book" in f:
            full = orjson.loads(f["book"])
            bids = {Decimal(p): Decimal(q) for p, q in full.get("bid", {}).items()}
            asks = {Decimal(p): Decimal(q) for p, q in full.get("ask", {}).items()}
        elif "delta" in f:
            delta = orjson.loads(f["delta"])
            for side, levels in ((bids, delta.get("bid", [])), (asks, delta.get("ask", []))):
                for p, q in levels:
                    price, qty = Decimal(p), Decimal(q)
                    if qty == 0:
                        side.pop(price, None)
                    else:
                        side[price] = qty
    return bids, asks


def require_peer(name: str | None) -> None:
    if name not in (None, "cryptofeed"):
        raise UserError(f"unknown peer {name!r} (known: cryptofeed)")
