"""One shard: a process with its own event loop, feed connections, books and bus publisher.

Started by the supervisor with its share of the plan. It binds its PUB endpoint and its repair
endpoint, waits for the merger to subscribe, runs one `FeedConnection` per (exchange, chunk of
symbols), and on SIGTERM stops reading, publishes the end marker after everything it received,
answers the merger's last repair requests until the merger acknowledges the end, and exits.

An upkeep task on the event loop answers repair requests and notes who subscribes to the bus (every
`REPAIR_POLL_S`, 20 ms: per-event messages go out only while a live subscriber is present), and every
``heartbeat_interval`` beats the parent's heartbeat and sends a tick with the last seq on the bus; every
``[metrics] interval`` it sends the parent its report (`shards.telemetry`).
Being on the loop is the point: a blocked loop stops beating, and the parent restarts the shard.

With ``[bars] enabled``, everything the connections publish but book updates goes through a
`shards.bars.BarFeed`, which publishes the 1-minute bars the trades make right after them; a restarted shard reads its
open bars back from Redis first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis
import structlog
import zmq

from bus import wire
from bus.publisher import Publisher
from bus.report import Reporter
from bus.sched import batch_io_threads
from ingest import logs
from ingest.clock import now_ns
from ingest.events import Event, Trade
from ingest.exchanges import get_spec
from ingest.exchanges.base import CHANNELS, Channel
from ingest.session.connection import FeedConnection
from ingest.settings import Settings
from shards.bars import BarFeed, read_tails_waiting
from shards.plan import Assignment
from shards.telemetry import shard_report

log = structlog.get_logger("shard")

SUBSCRIBER_WAIT_S = 30.0
# How often the upkeep answers repairs and reads the bus's (un)subscriptions. 5 -> 20 ms: a shard's
# loop woke 200 times a second for it; at 10k msgs/s shards 0.93x (ingest bench, interleaved, see the commit).
REPAIR_POLL_S = 0.02
BAR_TICK_S = 0.25
RESUME_WAIT_S = 10.0


def connections_for(
    settings: Settings,
    shard: int,
    assignments: Sequence[Assignment],
    publish: Callable[[Event], None],
    publish_book: Callable[[Event], None] | None = None,
) -> list[FeedConnection]:
    """Group a shard's assignments into connections: per exchange and channel set, chunked by the
    exchange's streams-per-connection limit. ``publish_book``: where their book updates go (see
    `FeedConnection`; ``publish`` if not given)."""
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
                    spec, chunk, typed, publish, conn_id,
                    ws_url=feeds[exchange].ws_url, rest_url=feeds[exchange].rest_url,
                    depth=feeds[exchange].book_depth, redundancy=feeds[exchange].redundancy,
                    session_life=feeds[exchange].session_life, symbol_timeout=feeds[exchange].symbol_timeout,
                    publish_book=publish_book,
                )
            )
    return out


async def _bar_clock(bars: BarFeed, conns: Sequence[FeedConnection]) -> None:
    """Close the bars whose minute (and grace) the exchanges' clocks have passed (the book updates,
    which go past the bars, count in the clocks)."""
    while True:
        bars.tick(now_ns(), [c.last_book for c in conns])
        await asyncio.sleep(BAR_TICK_S)


async def _upkeep(
    publisher: Publisher,
    interval: float,
    heartbeat: Any,
    live: asyncio.Event,
    reporter: Reporter,
    report: Callable[[], dict[str, Any]],
) -> None:
    """Answer repair requests and, once ``live``, read the bus's (un)subscriptions (a live subscriber
    gets per-event messages from the next batch on); beat, and once ``live`` tick, every ``interval``
    seconds; report when due."""
    last = 0.0
    while True:
        publisher.serve_repairs()
        if live.is_set():  # before, a helper thread waits on the bus socket (not thread-safe)
            publisher.drain_subscriptions()
        now = time.monotonic()
        if reporter.due(now):
            reporter.send(report())
        if now - last >= interval:
            last = now
            if heartbeat is not None:
                heartbeat.beat()
            if live.is_set():  # before, a helper thread waits on the bus socket (not thread-safe)
                publisher.tick()
        await asyncio.sleep(REPAIR_POLL_S)


def last_trades(redis_url: str, prefix: str, assignments: Sequence[Assignment]) -> dict[str, dict[str, Trade]]:
    """The last trade in Redis of each assigned symbol that has trades, by exchange and native symbol
    (waiting up to `RESUME_WAIT_S` for a Redis that is coming back)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0)

    def key(a: Assignment) -> str:
        return f"{prefix}:trade:{a.exchange}:{a.symbol}"

    deadline = time.monotonic() + RESUME_WAIT_S
    while True:
        try:
            out: dict[str, dict[str, Trade]] = {}
            for a in assignments:
                if "trades" not in a.channels:
                    continue
                rows = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrevrange(key(a), count=20))
                for _, raw in rows:
                    event = wire.decode_fields({k.decode(): v.decode() for k, v in raw.items()})
                    if isinstance(event, Trade):
                        out.setdefault(a.exchange, {})[event.native] = event
                        break
            return out
        except redis.RedisError as e:
            if time.monotonic() > deadline:
                log.error("cannot read the last trades: what the restart missed is not backfilled", error=str(e))
                return {}
            time.sleep(0.5)
        finally:
            client.close()


