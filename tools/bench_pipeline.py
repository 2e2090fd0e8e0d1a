"""The per-event Python of a shard, measured without the exchange's socket, on the simulator's own
Binance frames, two ways:

- ``shard_us_per_frame``, the whole path a shard's event loop runs per frame apart from the WebSocket
  read: ``Frames.on_frame`` of a session of a real `FeedConnection` (codec -> `BookSync` -> `Arbiter`
  -> `Trades`), the worker's bars and a real `Publisher` (bound on ``inproc://``: its batches are
  encoded, numbered, kept for repairs and sent, to no subscriber), a batch flushed every ``--batch``
  frames (a shard at 10k msgs/s flushes every few frames, `bus.publisher.FLUSH_GAP_S` apart);
- ``cpu_us_per_frame``, the older figure, kept comparable: codec -> `BookSync` -> `Arbiter` -> `Trades`
  -> `BarFeed` -> a list append, the glue spelled out here rather than the session's (no encoding).

The frames are made first (not timed) by the simulator's market model and its Binance protocol
(`tools.sim.exchanges.binance`, the bench's default mix: ``--symbols`` symbols, ``--rate`` events per
second each, one depth message per symbol per 10 ms tick and one message per trade, combined-stream
wrapped as a shard subscribes). Each symbol's book starts from the simulator's REST depth body. Then
every frame goes through the same calls a session makes for it (``Frames.on_frame``, the feed's
arbiter and trade continuity, the shard's bars), and the process CPU time of each loop is reported
per frame (the best of ``--repeat`` passes)::

    .venv/bin/python -m tools.bench_pipeline --symbols 100 --seconds 5 --repeat 3
    {"frames":64819,"published":65019,"cpu_us_per_frame":12.336,"runs_us_per_frame":[12.336,12.666,12.478],
     "shard_us_per_frame":19.9,"shard_runs_us_per_frame":[...],"shard_published":65019,...}

``--profile N``: one more pass of the shard path under cProfile, the top N functions by own time on stderr.

``--cold N``: the shard path again, N frames and one flush a turn, timed twice: with the CPU caches
evicted before each turn (a write to every line of `EVICT_BYTES`, not timed) and without. A shard at
10k msgs/s wakes every 2 ms for ~11 frames, and in between its core runs the simulator, Redis, the
merger and the other shard: it finds its code and data out of the caches, which is why it costs ~2.4x
per frame what it costs at full load (``"cold": {"every", "us_per_frame", "warm_us_per_frame"}``).
Not a test and not the benchmark (`ingest bench` is): a reproducible figure for A/B of the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
import structlog
import uvloop

from bus.publisher import Publisher
from ingest.book.sync import BookSync, NeedSnapshot, sync_for
from ingest.events import BookDelta, BookSnapshot, Event, Trade
from ingest.exchanges import get_spec
from ingest.exchanges.base import ExchangeSpec
from ingest.session.arbiter import Arbiter
from ingest.session.connection import FeedConnection
from ingest.session.session import Session
from ingest.session.trades import Trades
from ingest.settings import BarSettings
from shards.bars import BarFeed
from tools.bench import bench_symbols
from tools.sim.exchanges.binance import SIM, native
from tools.sim.market import MarketEvent, SymbolMarket
from tools.sim.truth import TruthLog
from tools.sim.venue import Connection, Venue

EXCHANGE = "binance"
TICK_NS = 10_000_000  # the simulator's clock tick
SNAPSHOT_LIMIT = 1000
SESSION = 1
BATCH = 1000  # frames between emptyings of the published list, when events are not kept
START_NS = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC: the frames are the same every run


class _Collector:
    """Stands where a client connection is in the simulator's venue: keeps what is sent to it."""

    def __init__(self, subs: dict[str, str]) -> None:
        self.id = 0
        self.subs = subs
        self.closed = False
        self.sent: list[str] = []

    def send(self, text: str | bytes) -> None:
        self.sent.append(text if isinstance(text, str) else text.decode())


