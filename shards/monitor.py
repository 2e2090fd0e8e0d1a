"""The parent's picture of the cluster, from the children's reports (pure: no sockets, no clock).

`Reports` keeps each child's recent reports (`shards.telemetry`, `bus.merger.Merger.report`) with
the wall time each was made, and remembers since when each connection has been down and when each
symbol last published an event (its ``ts_recv``, which the shard keeps per topic). From them and the
supervisor's view of its children (`Supervised`):

- `feeds` lists every (exchange, symbol) the shards carry, with its counters, rates and staleness;
- `not_ready` says why the cluster is not ready (empty: ready), the rules of `/ready`;
- `status` builds the `/status` document (version 1).

Times are wall-clock seconds (the reports' ``ts``); rates and quantiles are taken over the reports
of the last `WINDOW_S` seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bus.meter import LATENCY_BOUNDS_NS, WRITE_BOUNDS_NS

WINDOW_S = 10.0  # rates and quantiles over the reports of this many seconds


@dataclass(frozen=True)
class Supervised:
    """The supervisor's view of one process (the parent itself included)."""

    name: str
    kind: str  # shard, merger or parent
    pid: int | None
    alive: bool
    restarts: int = 0
    hangs: int = 0


@dataclass(frozen=True)
class Expected:
    """A configured (exchange, symbol) and whether it has a book."""

    exchange: str
    symbol: str
    book: bool


@dataclass
class Reports:
    """Recent reports by child name, and the transitions the readiness rules need."""

    window_s: float = WINDOW_S
    recent: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    down_since: dict[str, float] = field(default_factory=dict)  # connection (or "redis") -> first seen down
    first_seen: dict[str, float] = field(default_factory=dict)  # connection -> its first report
    moved: dict[tuple[str, str], float] = field(default_factory=dict)  # (exchange, symbol) -> its last event

    def add(self, report: dict[str, Any]) -> None:
        name, ts = str(report["name"]), float(report["ts"])
        q = self.recent.setdefault(name, deque())
        if q and q[-1].get("pid") != report.get("pid"):
            q.clear()  # a restarted child: its counters started again
        q.append(report)
        while len(q) > 2 and ts - q[1]["ts"] >= self.window_s:
            q.popleft()
        if report["kind"] == "merger":
            self._down("redis", report["stats"]["redis_state"] == "up", ts)
        if report["kind"] != "shard":
            return
        for conn in report["connections"]:
            self.first_seen.setdefault(conn["connection"], ts)
            self._down(conn["connection"], conn["connected"], ts)
        for topic, last_ns in report["last"].items():
            _, exchange, symbol = topic.split(".", 2)
            key = (exchange, symbol)
            self.moved[key] = max(self.moved.get(key, 0.0), last_ns / 1e9)

    def _down(self, key: str, up: bool, ts: float) -> None:
        if up:
            self.down_since.pop(key, None)
        else:
            self.down_since.setdefault(key, ts)

    def latest(self, name: str) -> dict[str, Any] | None:
        q = self.recent.get(name)
        return q[-1] if q else None

    def oldest(self, name: str) -> dict[str, Any] | None:
        q = self.recent.get(name)
        return q[0] if q and len(q) > 1 else None

    def shards(self) -> list[dict[str, Any]]:
        return [q[-1] for name, q in sorted(self.recent.items()) if q and q[-1]["kind"] == "shard"]


def _rate(new: float, old: float, new_ts: float, old_ts: float) -> float:
    return round(max(0.0, new - old) / (new_ts - old_ts), 3) if new_ts > old_ts else 0.0


def feeds(reports: Reports, now: float) -> list[dict[str, Any]]:
    """Every (exchange, symbol) a shard reported, with its connection, book and counters (`/status` feeds)."""
    out: list[dict[str, Any]] = []
    for rep in reports.shards():
        old = reports.oldest(rep["name"])
        old_topics = old["topics"] if old else {}
        for conn in rep["connections"]:
            exchange = conn["exchange"]
            for symbol in conn["symbols"]:
                topics = [f"{ch}.{exchange}.{symbol}" for ch in ("trade", "book", "bar")]
                messages = sum(rep["topics"].get(t, 0) for t in topics)
                before = sum(old_topics.get(t, 0) for t in topics)
                book = conn["books"].get(symbol)
                moved = reports.moved.get((exchange, symbol))
                out.append({
                    "exchange": exchange, "symbol": symbol, "shard": rep["shard"], "connection": conn["connection"],
                    "connected": conn["connected"], "book": book["state"] if book else None,
                    "book_since": book["since"] / 1e9 if book and book["since"] else None,
                    "messages": messages, "bytes": conn["bytes"],
                    "msgs_per_s": _rate(messages, before, rep["ts"], old["ts"]) if old else 0.0,
                    # As of the shard's last report: the parent knows nothing newer (a shard that stops
                    # reporting is a reason of its own); counting the report's age too would make every
                    # live feed look up to an interval stale.
                    "staleness_s": round(max(0.0, rep["ts"] - moved), 3) if moved is not None else None,
                    "gaps": book["gaps"] if book else 0, "resyncs": book["resyncs"] if book else 0,
                    "checksum_failures": book["checksum_failures"] if book else 0,
                    "reconnects": conn["reconnects"], "trade_gaps": conn["trade_gaps"],
                })  # fmt: skip
    return out