async def _serve(
    settings: Settings,
    shard: int,
    assignments: Sequence[Assignment],
    heartbeat: Any,
    redis_url: str = "",
    restarts: int = 0,
) -> None:
    cs = settings.cluster
    publisher = Publisher(settings.bus_endpoint(shard), shard, repair_endpoint=settings.repair_endpoint(shard),
                          replay_buffer=cs.replay_buffer)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    publisher.batch_sends(loop)  # one ZeroMQ wake-up per loop turn, not per event (bus/publisher.py)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    live = asyncio.Event()
    reporter = Reporter(settings.telemetry_endpoint(), settings.metrics.interval)
    conns: list[FeedConnection] = []

    def report() -> dict[str, Any]:
        return shard_report(shard, publisher, conns)  # conns fills in below
    upkeep = asyncio.create_task(
        _upkeep(publisher, cs.heartbeat_interval, heartbeat, live, reporter, report), name="upkeep"
    )
    waited = 0.0
    merger_subscribed = functools.partial(publisher.wait_for_subscriber, 0.5, wire.BATCH_TOPIC)
    while not stop.is_set() and not await loop.run_in_executor(None, merger_subscribed):
        waited += 0.5
        if waited >= SUBSCRIBER_WAIT_S:
            log.warning("no subscriber yet; publishing anyway", waited_s=waited)
            break
    live.set()
    bars = BarFeed(settings.bars, publisher.publish) if settings.bars.enabled else None
    # Book updates (most events) go to the publisher directly: bars are made of trades.
    conns.extend(connections_for(settings, shard, assignments, (bars or publisher).publish, publisher.publish))
    if restarts and redis_url:  # what the shard's previous life published: carry its trades on
        prefix = settings.redis.key_prefix
        last = await loop.run_in_executor(None, last_trades, redis_url, prefix, assignments)
        for conn in conns:
            conn.resume_trades(last.get(conn.spec.name, {}))
        if bars is not None:  # and its open bars
            keep = bars.builder.keep_ns
            tails = await loop.run_in_executor(None, read_tails_waiting, redis_url, prefix, assignments, keep, 2.0)
            bars.restore(tails, now_ns())
    tasks = [asyncio.create_task(c.run(), name=c.conn_id) for c in conns]
    if bars is not None:
        bar_clock = asyncio.create_task(_bar_clock(bars, conns), name="bars")
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
    for conn in conns:
        await conn.close()
    if bars is not None:
        bar_clock.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bar_clock
        # the open bars too, marked partial: their minute is cut short
        bars.flush(now_ns(), [c.last_book for c in conns])
    publisher.drain_subscriptions()
    publisher.send_end()
    # The merger may still miss frames before the end marker: serve its repairs until it says it has
    # everything (or half the drain time passes: the parent waits for us no longer than the whole).
    deadline = time.monotonic() + cs.drain_timeout / 2
    while not publisher.end_acked and time.monotonic() < deadline:
        await asyncio.sleep(REPAIR_POLL_S)
    upkeep.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await upkeep
    if not publisher.end_acked:
        log.warning("the merger did not acknowledge the end marker", last_seq=publisher.seq)
    reporter.send(report())  # the final counters
    reporter.close()
    publisher.close(cs.drain_timeout / 2)
    log.info("shard stopped", published=publisher.published, batches=publisher.seq,
             repaired=publisher.repaired_frames, bars=bars.bars_published if bars else 0,
             late_trades=bars.builder.late if bars else 0)  # fmt: skip


def run_worker(
    settings: Settings,
    shard: int,
    assignments: Sequence[Assignment],
    heartbeat: Any = None,
    redis_url: str = "",
    restarts: int = 0,
) -> None:
    """Process entry point; ``heartbeat`` (a `shards.heartbeat.Heartbeat`) is beaten from the event loop.
    A restarted shard (``restarts`` > 0) reads its symbols' last trades from ``redis_url`` and
    backfills the trades it missed while it was down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which drains us
    logs.configure(settings.log.level, settings.log.format, shard=shard)
    batch_io_threads(zmq.Context.instance())  # before the first socket starts them
    try:
        import uvloop

        uvloop.run(_serve(settings, shard, assignments, heartbeat, redis_url, restarts))
    except ImportError:
        asyncio.run(_serve(settings, shard, assignments, heartbeat, redis_url, restarts))
