"""What each `ingest` subcommand does (the parser is in `tools.cli`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, cast

import orjson
import redis

from bus import wire
from bus.streams import memory_summary
from ingest import logs
from ingest.errors import SettingsError, UserError
from ingest.settings import Settings, dump, load, reference
from shards.plan import make_plan
from tools import run_summary
from tools.cli import print_json
from tools.sim.exchanges import check_options as check_sim_options
from tools.sim.faults import CLUSTER, STALL_SECONDS, Fault, chaos_schedule, schedule
from tools.sim.process import SimulatorProcess
from tools.sim.truth import load_truth

if TYPE_CHECKING:
    from shards.supervisor import Cluster


def load_settings(path: str, shards: int | None = None) -> Settings:
    """The settings at ``path`` with the simulator's options checked (a `SettingsError` otherwise) and
    ``shards``, if given, in place of ``cluster.shards``."""
    settings = load(path)
    try:
        check_sim_options(settings.simulator.options)
    except ValueError as e:
        raise SettingsError(settings.source, "simulator.options", str(e)) from None
    if shards is not None:
        settings = dataclasses.replace(settings, cluster=dataclasses.replace(settings.cluster, shards=shards))
    return settings


def check_config(args: argparse.Namespace) -> int:
    if args.reference:
        sys.stdout.write(reference())
        return 0
    settings = load_settings(args.path)
    sys.stdout.write(dump(settings))
    print(
        f"# ok: {len(settings.feeds)} feeds, {sum(len(f.symbols) for f in settings.feeds)} symbols, "
        f"{settings.shards_summary()}; {memory_summary(settings.stream_count(), settings.redis.maxlen)}",
        file=sys.stderr,
    )
    return 0


def plan(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings, args.shards)
    p = make_plan(settings.feeds, settings.shard_count())
    if args.json:
        print_json({
            "shards": [
                {"shard": i, "endpoint": settings.bus_endpoint(i), "load": p.load(i),
                 "subscriptions": [dataclasses.asdict(a) for a in p.shards[i]]}
                for i in range(len(p.shards))
            ]
        })  # fmt: skip
    else:
        print(p.describe())
    return 0


def replay(args: argparse.Namespace) -> int:
    """The JSON result on stdout; progress (big files) and a short table on stderr."""
    from tools.replay import format_summary
    from tools.replay import replay as run_replay

    started = last = time.monotonic()

    def progress(records: int) -> None:
        nonlocal last
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            print(f"# {last - started:6.1f}s {records} records replayed", file=sys.stderr, flush=True)

    result = run_replay(args.exchange, list(args.files), progress)
    sys.stderr.write(format_summary(result, time.monotonic() - started))
    print_json(result)
    return 0


def tail(args: argparse.Namespace) -> int:
    import zmq

    settings = load_settings(args.settings)
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    for ep in settings.bus_endpoints():
        sock.connect(ep)
    sock.setsockopt(zmq.SUBSCRIBE, args.prefix.encode())
    print(
        f"# listening on {len(settings.bus_endpoints())} shard endpoints for {args.prefix or 'everything'!r}",
        file=sys.stderr,
    )
    seen = 0
    out = sys.stdout
    while args.count is None or seen < args.count:
        topic, _head, body = sock.recv_multipart()
        if wire.is_internal(topic):  # the merger's batches, control messages
            continue
        fields = orjson.loads(body)
        out.write(orjson.dumps(dict(zip(fields[::2], fields[1::2], strict=True))).decode() + "\n")
        out.flush()
        seen += 1
    return 0


def status(args: argparse.Namespace) -> int:
    from tools.top import app

    return app.status(args.settings, args.url, args.json)


def top(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tools.top import app

    return app.run_top(app.Top(args.settings, args.url, args.symbol), Console(), args.interval, args.frames)


def sim(args: argparse.Namespace) -> int:
    from tools.sim.process import serve_in_foreground

    settings = load_settings(args.settings)
    overrides = {k: v for k, v in (("port", args.port), ("rate", args.rate)) if v is not None}
    sim_settings = dataclasses.replace(settings.simulator, **overrides)
    logs.configure(settings.log.level, settings.log.format, process="sim")
    serve_in_foreground(sim_settings, feed_symbols(settings), settings.var_path / "sim" / "truth.jsonl")
    return 0


def feed_symbols(settings: Settings) -> dict[str, list[str]]:
    """Every feed's symbols by exchange (what the simulator is asked to serve)."""
    out: dict[str, list[str]] = {}
    for f in settings.feeds:
        out.setdefault(f.exchange, []).extend(f.symbols)
    return out


