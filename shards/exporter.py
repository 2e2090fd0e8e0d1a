"""Prometheus metric families from the children's reports, built at scrape time.

`families` turns `shards.monitor.Reports` and the supervisor's view into metric families (a pure
function of its inputs); `ReportCollector` is the prometheus_client collector that calls it on every
scrape. Every metric is in README "Metrics" (name, type, labels, meaning). Counters come from the
children's own counters, so they start again from 0 when a child restarts (Prometheus's ``rate``
handles that). Histograms have buckets and a count but no ``_sum``: the children count buckets only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.meter import BATCH_BOUNDS, LATENCY_BOUNDS_NS, WRITE_BOUNDS_NS
from shards.monitor import Reports, Supervised, feeds

BOOK_STATES = ("valid", "resyncing", "gap", "none")
NS = 1e-9


def _counter(name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _histogram(
    fam: HistogramMetricFamily, labels: list[str], counts: Sequence[int], bounds: Sequence[float], scale: float
) -> None:
    cumulative, buckets = 0, []
    for bound, c in zip([*bounds, float("inf")], counts, strict=True):
        cumulative += c
        le = "+Inf" if bound == float("inf") else repr(round(bound * scale, 9))
        buckets.append((le, float(cumulative)))
    fam.add_metric(labels, buckets, None)


def _feed_families(reports: Reports, now: float) -> list[Metric]:
    sym = ("exchange", "symbol", "shard")
    msgs = _counter("ingest_messages", "Events published to the bus, per channel.", (*sym, "channel"))
    state = _gauge("ingest_book_state", "Published book state: 1 for the current state (none: no status yet).",
                   (*sym, "state"))  # fmt: skip
    since = _gauge("ingest_book_state_since_seconds", "When the book entered its state (epoch seconds).", sym)
    gaps = _counter("ingest_book_gaps", "Sequence gaps detected in the book updates (every session).", sym)
    resyncs = _counter("ingest_book_resyncs", "Book resynchronisations (every session).", sym)
    checksum = _counter("ingest_book_checksum_failures", "Book checksum mismatches (every session).", sym)
    stale = _gauge(
        "ingest_feed_staleness_seconds", "Seconds from the symbol's last event to its shard's last report.", sym
    )
    for f in feeds(reports, now):
        labels = [f["exchange"], f["symbol"], str(f["shard"])]
        if f["book"] is not None or f["gaps"] or f["resyncs"]:
            for s in BOOK_STATES:
                state.add_metric([*labels, s], 1.0 if (f["book"] or "none") == s else 0.0)
            if f["book_since"]:
                since.add_metric(labels, f["book_since"])
        gaps.add_metric(labels, f["gaps"])
        resyncs.add_metric(labels, f["resyncs"])
        checksum.add_metric(labels, f["checksum_failures"])
        if f["staleness_s"] is not None:
            stale.add_metric(labels, f["staleness_s"])
    for rep in reports.shards():
        for topic, count in sorted(rep["topics"].items()):
            channel, exchange, symbol = topic.split(".", 2)
            msgs.add_metric([exchange, symbol, str(rep["shard"]), channel], count)
    return [msgs, state, since, gaps, resyncs, checksum, stale]


def _shard_families(reports: Reports) -> list[Metric]:
    conn = ("exchange", "shard", "connection")
    up = _gauge("ingest_connection_up", "1 while a session of the connection is subscribed.", conn)
    frames = _counter("ingest_connection_frames", "WebSocket frames received.", conn)
    nbytes = _counter("ingest_connection_received_bytes", "WebSocket frame bytes received.", conn)
    reconnects = _counter("ingest_connection_reconnects", "Sessions started again after one ended.", conn)
    decode = _counter("ingest_connection_decode_errors", "Frames that could not be decoded.", conn)
    tgaps = _counter("ingest_trade_gaps", "Holes in the trade ids seen (backfilled or published as gaps).", conn)
    filled = _counter("ingest_trades_backfilled", "Trades fetched from the exchange's history to fill holes.", conn)
    latency = HistogramMetricFamily("ingest_exchange_to_receive_seconds", "Delay from the exchange's event time"
                                    " to its receipt in the shard (one event in 8 is counted).",
                                    labels=["exchange", "shard"])  # fmt: skip
    published = _counter("ingest_shard_published", "Frames the shard published on the bus.", ["shard"])
    replay = _gauge("ingest_shard_replay_buffer_events", "Events the shard keeps for the merger's repairs.", ["shard"])
    for rep in reports.shards():
        shard = str(rep["shard"])
        published.add_metric([shard], rep["published"])
        replay.add_metric([shard], rep["replay_depth"])
        for c in rep["connections"]:
            labels = [c["exchange"], shard, c["connection"]]
            up.add_metric(labels, 1.0 if c["connected"] else 0.0)
            frames.add_metric(labels, c["frames"])
            nbytes.add_metric(labels, c["bytes"])
            reconnects.add_metric(labels, c["reconnects"])
            decode.add_metric(labels, c["decode_errors"])
            tgaps.add_metric(labels, c["trade_gaps"])
            filled.add_metric(labels, c["trades_backfilled"])
        for exchange, hist in sorted(rep["latency"].items()):
            _histogram(latency, [exchange, shard], hist, LATENCY_BOUNDS_NS, NS)
    return [up, frames, nbytes, reconnects, decode, tgaps, filled, latency, published, replay]


def _merger_families(reports: Reports) -> list[Metric]:
    rep = reports.latest("merger")
    if rep is None:
        return []
    st: dict[str, Any] = rep["stats"]
    out: list[Metric] = []
    for key, name, doc in (
        ("received", "ingest_merger_received_entries", "Events the merger received from the bus."),
        ("written", "ingest_merger_written_entries", "Entries the merger committed to Redis."),
        ("batches", "ingest_merger_batches", "Writes (batches) committed to Redis."),
        ("redis_errors", "ingest_merger_redis_errors", "Failed Redis writes (each retried)."),
        ("lost", "ingest_merger_lost_batches", "Bus batch messages lost for good (counted holes)."),
        ("repaired", "ingest_merger_repaired_batches", "Bus batch messages recovered from a shard's replay buffer."),
        ("dropped", "ingest_merger_dropped_entries", "Entries dropped because the outage buffer was full."),
    ):
        out.append(CounterMetricFamily(name, doc, value=float(st[key])))
    out.append(GaugeMetricFamily("ingest_merger_outbox_entries", "Entries waiting for Redis (the outbox).",
                                 value=float(st["buffered"])))  # fmt: skip
    out.append(GaugeMetricFamily("ingest_redis_up", "1 while the merger's Redis writes succeed.",
                                 value=1.0 if st["redis_state"] == "up" else 0.0))  # fmt: skip
    for key, name, doc, bounds, scale in (
        ("batch_sizes", "ingest_merger_batch_size_entries", "Entries per Redis write.", BATCH_BOUNDS, 1.0),
        ("write_ns", "ingest_merger_redis_write_seconds", "Duration of one Redis write.", WRITE_BOUNDS_NS, NS),
        ("lag_ns", "ingest_receive_to_redis_seconds", "Delay from a frame's receipt in a shard to its commit in"
         " Redis (the first entry of each batch).", LATENCY_BOUNDS_NS, NS),
    ):  # fmt: skip
        fam = HistogramMetricFamily(name, doc, labels=[])
        _histogram(fam, [], rep[key], bounds, scale)
        out.append(fam)
    return out


def _process_families(reports: Reports, supervised: Sequence[Supervised]) -> list[Metric]:
    labels = ["process", "kind"]
    cpu = _counter("ingest_process_cpu_seconds", "User and system CPU time of the process.", labels)
    rss = _gauge("ingest_process_resident_memory_bytes", "Resident memory of the process.", labels)
    alive = _gauge("ingest_process_up", "1 while the process is alive.", labels)
    restarts = _counter("ingest_process_restarts", "Times the supervisor started the process again.", labels)
    hangs = _counter("ingest_process_hangs", "Times the process was killed for a missed heartbeat.", labels)
    for p in supervised:
        lab = [p.name, p.kind]
        alive.add_metric(lab, 1.0 if p.alive else 0.0)
        restarts.add_metric(lab, p.restarts)
        hangs.add_metric(lab, p.hangs)
        rep = reports.latest(p.name)
        if rep is not None:
            cpu.add_metric(lab, rep["cpu_s"])
            rss.add_metric(lab, rep["rss_bytes"])
    return [cpu, rss, alive, restarts, hangs]


def families(reports: Reports, supervised: Sequence[Supervised], now: float, ready: bool) -> list[Metric]:
    """Every metric family of the cluster, from the latest reports and the supervisor's view."""
    up = GaugeMetricFamily("ingest_ready", "1 while /ready answers 200.", value=1.0 if ready else 0.0)
    return [*_feed_families(reports, now), *_shard_families(reports), *_merger_families(reports),
            *_process_families(reports, supervised), up]  # fmt: skip


class ReportCollector(Collector):
    """Calls ``build()`` (the families, under the caller's lock) on every scrape."""

    def __init__(self, build: Callable[[], list[Metric]]) -> None:
        self._build = build

    def collect(self) -> Iterator[Metric]:
        yield from self._build()
