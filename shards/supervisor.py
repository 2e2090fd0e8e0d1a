"""The parent process: Redis, the merger and the shard workers, started, watched and stopped.

Signal handlers only record the signal; the supervision loop acts on it. A worker or
the merger that dies while the cluster runs is started again after ``restart_delay``. Stopping
drains: workers get SIGTERM first and publish everything they received followed by an end marker;
then the merger gets SIGTERM and writes everything until it has every shard's end marker.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import multiprocess as mp
import orjson
import structlog

from bus.embedded_redis import EmbeddedRedis
from bus.merger import run_merger
from ingest.settings import Settings
from shards.plan import Plan, make_plan
from shards.worker import run_worker

log = structlog.get_logger("supervisor")
_ctx = mp.get_context("spawn")


@dataclass
class Child:
    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]
    proc: Any = None
    restarts: int = 0
    died_at: float | None = None

    def start(self) -> None:
        self.proc = _ctx.Process(target=self.target, args=self.args, name=self.name, daemon=False)
        self.proc.start()
        self.died_at = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else int(self.proc.pid)


class Cluster:
    """``with Cluster(settings) as c: c.start(); c.supervise(until)``; leaving the block drains
    the children and stops the embedded Redis."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.plan: Plan = make_plan(settings.feeds, settings.shard_count())
        self.redis: EmbeddedRedis | None = None
        self.redis_url = settings.redis.url
        self.merger: Child | None = None
        self.workers: list[Child] = []
        self._stop_signal: int | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start_redis(self) -> str:
        if self.settings.redis.url == "embedded":
            self.redis = EmbeddedRedis(self.settings.var_path / "redis").start()
            self.redis_url = self.redis.url
            log.info("embedded redis started", url=self.redis_url, dir=str(self.redis.data_dir))
        return self.redis_url

    def start(self) -> None:
        self.settings.var_path.mkdir(parents=True, exist_ok=True)
        if self.redis is None and self.settings.redis.url == "embedded":
            self.start_redis()
        r = self.settings.redis
        c = self.settings.cluster
        endpoints = self.settings.bus_endpoints()
        self.merger = Child(
            "merger", run_merger,
            (endpoints, self.redis_url, r.key_prefix, r.maxlen, r.batch_size, r.batch_interval, c.drain_timeout,
             self.settings.log.level, self.settings.log.format),
        )  # fmt: skip
        self.merger.start()
        self.workers = [
            Child(f"shard-{i}", run_worker, (self.settings, i, self.plan.shards[i])) for i in range(len(endpoints))
        ]
        for w in self.workers:
            w.start()
        self._write_pids()
        log.info("cluster started", shards=len(self.workers), merger_pid=self.merger.pid)

    def _write_pids(self) -> None:
        """``var/pids.json``: who is who, for operators and tests (rewritten on every restart)."""
        pids = {"parent": os.getpid(), "merger": self.merger.pid if self.merger else None,
                "shards": [w.pid for w in self.workers]}  # fmt: skip
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
            time.sleep(tick)
            if on_tick is not None:
                on_tick()
        if self._stop_signal is not None:
            log.info("stop requested", signal=signal.Signals(self._stop_signal).name)

    def check_children(self) -> None:
        """Restart any child that died (after ``restart_delay``)."""
        if self._stopping:
            return
        now = time.monotonic()
        for child in [*self.workers, *([self.merger] if self.merger else [])]:
            if child.alive:
                continue
            if child.died_at is None:
                child.died_at = now
                code = child.proc.exitcode if child.proc is not None else None
                log.warning("child died", child=child.name, exitcode=code)
            elif now - child.died_at >= self.settings.cluster.restart_delay:
                child.restarts += 1
                child.start()
                self._write_pids()
                log.info("child restarted", child=child.name, restarts=child.restarts, pid=child.pid)

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
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
