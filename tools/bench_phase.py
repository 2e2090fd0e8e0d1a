"""One measured phase of the benchmark (ours or the peer's): warm-up, then a window in which CPU,
memory and Redis entries are counted, and the figures every phase reports."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from ingest.settings import Settings
from tools.bench_measure import ProcessGroup, WindowStats, percentiles, redis_ms, sample
from tools.commands import feed_symbols
from tools.sim.prebuilt import ReplaySpec
from tools.sim.process import SimulatorProcess

Say = Callable[[str], None]
PROGRESS_EVERY_S = 5.0


class Phase:
    """Call `tick` often while the phase runs: it samples memory, starts the measured window once
    the warm-up is over (CPU marked, Redis clock read) and says a progress line every 5 s. With
    ``rss_every`` (seconds) and ``named`` (process name -> pid), each process's RSS is also kept as a
    series, one sample every ``rss_every`` seconds from the start (`rss_series`)."""

    def __init__(
        self,
        name: str,
        client: redis.Redis,
        group: ProcessGroup,
        pids: Callable[[], list[int]],
        written: Callable[[], int],
        warmup: float,
        say: Say,
        *,
        rss_every: float = 0.0,
        named: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.group = group
        self.pids = pids
        self.written = written
        self.warmup = warmup
        self.say = say
        self.started = time.monotonic()
        self.started_window = 0.0
        self.first_ms = 0
        self.rss_at_window = 0
        self._last_progress = self.started
        self._last_written = 0
        self.rss_every = rss_every
        self.named = named
        self.rss_series: list[dict[str, Any]] = []  # {"t": s since the start, "rss_mb": {name: MB}}
        self._next_rss = self.started

    @property
    def in_window(self) -> bool:
        return self.first_ms != 0

    def done(self, duration: float) -> bool:
        return time.monotonic() - self.started >= duration

    def tick(self) -> None:
        now = time.monotonic()
        rss = self.group.poll(self.pids())
        if self.rss_every > 0 and self.named is not None and now >= self._next_rss:
            self.rss_series.append({"t": round(now - self.started, 1), "rss_mb": rss_by_name(self.named())})
            self._next_rss += self.rss_every
        if not self.in_window and now - self.started >= self.warmup:
            self.group.mark(self.pids())
            self.first_ms = redis_ms(self.client)
            self.started_window = now
            self.rss_at_window = rss
        if now - self._last_progress >= PROGRESS_EVERY_S:
            try:
                written = self.written()
            except redis.RedisError:
                written = self._last_written
            rate = (written - self._last_written) / (now - self._last_progress)
            cpu = ""
            if self.in_window and now > self.started_window:
                used = self.group.cpu_since_mark(self.pids())
                cpu = f" cpu={100 * used / (now - self.started_window):.0f}% (of one core, since warm-up)"
            self.say(
                f"# {self.name} {now - self.started:6.1f}s written={written} ({rate:,.0f}/s) "
                f"rss={rss / 2**20:.0f}MB{cpu}"
            )
            self._last_progress = now
            self._last_written = written


def rss_by_name(named: dict[str, int]) -> dict[str, float]:
    """Each live process's RSS in MB, by name."""
    out: dict[str, float] = {}
    for name, pid in named.items():
        s = sample(pid)
        if s is not None:
            out[name] = round(s.rss_bytes / 2**20, 1)
    return out


def rss_summary(series: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The series' first and last minute compared: per process, the mean RSS (MB) over the samples of
    the first and of the last 60 s of the run, and the change (``growth_mb``)."""
    if len(series) < 2:
        return None
    end = series[-1]["t"]
    first = [p["rss_mb"] for p in series if p["t"] <= series[0]["t"] + 60]
    last = [p["rss_mb"] for p in series if p["t"] >= end - 60]
    out: dict[str, Any] = {}
    for name in series[-1]["rss_mb"]:
        a = [x[name] for x in first if name in x]
        b = [x[name] for x in last if name in x]
        if a and b:
            fa, lb = sum(a) / len(a), sum(b) / len(b)
            out[name] = {"first_min_mb": round(fa, 1), "last_min_mb": round(lb, 1), "growth_mb": round(lb - fa, 1)}
    return out


def figures(stats: WindowStats, seconds: float, cpu_s: float, rss: int, peak_rss: int, lost: int) -> dict[str, Any]:
    """The fields every phase reports (see `tools.bench`)."""
    m = stats.messages
    return {
        "messages": m,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(m / seconds, 1) if seconds > 0 else 0.0,
        "cpu_us_per_msg": round(cpu_s * 1e6 / m, 2) if m else None,
        "cpu_s": round(cpu_s, 2),
        "msgs_per_cpu_s": round(m / cpu_s, 1) if cpu_s > 0 else None,
        "latency_ms": percentiles(stats.sent),
        "latency_from_recv_ms": percentiles(stats.recv),
        "rss_mb": round(rss / 2**20, 1),
        "rss_peak_mb": round(peak_rss / 2**20, 1),
        "lost": lost,
    }


def start_simulator(
    settings: Settings, truth_path: Path, replay: ReplaySpec | None, say: Say
) -> tuple[SimulatorProcess, float]:
    """The phase's simulator, listening (its market pre-built first with ``replay``, progress said),
    and the seconds it took to start."""
    started = time.monotonic()
    said = [started]

    def progress(built: int, wanted: int) -> None:
        now = time.monotonic()
        if built >= wanted or now - said[0] >= 1.0:  # a line a second at most, and the last
            say(f"# sim: building the market {built:,}/{wanted:,} frames ({now - started:.1f}s)")
            said[0] = now

    simulator = SimulatorProcess(settings.simulator, feed_symbols(settings), truth_path, replay=replay)
    simulator.start(progress=progress)
    return simulator, time.monotonic() - started


class SentAll:
    """``sent_all()``: True once the simulator has sent all of its pre-built market (asked at most every
    0.5 s; always False without a simulator)."""

    def __init__(self, simulator: SimulatorProcess | None) -> None:
        self.simulator = simulator
        self._next = 0.0
        self._done = False

    @property
    def active(self) -> bool:
        """A max-speed run (there is a simulator to ask)."""
        return self.simulator is not None

    def __call__(self) -> bool:
        if self.simulator is None or self._done or time.monotonic() < self._next:
            return self._done
        self._next = time.monotonic() + 0.5
        replay = self.simulator.status().get("replay", {})
        self._done = bool(replay) and all(r["done"] for r in replay.values())
        return self._done


def sim_figures(simulator: SimulatorProcess, build_s: float) -> dict[str, Any] | None:
    """The pre-built market's figures (see `tools.bench`), None for the live model."""
    status = simulator.status()
    replay = status.get("replay")
    if not replay:
        return None
    figures: dict[str, Any] = {"start_s": round(build_s, 1)} | next(iter(replay.values()))
    # Clients the simulator dropped for reading too slowly (their backlog passed its bound), and its memory.
    figures["slow_drops"] = sum(int(e.get("slow_drops", 0)) for e in status.get("exchanges", {}).values())
    proc = sample(simulator.proc.pid) if simulator.proc is not None and simulator.proc.pid is not None else None
    figures["rss_mb"] = round(proc.rss_bytes / 2**20, 1) if proc is not None else None
    return figures
