"""One shard: a process with its own event loop, feed connections, books and bus publisher.

Started by the supervisor with its share of the plan. It binds its PUB endpoint, waits for the
merger to subscribe, runs one `FeedConnection` per (exchange, chunk of symbols), and on SIGTERM
stops reading, publishes the end marker after everything it received, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence

import structlog

from bus.publisher import Publisher
from ingest import logs
from ingest.exchanges import get_spec
from ingest.exchanges.base import CHANNELS, Channel
from ingest.session.connection import FeedConnection
from ingest.settings import Settings
from shards.plan import Assignment

log = structlog.get_logger("shard")

SUBSCRIBER_WAIT_S = 30.0


def connections_for(
    settings: Settings, shard: int, assignments: Sequence[Assignment], publisher: Publisher
) -> list[FeedConnection]:
    """Group a shard's assignments into connections: per exchange and channel set, chunked by the
    exchange's streams-per-connection limit."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for a in assignments:
        groups.setdefault((a.exchange, a.channels), []).append(a.symbol)
    feeds = {f.exchange: f for f in settings.feeds}
    out: list[FeedConnection] = []
    for (exchange, channels), symbols in sorted(groups.items()):
        spec = get_spec(exchange)
        per_conn = max(1, spec.max_streams_per_connection // max(1, len(channels)))
        for n, start in enumerate(range(0, len(symbols), per_conn)):
            chunk = symbols[start : start + per_conn]
            conn_id = f"{exchange}-s{shard}-c{n}"
            typed: tuple[Channel, ...] = tuple(c for c in CHANNELS if c in channels)
            out.append(
                FeedConnection(
                    spec, chunk, typed, publisher.publish, conn_id,
                    ws_url=feeds[exchange].ws_url, rest_url=feeds[exchange].rest_url,
                    depth=feeds[exchange].book_depth, redundancy=feeds[exchange].redundancy,
                )
            )
    return out


async def _serve(settings: Settings, shard: int, assignments: Sequence[Assignment]) -> None:
    publisher = Publisher(settings.bus_endpoint(shard), shard)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    waited = 0.0
    while not stop.is_set() and not await loop.run_in_executor(None, publisher.wait_for_subscriber, 0.5):
        waited += 0.5
        if waited >= SUBSCRIBER_WAIT_S:
            log.warning("no subscriber yet; publishing anyway", waited_s=waited)
            break
    conns = connections_for(settings, shard, assignments, publisher)
    tasks = [asyncio.create_task(c.run(), name=c.conn_id) for c in conns]
    log.info("shard started", connections=len(conns), symbols=len(assignments), epoch=publisher.epoch)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t
        if t in done and t.exception() is not None:
            log.error("connection failed for good", connection=t.get_name(), error=repr(t.exception()))
    for c in conns:
        await c.close()
    publisher.drain_subscriptions()
    publisher.close(settings.cluster.drain_timeout)
    log.info("shard stopped", published=publisher.seq)


def run_worker(settings: Settings, shard: int, assignments: Sequence[Assignment]) -> None:
    """Process entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which drains us
    logs.configure(settings.log.level, settings.log.format, shard=shard)
    try:
        import uvloop

        uvloop.run(_serve(settings, shard, assignments))
    except ImportError:
        asyncio.run(_serve(settings, shard, assignments))
