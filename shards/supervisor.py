"""The parent process: Redis, the merger and the shard workers, started, watched and stopped.

Signal handlers only record the signal; the supervision loop acts on it. Stopping drains: workers
get SIGTERM first and publish everything they received followed by an end marker; then the merger
gets SIGTERM and writes everything until it has every shard's end marker.

While the cluster runs, `check_children` restarts:

- a child that died, after its restart delay: ``restart_delay``, doubled for every further death
  soon after a start (``HEALTHY_AFTER_S``), capped at ``restart_delay_max``; reset once the child
  has lived that long. Three quick deaths in a row are reported as a crash loop (log + counter);
- a hung child: each child beats a shared heartbeat from inside its main loop every
  ``heartbeat_interval`` (`shards.heartbeat`); one silent for ``hang_timeout`` is killed (SIGKILL)
  and then restarted like a dead one;
- the embedded Redis, if it died: on the same port and data folder (append-only), so the merger,
  which buffers meanwhile, reconnects on its own.

``var/pids.json`` shows who is who and these counters. ``var/cluster.lock`` is held while a cluster
lives: a second cluster on the same ``var_dir`` would take over its sockets and its embedded Redis's
folder, so it stops at once with a one-line error instead (`lock_var_dir`). The children, Redis
included, get SIGTERM if the parent dies without stopping them (`ingest.lifetime`).

At the start the parent asks Redis how much memory it has and warns when the streams, once each holds
``redis.maxlen`` entries, would take more than half of it (`bus.streams.memory_warning`).

With ``[metrics] listen`` set, the parent serves `/metrics`, `/health`, `/ready` and `/status`
(`shards.endpoint`) from the children's reports and the view the supervision loop hands over each tick.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import multiprocess as mp
import orjson
import redis
import structlog

from bus.embedded_redis import EmbeddedRedis
from bus.merger import run_merger
from bus.streams import memory_bound, memory_warning, redis_memory
from ingest.errors import UserError
from ingest.lifetime import run_child
from ingest.settings import Settings
from shards.endpoint import MetricsEndpoint
from shards.heartbeat import Heartbeat
from shards.monitor import Supervised
from shards.plan import Plan, make_plan
from shards.worker import run_worker

log = structlog.get_logger("supervisor")
_ctx = mp.get_context("spawn")

HEALTHY_AFTER_S = 10.0  # a child that lived this long was healthy: its restart delay starts over
CRASH_LOOP_DEATHS = 3  # quick deaths in a row that make a crash loop


@dataclass
class Child:
    """A child process; ``target(*args, **kwargs, heartbeat=...)`` is its entry point."""

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    tell_restarts: bool = False  # pass ``restarts=`` (how many times it was started again) to the target
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    proc: Any = None
    restarts: int = 0
    hangs: int = 0
    quick_deaths: int = 0
    crash_loops: int = 0
    delay: float = 0.0
    started_at: float = 0.0
    died_at: float | None = None

    def start(self) -> None:
        self.heartbeat.beat()  # a fresh start gets a full hang_timeout to come up
        kwargs = {**self.kwargs, "heartbeat": self.heartbeat}
        if self.tell_restarts:
            kwargs["restarts"] = self.restarts
        self.proc = _ctx.Process(target=run_child, args=(os.getpid(), self.target, self.args, kwargs), name=self.name,
                                 daemon=False)  # fmt: skip
        self.proc.start()
        self.started_at = time.monotonic()
        self.died_at = None

    def counters(self) -> dict[str, Any]:
        return {"pid": self.pid, "restarts": self.restarts, "hangs": self.hangs, "quick_deaths": self.quick_deaths,
                "crash_loops": self.crash_loops, "restart_delay": self.delay}  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else int(self.proc.pid)


class Cluster:
    """``with Cluster(settings) as c: c.start(); c.supervise(until)``; leaving the block drains
    the children and stops the embedded Redis."""

    def __init__(self, settings: Settings, *, check_memory: bool = True) -> None:
        """``check_memory``: `start` checks that Redis can hold the streams at ``redis.maxlen``. Takes
        ``var_dir``'s lock (`lock_var_dir`) until `close`."""
        self.settings = settings
        self.check_memory = check_memory
        self.plan: Plan = make_plan(settings.feeds, settings.shard_count())
        self.redis: EmbeddedRedis | None = None
        self.redis_url = settings.redis.url
        self.merger: Child | None = None
        self.workers: list[Child] = []
        self._stop_signal: int | None = None
        self._stopping = False
        self.healthy_after = HEALTHY_AFTER_S
        self.redis_restarts = 0
        self._redis_died_at: float | None = None
        self._redis_delay = settings.cluster.restart_delay
        self.metrics: MetricsEndpoint | None = None
        # Last: an __init__ that raised after taking it would hold the folder for the rest of the process.
        self._lock: int | None = lock_var_dir(settings.var_path)

    # -- lifecycle ------------------------------------------------------------------------------

    def start_redis(self) -> str:
        if self.settings.redis.url == "embedded":
            self.redis = EmbeddedRedis(self.settings.var_path / "redis", fsync_always=True).start()
            self.redis_url = self.redis.url
            log.info("embedded redis started", url=self.redis_url, tcp=self.redis.tcp_url, dir=str(self.redis.data_dir))
        return self.redis_url

    def start(self) -> None:
        self.settings.var_path.mkdir(parents=True, exist_ok=True)
        if self.settings.metrics.listen and self.metrics is None:
            self.metrics = MetricsEndpoint(self.settings)
            self.metrics.start()
        if self.redis is None and self.settings.redis.url == "embedded":
            self.start_redis()
        if self.check_memory:
            self.check_redis_memory()
        r = self.settings.redis
        c = self.settings.cluster
        m = self.settings.metrics
        endpoints = self.settings.bus_endpoints()
        repair = [self.settings.repair_endpoint(i) for i in range(len(endpoints))]
        self.merger = Child(
            "merger", run_merger,
            (endpoints, self.redis_url, r.key_prefix, r.maxlen, r.batch_size, r.batch_interval, c.drain_timeout,
             self.settings.log.level, self.settings.log.format),
            {"repair_endpoints": repair, "outage_buffer": r.outage_buffer, "heartbeat_interval": c.heartbeat_interval,
             "telemetry_endpoint": self.settings.telemetry_endpoint(), "telemetry_interval": m.interval},
        )  # fmt: skip
        self.merger.start()
        self.workers = [
            Child(f"shard-{i}", run_worker, (self.settings, i, self.plan.shards[i]), {"redis_url": self.redis_url},
                  tell_restarts=True)
            for i in range(len(endpoints))
        ]
        for w in self.workers:
            w.start()
        self._write_pids()
        self._hand_over_view()
        log.info("cluster started", shards=len(self.workers), merger_pid=self.merger.pid)

    def check_redis_memory(self) -> str | None:
        """Log the streams' memory bound, or warn (and return why) if Redis cannot hold it. Skipped
        while Redis does not answer (the merger waits for it and says so)."""
        streams, maxlen = self.settings.stream_count(), self.settings.redis.maxlen
        client = redis.Redis.from_url(self.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            maxmemory, system = redis_memory(client)
        except redis.RedisError:
            return None
        finally:
            client.close()
        warning = memory_warning(streams, maxlen, maxmemory, system)
        if warning is not None:
            log.warning("redis may run out of memory", why=warning)
        else:
            log.info("redis streams bounded", streams=streams, maxlen=maxlen,
                     up_to_gb=round(memory_bound(streams, maxlen) / 1e9, 2))  # fmt: skip
        return warning

    def _write_pids(self) -> None:
        """``var/pids.json``: who is who, for operators and tests (rewritten on every restart)."""
        pids = {"parent": os.getpid(), "merger": self.merger.pid if self.merger else None,
                "shards": [w.pid for w in self.workers], **self.health(),
                "metrics": self.metrics.address if self.metrics else None}  # fmt: skip
        tmp = self.settings.var_path / "pids.json.tmp"
        tmp.write_bytes(orjson.dumps(pids))
        os.replace(tmp, self.settings.var_path / "pids.json")

    def install_signal_handlers(self) -> None:
        def record(signum: int, _frame: FrameType | None) -> None:
            self._stop_signal = signum

        signal.signal(signal.SIGINT, record)
        signal.signal(signal.SIGTERM, record)

    @property
    def stop_requested(self) -> bool:
        return self._stop_signal is not None

    def supervise(
        self, until: Callable[[], bool], on_tick: Callable[[], None] | None = None, tick: float = 0.2
    ) -> None:
        """Watch the children until ``until()`` is true or a stop signal arrives; ``on_tick`` runs
        every ``tick`` seconds (progress reports, scheduled faults)."""
        while not until() and not self.stop_requested:
            self.check_children()
            self._hand_over_view()
            time.sleep(tick)
            if on_tick is not None:
                on_tick()
        if self._stop_signal is not None:
            log.info("stop requested", signal=signal.Signals(self._stop_signal).name)

    def health(self) -> dict[str, Any]:
        """The supervision counters: per child, and the embedded Redis's restarts."""
        children = [*([self.merger] if self.merger else []), *self.workers]
        return {"children": {c.name: c.counters() for c in children}, "redis_restarts": self.redis_restarts,
                "redis": None if self.redis is None or self.redis.proc is None else self.redis.proc.pid}  # fmt: skip

    def _hand_over_view(self) -> None:
        """The metrics endpoint's view of the children (it never touches them itself)."""
        if self.metrics is not None:
            children = [*([self.merger] if self.merger else []), *self.workers]
            self.metrics.supervised([Supervised(c.name, "merger" if c is self.merger else "shard", c.pid, c.alive,
                                                c.restarts, c.hangs) for c in children])  # fmt: skip

    def check_children(self) -> None:
        """Kill the hung, restart the dead (after their restart delay), restart a dead embedded Redis."""
        if self._stopping:
            return
        self._check_redis()
        c = self.settings.cluster
        for child in [*self.workers, *([self.merger] if self.merger else [])]:
            now = time.monotonic()
            if child.alive:
                silent = child.heartbeat.age()
                if silent < c.hang_timeout:
                    if child.quick_deaths and now - child.started_at >= self.healthy_after:
                        log.info("child healthy again; restart delay reset", child=child.name)
                        child.quick_deaths = 0
                    continue
                child.hangs += 1
                log.error("child hung (no heartbeat); killing it", child=child.name, pid=child.pid,
                          silent_s=round(silent, 1), hangs=child.hangs)  # fmt: skip
                child.proc.kill()
                child.proc.join(5)
            if child.died_at is None:
                self._died(child, now)
            elif now - child.died_at >= child.delay:
                child.restarts += 1
                child.start()
                self._write_pids()
                log.info("child restarted", child=child.name, restarts=child.restarts, pid=child.pid)

    def _died(self, child: Child, now: float) -> None:
        c = self.settings.cluster
        child.died_at = now
        lived = now - child.started_at
        child.quick_deaths = child.quick_deaths + 1 if lived < self.healthy_after else 0
        child.delay = min(c.restart_delay * 2 ** max(0, child.quick_deaths - 1), c.restart_delay_max)
        code = child.proc.exitcode if child.proc is not None else None
        log.warning("child died", child=child.name, exitcode=code, lived_s=round(lived, 1), restart_in_s=child.delay)
        if child.quick_deaths >= CRASH_LOOP_DEATHS:
            if child.quick_deaths == CRASH_LOOP_DEATHS:
                child.crash_loops += 1
            log.error("child in a crash loop; backing off", child=child.name, quick_deaths=child.quick_deaths,
                      restart_in_s=child.delay, crash_loops=child.crash_loops)  # fmt: skip
        self._write_pids()

    def _check_redis(self) -> None:
        """Start the embedded Redis again if it died: same port, same append-only data folder."""
        if self.redis is None or self.redis.alive:
            return
        now = time.monotonic()
        if self._redis_died_at is None:
            self._redis_died_at = now
            log.error("embedded redis died; restarting it", port=self.redis.port, restart_in_s=self._redis_delay)
            return
        if now - self._redis_died_at < self._redis_delay:
            return
        try:
            self.redis.start()
        except UserError as e:
            self._redis_died_at = now
            self._redis_delay = min(self._redis_delay * 2, self.settings.cluster.restart_delay_max)
            log.error("embedded redis did not start again; retrying", error=str(e), restart_in_s=self._redis_delay)
            return
        self.redis_restarts += 1
        self._redis_died_at = None
        self._redis_delay = self.settings.cluster.restart_delay
        log.warning("embedded redis restarted", url=self.redis.url, restarts=self.redis_restarts)
        self._write_pids()

    def stop(self) -> None:
        """Drain and stop the children: workers first, then the merger. Redis stays up (`close`)."""
        if self._stopping:
            return
        self._stopping = True
        timeout = self.settings.cluster.drain_timeout
        for w in self.workers:
            if w.alive:
                w.proc.terminate()
        _join_all(self.workers, timeout)
        if self.merger is not None and self.merger.alive:
            self.merger.proc.terminate()
            _join_all([self.merger], timeout + 5)
        log.info("cluster stopped")

    def close(self) -> None:
        """Stop the children (if still running) and the embedded Redis."""
        self.stop()
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lock_var_dir(var: Path) -> int:
    """Lock ``var/cluster.lock`` for this process (released when the returned descriptor is closed, or
    the process ends, however it ends); a UserError if another process holds it."""
    var.mkdir(parents=True, exist_ok=True)
    fd = os.open(var / "cluster.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(f"{var} is in use by another cluster (pid {holder}): stop it, or give this one a "
                        "cluster.var_dir of its own (ingest bench: --var-dir)") from None  # fmt: skip
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _join_all(children: list[Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for child in children:
        if child.proc is None:
            continue
        child.proc.join(max(0.0, deadline - time.monotonic()))
        if child.proc.is_alive():
            log.error("child did not stop in time; killing it", child=child.name)
            child.proc.kill()
            child.proc.join(5)
