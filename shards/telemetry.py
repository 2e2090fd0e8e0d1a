"""What a shard reports to the parent's metrics endpoint (sent by a `bus.report.Reporter`).

Every ``[metrics] interval`` the shard's upkeep task builds one report from the counters it already
keeps: ``topics`` (events published per topic), ``last`` (each topic's last event's ``ts_recv``,
ns), ``latency`` (the exchange-to-receive histogram per exchange, `bus.meter` buckets), the
publisher's seq and replay buffer, and ``connections``, each with its counters and its books
(published state and since when, gaps, resyncs, checksum failures). Nothing here runs per message.
`shards.monitor` reads the reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from bus.publisher import Publisher
from bus.report import usage
from ingest.session.connection import FeedConnection


def shard_report(shard: int, publisher: Publisher, conns: Sequence[FeedConnection]) -> dict[str, Any]:
    """A shard's report: what it published per topic, its latency histograms, its connections and books."""
    return {
        "kind": "shard", "name": f"shard-{shard}", "shard": shard, **usage(),
        "published": publisher.published, "replay_depth": publisher.replay_depth, "epoch": publisher.epoch,
        "topics": {t.decode(): m[0] for t, m in publisher.meters.items()},
        "last": {t.decode(): m[2] for t, m in publisher.meters.items()},
        "latency": dict(publisher.latency),
        "connections": [_connection(c) for c in conns],
    }  # fmt: skip


def _connection(conn: FeedConnection) -> dict[str, Any]:
    conn.count_frames()
    states = conn.arbiter.book_states()
    counters = conn.book_counters()
    books: dict[str, dict[str, Any]] = {}
    if "book" in conn.channels:
        for native, symbol in conn.natives.items():
            state, since = states.get(native, (None, 0))
            gaps, resyncs, checksum = counters.get(native, (0, 0, 0))
            books[symbol] = {"state": state, "since": since, "gaps": gaps, "resyncs": resyncs,
                             "checksum_failures": checksum}  # fmt: skip
    st = conn.stats
    return {
        "connection": conn.conn_id, "exchange": conn.spec.name, "connected": conn.connected,
        "symbols": list(conn.natives.values()), "channels": list(conn.channels), "books": books,
        **{f.name: getattr(st, f.name) for f in fields(st)},
    }  # fmt: skip
