"""``ingest bench``: the whole cluster against a seeded simulated market, measured.

The simulator (a fixed seed, ``--symbols`` symbols of one exchange, ``--rate`` market events per second
per symbol) feeds the cluster (shards, merger, embedded Redis) for ``--duration`` seconds. The first
``--warmup`` seconds (connections, snapshots, imports) are left out: the measured window runs from
the end of the warm-up to the moment the cluster has caught up with the frozen simulator.

The market is pre-built (`tools.sim.prebuilt`) before the simulator listens: enough frames for
``--msgs-per-s`` over ``--duration``, sent at that pace once every symbol has a subscriber, or with
``--max-speed`` as fast as the clients read them once they have fetched their books (until then
slowly, `tools.sim.playback`: the window measures a synced cluster, not a start-up in a flood).
The run then ends when all are sent, or at ``--duration``, and the window when the cluster has
written everything sent (the kernel's socket buffers take megabytes of frames at once, so "all
sent" is not "all taken"). ``--live`` runs the
simulator's live market model instead (the only one for exchanges whose simulator cannot
pre-build), whose own CPU limits the rate to ~8-11k msgs/s here.
``-s KEY=VALUE`` sets a cluster setting (``redis.batch_interval=0.001``).

Reported, as one JSON object on stdout (progress lines on stderr unless ``--json``):

- ``messages``: Redis entries committed in the window (every stream the cluster writes);
  ``seconds``: from the end of the warm-up to the freeze (with ``--max-speed``: to the moment the
  cluster has caught up); ``msgs_per_s`` = messages / seconds.
- ``cpu_us_per_msg``: user + system CPU of the cluster's processes (this parent, the shards, the
  merger; not the simulator, not Redis) over the window, per message. The bench's own work in this
  process (its sampling each tick, the catch-up check that reads the truth log) is left out:
  ``harness_cpu_s`` says how much that was.
- ``latency_ms`` (p50, p99, max): from the simulator stamping a book update to Redis committing its
  entry (Binance: ``E``, the simulator's publish time; Redis: the entry id's milliseconds), 1 ms
  resolution at both ends (see `tools.bench_measure`). ``latency_from_recv_ms``: from the shard's receive
  stamp (``ts_recv``) to the commit, the part the cluster itself is responsible for.
- ``cpu_s``, ``msgs_per_cpu_s``, ``processes`` (CPU seconds and RSS per process), ``verify`` (the
  verifier's counts), ``caught_up``, ``restarts``: the evidence behind the figures.
- ``rss_mb``: the cluster processes' summed RSS at the end; ``rss_peak_mb`` sampled every 0.2 s. With
  ``--rss-every S``: ``rss_series``, each process's RSS every S seconds from the start, and
  ``rss_flat``, per process the mean of the first and of the last minute and their difference.
- ``redis_cpu_s``, ``redis_cpu_us_per_entry``: the embedded Redis server's own CPU over the window
  (``/proc``, not part of ``cpu_us_per_msg``) and per entry committed: what one Redis can carry.
  ``redis_mb``: Redis's ``used_memory`` at the end (the bench's streams keep every entry: `BENCH_MAXLEN`).
- ``lost``: from `tools.verify` against the simulator's truth log over the whole run: trades lost
  plus books that do not match, plus bars that do not match (``verify.bars_checked``: every minute's
  bar of every symbol, when ``[bars] enabled``).
- ``sim``: the pre-built market's figures: frames built and sent, ``sent_per_s``, ``payload_mb``,
  ``build_s`` (seconds to build it, before the run).
- ``peer``: with ``--peer cryptofeed`` the same figures for cryptofeed (`tools.bench_peer`), run after
  ours against a fresh simulator with the same seed and settings; ``ratio`` = our messages per
  CPU-second / the peer's.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, cast

from ingest import logs
from ingest.errors import UserError
from ingest.settings import Settings, from_dict
from tools.bench_measure import LatencyField, ProcessGroup, redis_ms, streams, window_stats
from tools.bench_peer import require_peer, run_peer
from tools.bench_phase import Phase, Say, SentAll, figures, rss_summary, sim_figures, start_simulator
from tools.cli import print_json
from tools.sim.prebuilt import ReplaySpec

# Book deltas carry the simulator's publish time of the message they came from.
LATENCY = LatencyField("type", "delta", "ts_exchange", "ns", "ts_recv", "ns")
_BASES = (
    "BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "TRX", "LINK", "DOT", "LTC", "BCH", "AVAX", "ATOM", "ETC",
    "XLM", "NEAR", "FIL", "APT", "ARB", "OP", "SUI", "INJ", "UNI", "AAVE", "ALGO", "ICP", "HBAR", "VET", "SAND",
)  # fmt: skip
_QUOTES = {"kraken": "USD"}
# The bench verifies every entry the run wrote, so its streams keep them all (``redis.maxlen`` trims
# the oldest); ``-s redis.maxlen=N`` still sets it.
BENCH_MAXLEN = 1_000_000_000


def bench_symbols(exchange: str, count: int) -> list[str]:
    """``count`` canonical symbols: well-known bases first, then made-up ones (``X031-USDT``...)."""
    quote = _QUOTES.get(exchange, "USDT")
    bases = [*_BASES[:count], *(f"X{i:03d}" for i in range(len(_BASES), count))]
    return [f"{b}-{quote}" for b in bases]


def bench_settings(args: argparse.Namespace) -> Settings:
    """The bench's own settings: nothing read from settings.toml, runtime files under ``--var-dir``,
    then the ``-s KEY=VALUE`` overrides."""
    raw: dict[str, Any] = {
        "cluster": {"shards": args.shards or "auto", "var_dir": str(Path(args.var_dir).resolve())},
        "simulator": {"rate": args.rate, "seed": args.seed},
        "log": {"level": "warning"},
        "redis": {"maxlen": BENCH_MAXLEN},
        "feeds": [{"exchange": args.exchange, "symbols": bench_symbols(args.exchange, args.symbols)}],
    }
    for item in getattr(args, "overrides", []):
        override(raw, item)
    return from_dict(raw, str(Path.cwd() / "<ingest bench>"))


def override(raw: dict[str, Any], item: str) -> None:
    """Apply ``-s section.key=value`` (the value in TOML: ``0.001``, ``true``, ``"x"``; bare words are strings)."""
    key, sep, text = item.partition("=")
    path = key.strip().split(".")
    if not sep or len(path) != 2 or not all(path):
        raise UserError(f"-s {item!r}: expected SECTION.KEY=VALUE, e.g. -s redis.batch_interval=0.001")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    section = raw.setdefault(path[0], {})
    if not isinstance(section, dict):
        raise UserError(f"-s {item!r}: [{path[0]}] is not a table of settings")
    section[path[1]] = value


def replay_spec(args: argparse.Namespace, trade_stream: str) -> ReplaySpec | None:
    """The pre-built market for this bench (None with ``--live``): frames for ``--msgs-per-s`` over the
    whole ``--duration`` (the sending starts after the clients subscribed, so this is enough)."""
    if getattr(args, "live", False):
        return None
    from tools.sim.server import EXCHANGES

    if not hasattr(EXCHANGES.get(args.exchange), "prebuilt"):
        raise UserError(f"the pre-built market is Binance-only; for {args.exchange} add --live (its live model)")
    rate = 0.0 if args.max_speed else args.msgs_per_s
    return ReplaySpec(int(args.msgs_per_s * args.duration), rate, trade_stream)


def bench(args: argparse.Namespace) -> int:
    require_peer(args.peer)
    if args.warmup >= args.duration:
        raise UserError(f"--warmup ({args.warmup}) must be shorter than --duration ({args.duration})")
    settings = bench_settings(args)
    replay = replay_spec(args, "trade")
    say: Say = (lambda _line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    pace = "live model" if replay is None else "max speed" if args.max_speed else f"{args.msgs_per_s:g} msgs/s"
    say(
        f"# bench: {args.exchange} {args.symbols} symbols x {args.rate:g} events/s ({pace}), "
        f"{settings.shards_summary()}, {args.duration:g}s ({args.warmup:g}s warm-up), seed {args.seed}"
    )
    result = run_ours(settings, args.duration, args.warmup, say, rss_every=getattr(args, "rss_every", 0.0),
                      replay=replay)  # fmt: skip
    result["peer"] = None
    if args.peer:
        say("# peer: cryptofeed, same simulator settings and seed")
        peer = run_peer(settings, args.duration, args.warmup, say, replay=replay_spec(args, "aggTrade"))
        result["peer"] = peer
        if peer.get("msgs_per_cpu_s") and result.get("msgs_per_cpu_s"):
            result["ratio"] = round(result["msgs_per_cpu_s"] / peer["msgs_per_cpu_s"], 2)
    result["setup"] = {
        "exchange": args.exchange, "symbols": args.symbols, "rate": args.rate, "seed": args.seed,
        "duration": args.duration, "warmup": args.warmup, "cpus": os.cpu_count(), "python": platform.python_version(),
        "market": "live" if replay is None else "pre-built",
        "msgs_per_s": None if replay is None else replay.msgs_per_s,
        "overrides": list(getattr(args, "overrides", [])),
    }  # fmt: skip
    print_json(result)
    return 0


def run_ours(
    settings: Settings, duration: float, warmup: float, say: Say, *, rss_every: float = 0.0,
    replay: ReplaySpec | None = None,
) -> dict[str, Any]:
    """Our phase: simulator (``replay``: a pre-built market), cluster, measured window, verification."""  # fmt: skip
    from shards.supervisor import Cluster
    from tools.commands import connect_redis, redis_now_id
    from tools.sim.process import SimulatorProcess
    from tools.sim.truth import load_truth
    from tools.verify import verify, wait_caught_up

    logs.configure(settings.log.level, settings.log.format, process="parent")
    # Its streams hold what the pre-built market sends (``redis_mb``), not ``redis.maxlen`` entries each.
    cluster = Cluster(settings, check_memory=False)  # first: it fails if another bench uses this var dir
    shutil.rmtree(settings.var_path / "redis", ignore_errors=True)  # every bench starts from an empty Redis
    cluster.install_signal_handlers()
    truth_path = settings.var_path / "sim" / "truth.jsonl"
    prefix = settings.redis.key_prefix
    bar_grace = settings.bars.grace if settings.bars.enabled else None
    simulator: SimulatorProcess | None = None
    try:
        client = connect_redis(cluster.start_redis())
        since = redis_now_id(client)
        simulator, build_s = start_simulator(settings, truth_path, replay, say)
        cluster.settings = simulator.point_feeds(settings)
        cluster.start()

        def named() -> dict[str, int]:
            children = [cluster.merger, *cluster.workers]
            return {"parent": os.getpid()} | {c.name: c.pid for c in children if c is not None and c.pid is not None}

        def pids() -> list[int]:
            return list(named().values())

        def written() -> int:
            raw = cast(bytes | None, client.hget(f"{prefix}:merger", "written"))
            return int(raw or 0)

        group = ProcessGroup()
        phase = Phase("ours", client, group, pids, written, warmup, say, rss_every=rss_every, named=named)
        redis_pid = [cluster.redis.proc.pid] if cluster.redis is not None and cluster.redis.proc is not None else []
        redis_group = ProcessGroup()

        # The bench's own work in this process (the cluster's parent) is not the cluster's: its
        # sampling and progress lines each tick, and the catch-up check after the freeze (which
        # reads the simulator's truth log). It runs on this thread, measured and left out below.
        harness_s = 0.0

        def tick() -> None:
            nonlocal harness_s
            counted, started = phase.in_window, time.thread_time()
            phase.tick()
            if counted:
                harness_s += time.thread_time() - started
            if phase.in_window and redis_pid and not redis_group.marked:
                redis_group.mark(redis_pid)

        sent_all = SentAll(simulator if replay is not None and replay.msgs_per_s == 0 else None)
        cluster.supervise(lambda: phase.done(duration) or (phase.in_window and sent_all()), on_tick=tick)
        if cluster.stop_requested:
            raise UserError("stopped before the end of the bench")
        simulator.freeze()
        frozen_at = time.monotonic()
        sim = sim_figures(simulator, build_s)
        started = time.thread_time()
        caught_up = wait_caught_up(client, prefix, truth_path, since, settings.cluster.drain_timeout, bar_grace)
        harness_s += time.thread_time() - started
        ended_at = time.monotonic() if sent_all.active else frozen_at
        group.discount(os.getpid(), harness_s)
        cpu_s = group.cpu_since_mark(pids())
        redis_cpu_s = redis_group.cpu_since_mark(redis_pid)
        last_ms = redis_ms(client)
        rss = group.rss(pids())
        redis_mb = round(cast(int, client.info("memory")["used_memory"]) / 2**20, 1)
        processes = group.breakdown(named())
        restarts = sum(c.restarts for c in cluster.workers) + (cluster.merger.restarts if cluster.merger else 0)
        cluster.stop()
        stats = window_stats(client, streams(client, f"{prefix}:*:*:*"), phase.first_ms, last_ms, LATENCY)
        check = verify(client, prefix, load_truth(truth_path), since, bar_grace)
        lost = int(check["lost"]) + int(check["books_mismatched"]) + int(check["bars_mismatched"])
        out = figures(stats, ended_at - phase.started_window, cpu_s, rss, group.peak_rss, lost)
        out |= {"shards": len(cluster.workers), "caught_up": caught_up, "restarts": restarts}
        out |= {"processes": processes, "harness_cpu_s": round(harness_s, 2), "verify": check, "sim": sim}
        out |= {
            "redis_cpu_s": round(redis_cpu_s, 2),
            "redis_mb": redis_mb,
            "redis_cpu_us_per_entry": round(redis_cpu_s * 1e6 / stats.messages, 2) if stats.messages else None,
        }
        if rss_every:
            out |= {"rss_series": phase.rss_series, "rss_flat": rss_summary(phase.rss_series)}
        return out
    finally:
        cluster.close()
        if simulator is not None:
            simulator.stop()