def not_ready(
    reports: Reports,
    expected: Sequence[Expected],
    now: float,
    started: float,
    grace: float,
    stale_after: float,
    stale_report_s: float,
) -> list[str]:
    """Why the cluster is not ready (empty: ready). Each configured symbol must be carried by a shard
    that reported within ``stale_report_s``, on a connected connection, with a valid book (if it has
    one) and a message within ``stale_after`` (0: no such rule); a connection down, or a book not
    valid, for less than ``grace`` seconds is still ready, and so is everything in the first ``grace``
    seconds after ``started``. Redis unreachable from the merger for ``grace`` seconds is not ready."""
    out: list[str] = []
    carried = {(f["exchange"], f["symbol"]): f for f in feeds(reports, now)}
    shard_of = {(f["exchange"], f["symbol"]): f["shard"] for f in carried.values()}
    settled = now - started >= grace
    for e in expected:
        name = f"{e.exchange} {e.symbol}"
        f = carried.get((e.exchange, e.symbol))
        if f is None:
            if settled:
                out.append(f"{name}: no shard reports it yet")
            continue
        rep = reports.latest(f"shard-{shard_of[(e.exchange, e.symbol)]}")
        age = now - rep["ts"] if rep else None
        if age is not None and age >= stale_report_s:
            out.append(f"{name}: no report from shard-{f['shard']} for {age:.1f} s")
            continue
        down = reports.down_since.get(f["connection"])
        if not f["connected"] and down is not None and now - down >= grace:
            out.append(f"{name}: disconnected for {now - down:.1f} s")
            continue
        if e.book and f["book"] != "valid":
            since = f["book_since"] or reports.first_seen.get(f["connection"], now)
            if now - since >= grace:
                state = f["book"] or "not valid yet"
                out.append(f"{name}: book {state} for {now - since:.1f} s")
                continue
        staleness = f["staleness_s"]
        if stale_after and staleness is not None and staleness >= stale_after:
            out.append(f"{name}: no message for {staleness:.1f} s")
    redis_down = reports.down_since.get("redis")
    if redis_down is not None and now - redis_down >= grace:
        out.append(f"redis: unreachable from the merger for {now - redis_down:.1f} s")
    return out


def quantile(counts: Sequence[int], bounds: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of a `bus.meter` histogram (linear within a bucket, as Prometheus's
    ``histogram_quantile``; the top bucket answers its lower bound); None when empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, c in enumerate(counts):
        if seen + c >= rank and c:
            if i == len(bounds):
                return float(bounds[-1])
            low = bounds[i - 1] if i else 0
            return low + (bounds[i] - low) * (rank - seen) / c
        seen += c
    return float(bounds[-1])


def _window(new: Sequence[int], old: Sequence[int] | None) -> list[int]:
    return [a - b for a, b in zip(new, old, strict=True)] if old else list(new)


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def merger(reports: Reports) -> dict[str, Any]:
    """The `/status` merger section (zeros before the merger's first report)."""
    rep, old = reports.latest("merger"), reports.oldest("merger")
    st: dict[str, Any] = rep["stats"] if rep else {}
    written, batches = int(st.get("written", 0)), int(st.get("batches", 0))
    write = _window(rep["write_ns"], old["write_ns"] if old else None) if rep else []
    lag = _window(rep["lag_ns"], old["lag_ns"] if old else None) if rep else []
    return {
        "received": int(st.get("received", 0)), "written": written,
        "entries_per_s": _rate(written, old["stats"]["written"], rep["ts"], old["ts"]) if rep and old else 0.0,
        "batches": batches, "batch_mean": round(written / batches, 1) if batches else 0.0,
        "buffered": int(st.get("buffered", 0)), "redis_up": st.get("redis_state", "up") == "up",
        "redis_errors": int(st.get("redis_errors", 0)),
        "write_p99_ms": _ms(quantile(write, WRITE_BOUNDS_NS, 0.99)) if write else None,
        "lag_p50_ms": _ms(quantile(lag, LATENCY_BOUNDS_NS, 0.5)) if lag else None,
        "lag_p99_ms": _ms(quantile(lag, LATENCY_BOUNDS_NS, 0.99)) if lag else None,
    }  # fmt: skip


def processes(reports: Reports, supervised: Sequence[Supervised], now: float) -> list[dict[str, Any]]:
    """The `/status` processes: the supervisor's view joined with each one's latest report."""
    out: list[dict[str, Any]] = []
    for p in supervised:
        rep, old = reports.latest(p.name), reports.oldest(p.name)
        cpu = _rate(rep["cpu_s"], old["cpu_s"], rep["ts"], old["ts"]) * 100 if rep and old else 0.0
        out.append({
            "name": p.name, "kind": p.kind, "pid": p.pid, "alive": p.alive,
            "cpu_percent": round(cpu, 1), "rss_mb": round(rep["rss_bytes"] / 2**20, 1) if rep else 0.0,
            "restarts": p.restarts, "hangs": p.hangs,
            "report_age_s": round(now - rep["ts"], 3) if rep else None,
        })  # fmt: skip
    return out


def status(
    reports: Reports, supervised: Sequence[Supervised], reasons: list[str], now: float, started: float
) -> dict[str, Any]:
    """The `/status` document, version 1 (README "Metrics": keys are only ever added)."""
    return {
        "version": 1, "ts": now, "uptime_s": round(now - started, 3), "ready": not reasons, "not_ready": reasons,
        "processes": processes(reports, supervised, now), "merger": merger(reports), "feeds": feeds(reports, now),
    }  # fmt: skip