def run(args: argparse.Namespace) -> int:
    from shards.supervisor import Cluster
    from tools.verify import verify, wait_caught_up

    settings = load_settings(args.settings, args.shards)
    if (args.faults or args.chaos) and not args.simulate:
        raise UserError("--faults and --chaos need --simulate: faults are injected through the simulator")
    if args.faults and args.chaos:
        raise UserError("--chaos already includes the --faults schedule: give one of them")
    if args.verify and not args.simulate:
        raise UserError("--verify needs --simulate: the simulator's ground truth is what Redis is checked against")
    if not settings.feeds:
        raise UserError(f"{settings.source}: no [[feeds]] tables: nothing to ingest")
    logs.configure(settings.log.level, settings.log.format, process="parent")
    bar_grace = settings.bars.grace if settings.bars.enabled else None
    cluster = Cluster(settings)
    cluster.install_signal_handlers()
    simulator: SimulatorProcess | None = None
    truth_path = settings.var_path / "sim" / "truth.jsonl"
    try:
        client = connect_redis(cluster.start_redis())
        since = redis_now_id(client)
        if args.simulate:
            simulator = SimulatorProcess(settings.simulator, feed_symbols(settings), truth_path).start()
            cluster.settings = simulator.point_feeds(settings)
        cluster.start()
        started = time.monotonic()
        until = (lambda: time.monotonic() - started >= args.duration) if args.duration else (lambda: False)
        faults: list[Fault] = []
        if simulator is not None and (args.faults or args.chaos):
            faults = _fault_schedule(simulator, cluster, args.duration or 3600.0, chaos=args.chaos)
        ticker = _Ticker(client, cluster, started, simulator, faults)
        cluster.supervise(until, on_tick=ticker.tick)
        caught_up = True
        if simulator is not None and args.verify and not cluster.stop_requested:
            simulator.freeze()
            caught_up = wait_caught_up(
                client, settings.redis.key_prefix, truth_path, since, settings.cluster.drain_timeout, bar_grace
            )
        cluster.stop()
        ticker.progress()
        result = None
        if args.verify:
            result = verify(client, settings.redis.key_prefix, load_truth(truth_path), since, bar_grace)
            if args.faults or args.chaos:
                result["faults_injected"] = len(ticker.fired)
            if not caught_up:
                print("# the cluster had not caught up with the simulator when the run ended", file=sys.stderr)
        _summarize(client, cluster, since, started, ticker, result, faults=args.faults or args.chaos)
        if result is not None:
            print_json(result)  # the last stdout line
            return 0 if result["verified"] else 1
        return 0
    finally:
        cluster.close()
        if simulator is not None:
            simulator.stop()