class _Counts:
    trade_gaps = 0
    trades_backfilled = 0
    trades_unfilled = 0


def make_frames(
    symbols: Sequence[str], rate: float, seconds: float, seed: int, levels: int, trade_ratio: float
) -> tuple[dict[str, bytes], list[str]]:
    """Each native's REST depth body at the start, and the frames a shard receives over ``seconds``."""
    markets = {s: SymbolMarket(s, seed, levels, trade_ratio) for s in symbols}
    with tempfile.TemporaryDirectory() as tmp:
        venue = Venue(EXCHANGE, markets, TruthLog(Path(tmp) / "truth.jsonl"), 20.0, 60.0, 1 << 30)
        sim = SIM(venue)
        subs = {f"{native(s).lower()}@{kind}": s for s in symbols for kind in ("depth@100ms", "trade")}
        collector = _Collector(subs)
        venue.connections.add(cast(Connection, collector))
        bodies = {}
        for s, m in markets.items():
            bids, asks = m.book(SNAPSHOT_LIMIT)
            bodies[native(s)] = orjson.dumps({"lastUpdateId": m.update_id, "bids": bids, "asks": asks})
        carry = dict.fromkeys(symbols, 0.0)
        ts = START_NS
        for _ in range(int(seconds * 1e9 / TICK_NS)):
            batch: dict[str, list[MarketEvent]] = {}
            for s, m in markets.items():
                due = carry[s] + rate * TICK_NS / 1e9
                n = int(due)
                carry[s] = due - n
                if n:
                    batch[s] = [m.step(ts + TICK_NS * (i + 1) // n) for i in range(n)]
            ts += TICK_NS
            if batch:
                sim.publish(ts, batch)
        venue.truth.close()
    return bodies, collector.sent


class Pipeline:
    """One session's worth of the shard's per-event work, for one feed (redundancy 1).

    ``keep``: every published event stays in ``published``; otherwise it is emptied every `BATCH`
    frames (a publisher holds no events: the garbage collector must not see a growing heap the shard
    never has) and ``count`` says how many there were."""

    def __init__(self, spec: ExchangeSpec, natives: dict[str, str], keep: bool = True) -> None:
        self.keep = keep
        self.count = 0
        self.published: list[Event] = []
        self.bars = BarFeed(BarSettings(), self.published.append)
        self.codec = spec.new_codec(natives)
        self.syncs: dict[str, BookSync] = {n: sync_for(spec, s, n) for n, s in natives.items()}
        self.natives = natives
        self.arbiter = Arbiter(spec.sequence_rule)
        self.arbiter.open(SESSION)
        self.trades = Trades(
            spec, natives, "", self.arbiter, self.bars.publish, _no_history, _Counts(), structlog.get_logger()
        )

    def start(self, bodies: dict[str, bytes], ts: int) -> None:
        for n, body in bodies.items():
            self._act(self.syncs[n], self.syncs[n].on_snapshot(self.codec.decode_snapshot(body, n, ts)))

    def run(self, frames: Sequence[str], ts: int) -> None:
        """What ``Frames.on_frame`` and the feed do for each frame (the bus send is a list append)."""
        decode, natives, syncs, trade, admit = self.codec.decode, self.natives, self.syncs, self.arbiter.trade, \
            self.trades.admit  # fmt: skip
        for i, frame in enumerate(frames):
            ts += 1000
            if not self.keep and i % BATCH == 0:
                self.count += len(self.published)
                self.published.clear()
            for item in decode(frame, ts):
                if isinstance(item, Trade):
                    if item.native in natives and trade(item):
                        admit(item)
                elif isinstance(item, BookDelta | BookSnapshot):
                    sync = syncs.get(item.native)
                    if sync is not None:
                        self._act(sync, sync.on_delta(item) if isinstance(item, BookDelta) else sync.on_snapshot(item))
        self.count += len(self.published)
        if not self.keep:
            self.published.clear()

    def _act(self, sync: BookSync, actions: Sequence[Event | NeedSnapshot]) -> None:
        for a in actions:
            if not isinstance(a, NeedSnapshot):
                for out in self.arbiter.book(SESSION, a, sync, self._syncs_of):
                    self.bars.publish(out)

    def _syncs_of(self, native: str) -> dict[int, BookSync]:
        return {SESSION: self.syncs[native]}


class ShardPath:
    """The shard's own objects for one feed connection (redundancy 1), its one session registered as
    `FeedConnection` registers a running one, but never connected: frames are handed to its
    ``Frames.on_frame`` as the WebSocket's callback hands them. What they publish goes where the worker
    sends it (`shards.worker.connections_for`'s wiring), into a real `Publisher`."""

    _endpoints = itertools.count()

    def __init__(self, spec: ExchangeSpec, natives: dict[str, str], batch: int) -> None:
        self.batch = batch
        endpoint = f"inproc://bench-pipeline-{os.getpid()}-{next(self._endpoints)}"
        self.publisher = Publisher(endpoint, 0)
        self.publisher.batch_sends(asyncio.get_running_loop())
        self.bars = BarFeed(BarSettings(), self.publisher.publish)
        self.feed = FeedConnection(  # wired as `shards.worker` wires its connections
            spec, list(natives.values()), ("book", "trades"), self.bars.publish, "bench-c0",
            publish_book=self.publisher.publish,
        )  # fmt: skip
        self.session = Session(self.feed, 0, "bench-c0")
        self.feed.sessions[0] = self.feed.latest = self.session
        self.feed.arbiter.open(0)

    def start(self, bodies: dict[str, bytes], ts: int) -> None:
        session = self.session
        for n, body in bodies.items():
            sync = session.syncs[n]
            session._act(sync, sync.on_snapshot(session.codec.decode_snapshot(body, n, ts)))
        self.publisher.flush()

    def run(self, frames: Sequence[bytes], evict: Callable[[], None] | None = None) -> float:
        """Every frame through the session's ``Frames.on_frame``, `batch` frames a turn, the open batch
        sent at the end of each; returns the process CPU seconds of the turns. ``evict``, if given, is
        called before each turn, untimed (`evictor`)."""
        on_frame, flush, batch = self.session.frames.on_frame, self.publisher.flush, self.batch
        cpu, t0 = 0.0, time.process_time()
        for i in range(0, len(frames), batch):
            if evict is not None:  # the clock stops around it
                cpu += time.process_time() - t0
                evict()
                t0 = time.process_time()
            for frame in frames[i:i + batch]:
                on_frame(frame, False)
            flush()
        return cpu + time.process_time() - t0

    def close(self) -> None:
        self.publisher.close(0)


async def _timed_shard(bodies: dict[str, bytes], frames: Sequence[bytes], natives: dict[str, str], batch: int,
                       evict: Callable[[], None] | None = None) -> tuple[float, int]:  # fmt: skip
    """CPU seconds of one pass of the shard path (``evict``: see `ShardPath.run`), and the events it published."""
    path = ShardPath(get_spec(EXCHANGE), natives, batch)
    path.start(bodies, START_NS)
    cpu = path.run(frames, evict)
    path.close()
    return cpu, path.publisher.published


EVICT_BYTES = 64 << 20  # more than the last-level cache of the machines measured


def evictor() -> Callable[[], None]:
    """A call that pushes the caches' contents out: a write to each 64-byte line of `EVICT_BYTES`."""
    buf = bytearray(EVICT_BYTES)
    ones = b"\x01" * (EVICT_BYTES // 64)

    def evict() -> None:
        buf[::64] = ones

    return evict


async def _no_history(url: str) -> bytes:
    raise RuntimeError("the pipeline bench reads no history")


def _timed(bodies: dict[str, bytes], frames: Sequence[str], natives: dict[str, str]) -> tuple[float, Pipeline]:
    pipe = Pipeline(get_spec(EXCHANGE), natives, keep=False)
    ts = START_NS
    pipe.start(bodies, ts)
    t0 = time.process_time()
    pipe.run(frames, ts)
    return time.process_time() - t0, pipe


def main(argv: Sequence[str] | None = None, out: Callable[[str], Any] = print) -> int:
    p = argparse.ArgumentParser(prog="bench_pipeline", description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--symbols", type=int, default=100, help="symbols (default 100, as the bench)")
    p.add_argument("--rate", type=float, default=100.0, help="market events per second per symbol (default 100)")
    p.add_argument("--seconds", type=float, default=10.0, help="market seconds of frames (default 10)")
    p.add_argument("--seed", type=int, default=7, help="the market model's seed (default 7, as the bench)")
    p.add_argument("--levels", type=int, default=50, help="levels per side of the simulated books (default 50)")
    p.add_argument("--trade-ratio", type=float, default=0.3, help="share of events that are trades (default 0.3)")
    p.add_argument("--repeat", type=int, default=3, help="timed passes; the best is reported (default 3)")
    p.add_argument("--batch", type=int, default=8, help="shard path: frames per batch sent (default 8)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="also profile a shard pass: top N on stderr")
    p.add_argument("--cold", type=int, default=0, metavar="N",
                   help="also time the shard path N frames a turn with the CPU caches evicted before each turn, "
                        "and without (the cost of a shard woken for a few frames at a time)")
    args = p.parse_args(argv)
    symbols = bench_symbols(EXCHANGE, args.symbols)
    natives = {native(s): s for s in symbols}
    bodies, frames = make_frames(symbols, args.rate, args.seconds, args.seed, args.levels, args.trade_ratio)
    raw = [f.encode() for f in frames]  # the WebSocket hands a session bytes
    runs: list[float] = []
    shard_runs: list[float] = []
    pipe: Pipeline | None = None
    shard_published = 0
    for _ in range(args.repeat):  # interleaved, so that both see the same machine
        cpu, pipe = _timed(bodies, frames, natives)
        runs.append(cpu)
        cpu, shard_published = uvloop.run(_timed_shard(bodies, raw, natives, args.batch))
        shard_runs.append(cpu)
    cold: dict[str, object] | None = None
    if args.cold > 0 and raw:
        evict = evictor()
        cold_runs, warm_runs = [], []
        for _ in range(args.repeat):
            cold_runs.append(uvloop.run(_timed_shard(bodies, raw, natives, args.cold, evict))[0])
            warm_runs.append(uvloop.run(_timed_shard(bodies, raw, natives, args.cold))[0])
        cold = {"every": args.cold, "us_per_frame": round(min(cold_runs) * 1e6 / len(raw), 3),
                "warm_us_per_frame": round(min(warm_runs) * 1e6 / len(raw), 3)}  # fmt: skip
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        uvloop.run(_timed_shard(bodies, raw, natives, args.batch))
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(args.profile)
        sys.stderr.write(text.getvalue())
    published = pipe.count if pipe is not None else 0
    result = {
        "frames": len(frames),
        "published": published,
        "cpu_us_per_frame": round(min(runs) * 1e6 / len(frames), 3) if frames and runs else None,
        "runs_us_per_frame": [round(r * 1e6 / len(frames), 3) for r in runs] if frames else [],
        "shard_us_per_frame": round(min(shard_runs) * 1e6 / len(frames), 3) if frames and shard_runs else None,
        "shard_runs_us_per_frame": [round(r * 1e6 / len(frames), 3) for r in shard_runs] if frames else [],
        "shard_published": shard_published,
        "symbols": args.symbols,
        "rate": args.rate,
        "seconds": args.seconds,
        "cold": cold,
    }
    out(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
