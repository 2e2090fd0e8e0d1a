"""A shard's bars: the pure `ingest.bars.BarBuilder` between its feeds and its bus publisher.

Every event the feeds publish but their book updates goes through `BarFeed.publish`: it is published
first, then a trade or trade gap is folded into its symbol's bar and the bars it closes or revises
are published right after it, through the same publisher (so the merger writes them like any
event, to ``{prefix}:bar:{exchange}:{symbol}``, and a bar in Redis is always behind the trades it
holds). The book updates (most events, no bar) go to the publisher directly.

The watermark of each exchange is its clock as the shard sees it: the exchange time of the newest
event (trade or book update) plus the local time elapsed since that event was received, so quiet
symbols' bars close ``grace`` after their minute even when nothing arrives. `tick` applies it; it is
given the feeds' newest book updates (`ingest.session.connection.FeedConnection.last_book`), read
then rather than per update.

A restarted shard first calls `restore_from_redis`: each symbol's newest bars and the trades since
the newest bar's minute are read back from Redis, so the open bar goes on with the trades the
previous life published (not from zero), and a revision the previous life did not get out is
published now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import cast

import redis
import structlog

from bus import wire
from ingest.bars import MINUTE_NS, PARTIAL_END, BarBuilder, minute_start
from ingest.events import Bar, Event, Trade, TradeGap
from ingest.settings import BarSettings
from shards.plan import Assignment

log = structlog.get_logger("bars")

PAGE = 500
BARS_READ = 20  # newest bar entries read back per symbol (revisions of the last minutes)
Rows = list[tuple[bytes, dict[bytes, bytes]]]
# (exchange, symbol, native) -> (its trades and trade gaps, its bars), oldest first
Tails = dict[tuple[str, str, str], tuple[list[Trade | TradeGap], list[Bar]]]


class BarFeed:
    """Publishes events and the bars they make; see the module docstring."""

    def __init__(self, settings: BarSettings, publish: Callable[[Event], None]) -> None:
        self.builder = BarBuilder(int(settings.grace * 1e9), int(settings.keep * 1e9))
        self._publish = publish
        # exchange -> its newest event with an exchange time (its clock: ts_exchange at ts_recv)
        self._latest: dict[str, Trade | Event] = {}
        self.bars_published = 0

    def publish(self, event: Event) -> None:
        self._publish(event)
        if isinstance(event, Trade):  # nearly every event here
            if event.origin == "live" and event.ts_exchange > 0:  # a backfilled trade's time is the past
                self._latest[event.exchange] = event
            bars = self.builder.on_trade(event)
            if bars:
                self._out(bars)
            return
        self._clock(event)
        if isinstance(event, TradeGap):
            bars = self.builder.on_event(event)
            if bars:
                self._out(bars)

    def _clock(self, event: Event | None) -> None:
        """Take ``event``'s time as its exchange's clock if it is the newest event seen with one."""
        if event is None or getattr(event, "ts_exchange", 0) <= 0:
            return
        known = self._latest.get(event.exchange)
        if known is None or event.ts_recv >= known.ts_recv:
            self._latest[event.exchange] = event

    def tick(self, now: int, books: Iterable[Event | None] = ()) -> None:
        """Close the bars each exchange's watermark has passed (``now``: local ns). ``books``: the
        newest book update of each feed that publishes past `publish` (None: none yet)."""
        for event in books:
            self._clock(event)
        for exchange, latest in self._latest.items():
            offset = getattr(latest, "ts_exchange", 0) - latest.ts_recv
            self._out(self.builder.advance(exchange, now + offset, now))

    def flush(self, now: int, books: Iterable[Event | None] = ()) -> None:
        """The shard stops: close what the watermark has passed, then publish the open bars as partial."""
        self.tick(now, books)
        self._out(self.builder.flush(now))

    def _out(self, bars: list[Bar]) -> None:
        for bar in bars:
            self._publish(bar)
            self.bars_published += 1

    def restore(self, tails: Tails, now: int) -> None:
        """Take up each symbol from its stream tails, (exchange, symbol, native) -> (trades, bars)."""
        published = self.bars_published
        for (exchange, symbol, native), (events, bars) in sorted(tails.items()):
            self._out(self.builder.restore(exchange, symbol, native, events, bars, now))
        log.info("bars restored", symbols=len(tails), trades=sum(len(e) for e, _ in tails.values()),
                 published=self.bars_published - published)  # fmt: skip


def read_tails(client: redis.Redis, prefix: str, assignments: Sequence[Assignment], keep_ns: int) -> Tails:
    """Each traded symbol's newest bars, and its trades (and gaps) from the newest bar's minute on
    (or from the minute before the last trade's when it has no bar yet; never more than ``keep_ns``
    before the last trade), oldest first.

    Only what was written after the newest bar a stopping shard published (`PARTIAL_END`) is read:
    before it is an earlier run of the cluster, which a restart does not carry on."""
    out: Tails = {}
    for a in assignments:
        if "trades" not in a.channels:
            continue
        cut = -1  # ms of the stream id of the newest bar of a stop (ids of different streams compare by ms only)
        bars: list[Bar] = []
        rows = cast(Rows, client.xrevrange(f"{prefix}:bar:{a.exchange}:{a.symbol}", count=BARS_READ))
        for entry_id, raw in rows:  # newest first
            ev = _decode(raw)
            if isinstance(ev, Bar):
                if ev.partial & PARTIAL_END:
                    cut = _ms(entry_id)
                    break
                bars.append(ev)
        bars.reverse()
        events: list[Trade | TradeGap] = []
        native = bars[-1].native if bars else ""
        key = f"{prefix}:trade:{a.exchange}:{a.symbol}"
        bound: int | None = None
        top = "+"
        done = False
        while not done:
            rows = cast(Rows, client.xrevrange(key, max=top, count=PAGE))
            done = len(rows) < PAGE
            for entry_id, raw in rows:
                ev = _decode(raw)
                if _ms(entry_id) <= cut:
                    done = True
                    break
                if isinstance(ev, Trade):
                    if bound is None:
                        last = minute_start(ev.ts_exchange)
                        newest = max((b.start for b in bars), default=last - MINUTE_NS)
                        bound = max(newest, minute_start(last - keep_ns))
                        native = ev.native
                    if ev.ts_exchange < bound:
                        done = True
                        break
                if isinstance(ev, Trade | TradeGap):
                    events.append(ev)
                top = "(" + entry_id.decode()
        if events or bars:
            events.reverse()
            out[(a.exchange, a.symbol, native or events[-1].native)] = (events, bars)
    return out


def _ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def _decode(raw: dict[bytes, bytes]) -> Event | None:
    try:
        return wire.decode_fields({k.decode(): v.decode() for k, v in raw.items()})
    except Exception:  # an entry this version cannot read is not ours to fold in
        return None


def read_tails_waiting(redis_url: str, prefix: str, assignments: Sequence[Assignment], keep_ns: int,
                       wait_s: float) -> Tails:  # fmt: skip
    """`read_tails`, waiting up to ``wait_s`` for a Redis that is coming back (blocking: run it in an
    executor; then `BarFeed.restore` on the loop). Empty if Redis stays away."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                return read_tails(client, prefix, assignments, keep_ns)
            except redis.RedisError as e:
                if time.monotonic() > deadline:
                    log.error("cannot read the bars back: the open bars start from this life's trades", error=str(e))
                    return {}
                time.sleep(0.5)
    finally:
        client.close()
