"""The one-screen summary `ingest run` prints on stderr when it ends.

What one run put in Redis, per exchange (its streams' entries written since the run started), the
merger's counters, the restarts the supervisor made, the faults injected and, with ``--verify``, the
verdict. `gather` reads it (Redis, the cluster); `format_summary` is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

MERGER_SHOWN = ("written", "batches", "holes", "repaired", "lost", "dropped", "duplicates", "redis")
PAGE = 10_000  # entries per XRANGE call when a stream also holds entries of earlier runs


@dataclass
class ExchangeCounts:
    symbols: int = 0  # symbols with entries this run
    trades: int = 0  # trade-stream entries (trades, backfills and reported gaps)
    book: int = 0  # book-stream entries (snapshots, deltas, statuses)
    bars: int = 0  # 1-minute bars (revisions included)
    conn: int = 0  # connection events


@dataclass
class RunSummary:
    seconds: float
    shards: int
    how: str  # why it ended
    exchanges: dict[str, ExchangeCounts] = field(default_factory=dict)
    merger: dict[str, str] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)  # child name (and "redis") -> restarts
    faults: int | None = None
    verify: Mapping[str, Any] | None = None


def entries_since(client: redis.Redis, key: str, since: str) -> int:
    """Entries of stream ``key`` with ids from ``since`` on (XLEN when the whole stream is that new)."""
    first = cast(list[tuple[bytes, Any]], client.xrange(key, count=1))
    if not first:
        return 0
    if _id(first[0][0].decode()) >= _id(since):
        return int(client.xlen(key))
    count, start = 0, since
    while True:
        page = cast(list[tuple[bytes, Any]], client.xrange(key, min=start, count=PAGE))
        count += len(page)
        if len(page) < PAGE:
            return count
        start = "(" + page[-1][0].decode()


def _id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def gather(
    client: redis.Redis, prefix: str, feeds: Mapping[str, Sequence[str]], since: str, summary: RunSummary
) -> RunSummary:
    """Fill ``summary``'s exchange counts and merger counters from Redis (left empty if unreachable)."""
    try:
        for exchange, symbols in feeds.items():
            counts = summary.exchanges[exchange] = ExchangeCounts()
            for symbol in symbols:
                trades = entries_since(client, f"{prefix}:trade:{exchange}:{symbol}", since)
                book = entries_since(client, f"{prefix}:book:{exchange}:{symbol}", since)
                counts.trades += trades
                counts.book += book
                counts.symbols += 1 if trades or book else 0
                counts.bars += entries_since(client, f"{prefix}:bar:{exchange}:{symbol}", since)
            counts.conn = entries_since(client, f"{prefix}:conn:{exchange}:*", since)
        raw = cast(dict[bytes, bytes], client.hgetall(f"{prefix}:merger"))
        summary.merger = {k.decode(): v.decode() for k, v in raw.items()}
    except redis.RedisError as e:
        summary.merger = {"redis": f"unreachable ({e})"}
    return summary


def format_summary(s: RunSummary) -> str:
    """The summary's lines (each starting ``# ``), newline-terminated."""
    lines = [f"# run summary: {s.seconds:.1f}s, {s.shards} shard{'s' if s.shards != 1 else ''}, {s.how}"]
    lines.append(f"# {'exchange':<10} {'symbols':>7} {'trades':>10} {'book entries':>12} {'bars':>6} {'conn':>5}")
    for exchange, c in sorted(s.exchanges.items()):
        lines.append(f"# {exchange:<10} {c.symbols:>7} {c.trades:>10} {c.book:>12} {c.bars:>6} {c.conn:>5}")
    shown = [k for k in MERGER_SHOWN if k in s.merger]
    if shown:
        # The merger's counters are its process's: after a restart they count from that start only.
        label = "merger" if not s.restarts.get("merger") else "merger since its last restart"
        lines.append(f"# {label}: " + " ".join(f"{k}={s.merger[k]}" for k in shown))
    restarts = " ".join(f"{name}={n}" for name, n in s.restarts.items())
    faults = f"; faults injected: {s.faults}" if s.faults is not None else ""
    lines.append(f"# restarts: {restarts or 'none'}{faults}")
    if s.verify is not None:
        v = s.verify
        lines.append(
            f"# verified: {str(bool(v.get('verified'))).lower()}"
            f" (trades {v.get('trades_found')}/{v.get('trades_expected')},"
            f" lost {v.get('lost')}, duplicated {v.get('duplicated')}, out of order {v.get('out_of_order')},"
            f" books mismatched {v.get('books_mismatched')}/{v.get('books_checked')},"
            f" bars mismatched {v.get('bars_mismatched')}/{v.get('bars_checked')})"
        )
    return "\n".join(lines) + "\n"