class _Ticker:
    """What the parent does between supervision checks: a progress line every 5 s, and the
    scheduled simulator faults when their time comes."""

    def __init__(
        self,
        client: redis.Redis,
        cluster: Cluster,
        started: float,
        simulator: SimulatorProcess | None,
        faults: list[Fault],
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.settings = cluster.settings
        self.started = started
        self.last_progress = started
        self.simulator = simulator
        self.faults = faults
        self.fired: list[Fault] = []

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_progress >= 5:
            self.last_progress = now
            self.progress()
        while self.faults and self.simulator is not None and now - self.started >= self.faults[0].at:
            f = self.faults.pop(0)
            if f.exchange == CLUSTER:
                what = self._kill(f)
            else:
                params: dict[str, Any] = {"symbol": f.symbol}
                if f.kind in ("stall", "notice"):
                    params["seconds"] = STALL_SECONDS
                elif f.kind != "drop":
                    params["count"] = f.count
                self.simulator.fault(f.kind, f.exchange, **params)
                what = f"{f.kind} x{f.count} on {f.exchange} {f.symbol}"
            self.fired.append(f)
            print(f"# fault: {what}", file=sys.stderr, flush=True)

    def _kill(self, f: Fault) -> str:
        """SIGKILL one of the cluster's processes (the supervisor must bring it back)."""
        c = self.cluster
        if f.kind == "kill-shard":
            pid, name = c.workers[f.count % len(c.workers)].pid, f"shard {f.count % len(c.workers)}"
        elif f.kind == "kill-merger":
            pid, name = c.merger.pid if c.merger else None, "the merger"
        else:
            pid, name = (c.redis.proc.pid if c.redis and c.redis.proc else None), "the embedded redis"
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return f"SIGKILL {name} (pid {pid})"

    def progress(self) -> None:
        """One stderr line with the merger's counters (from Redis) and the time since the start."""
        try:
            raw = cast(dict[bytes, bytes], self.client.hgetall(f"{self.settings.redis.key_prefix}:merger"))
            stats = {k.decode(): v.decode() for k, v in raw.items()}
        except redis.RedisError as e:
            stats = {"redis": f"unreachable ({e})"}
        shown = " ".join(
            f"{k}={stats[k]}"
            for k in ("written", "holes", "repaired", "lost", "dropped", "restarts_seen", "redis_state", "buffered")
            if k in stats
        )
        print(f"# {time.monotonic() - self.started:6.1f}s {shown}", file=sys.stderr, flush=True)


def _summarize(
    client: redis.Redis, cluster: Cluster, since: str, started: float, ticker: _Ticker,
    verified: dict[str, Any] | None, faults: bool,
) -> None:  # fmt: skip
    """The one-screen summary of the run, on stderr (`tools.run_summary`)."""
    settings = cluster.settings
    how = "stopped by Ctrl-C or SIGTERM" if cluster.stop_requested else "duration reached"
    summary = run_summary.RunSummary(time.monotonic() - started, len(cluster.workers), how,
                                     faults=len(ticker.fired) if faults else None, verify=verified)  # fmt: skip
    health = cluster.health()
    summary.restarts = {name: c["restarts"] for name, c in health["children"].items()}
    if cluster.redis is not None:
        summary.restarts["redis"] = health["redis_restarts"]
    run_summary.gather(client, settings.redis.key_prefix, feed_symbols(settings), since, summary)
    sys.stderr.write(run_summary.format_summary(summary))
    sys.stderr.flush()


def _fault_schedule(simulator: SimulatorProcess, cluster: Cluster, duration: float, chaos: bool) -> list[Fault]:
    settings = cluster.settings
    status = simulator.status()["exchanges"]
    books = {e: s.get("book_faults", ["skip"]) for e, s in status.items()}
    if not chaos:
        return schedule(feed_symbols(settings), books, duration, seed=settings.simulator.seed)
    # A muted book is only seen by a feed that expects its books to keep talking (symbol_timeout).
    watched = {f.exchange for f in settings.feeds if f.symbol_timeout}
    offered = {
        e: [*books[e], *(k for k in s.get("connection_faults", []) if k != "mute" or e in watched)]
        for e, s in status.items()
    }
    return chaos_schedule(
        feed_symbols(settings), offered, duration, shards=settings.shard_count(),
        embedded_redis=cluster.redis is not None, seed=settings.simulator.seed,
    )  # fmt: skip


def connect_redis(url: str) -> redis.Redis:
    """A client for ``url`` that has answered a PING (a `UserError` naming the URL otherwise)."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as e:
        raise UserError(f"cannot reach Redis at {url}: {e}") from None
    return client


def redis_now_id(client: redis.Redis) -> str:
    """A stream id for the server's "now": entries written from here on have ids above it."""
    seconds, micros = client.time()
    return f"{int(seconds) * 1000 + int(micros) // 1000}-0"
