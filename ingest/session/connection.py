"""One feed connection: its sessions (lanes, reconnects, handovers), their arbitration, REST access.

`FeedConnection.run()` keeps a set of symbols of one exchange flowing. It runs ``redundancy`` lanes;
each lane keeps one WebSocket *session* (``session.py``) up. What the sessions produce goes through
one `Arbiter`, so every event is published once however many sessions carry it (see ``arbiter.py``).

A lane reconnects with jittered backoff (reset after a healthy period) when its session ends (what a
session does, its liveness watchdog included, is in ``session.py``). When the exchange announces
that it will close a session (OKX's ``notice`` 64008, Binance's ``serverShutdown``), the lane makes
before it breaks: a successor session subscribes and waits until its books are valid, and only then
is the old one closed; the arbiter splices the two, so nothing is lost or repeated.

Trades are complete across disconnects: `Trades` (``trades.py``) backfills the holes from the
exchange's REST history, or publishes them as gaps.

Everything exchange-specific comes from the `ExchangeSpec`; this module never names an exchange.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import structlog

from ingest.book.sync import BookSync, SyncStats
from ingest.clock import now_ns
from ingest.errors import RemoteError
from ingest.events import BookDelta, BookSnapshot, Event, Trade
from ingest.exchanges.base import (
    Channel,
    ExchangeSpec,
    Subscription,
)
from ingest.session.arbiter import Arbiter
from ingest.session.backoff import backoff
from ingest.session.frames import BookOut
from ingest.session.session import HEALTHY_AFTER_S, Session
from ingest.session.tap import Tap
from ingest.session.trades import Trades

log = structlog.get_logger("feed")

SNAPSHOT_CONCURRENCY = 4
HANDOVER_TIMEOUT_S = 20.0  # the longest an announced close waits for the successor's books
OUR_CLOSES = ("handed over", "stopping")  # session ends that lose nothing


@dataclass(slots=True)
class ConnectionStats:
    frames: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    handovers: int = 0
    snapshots_fetched: int = 0
    snapshot_errors: int = 0
    trade_gaps: int = 0  # holes in trade ids (or disconnected spells) seen
    trades_backfilled: int = 0
    trades_unfilled: int = 0  # ids published as a TradeGap
    rotations: int = 0  # sessions replaced at the end of their life (a subset of handovers)
    books_silent: int = 0  # books found silent on a live session, and resubscribed
    resyncs_requested: int = 0  # books the stream itself declared suspect (`Resync`)
    bytes: int = 0  # WebSocket frame bytes received (every session)


class FeedConnection:
    def __init__(
        self,
        spec: ExchangeSpec,
        symbols: Sequence[str],
        channels: Sequence[Channel],
        publish: Callable[[Event], None],
        conn_id: str,
        ws_url: str = "",
        rest_url: str = "",
        depth: int = 0,
        redundancy: int = 1,
        session_life: float = 0.0,
        symbol_timeout: float = 0.0,
        tap: Tap | None = None,
        publish_book: Callable[[Event], None] | None = None,
    ) -> None:
        """``session_life``: seconds after which a session is replaced, make before break (0: the
        exchange's own limit, `ExchangeSpec.session_life`; never longer than that).
        ``symbol_timeout``: seconds a book may be silent on a live session before it is presumed dead
        and resubscribed (0: 1.5 times the exchange's `ExchangeSpec.book_keepalive`, or never).
        ``tap``: told every frame and REST response of every session (``tap.py``), e.g. to record them.
        ``publish_book``: where the book updates go, the bulk of what a feed publishes (``publish`` if
        not given; a shard sends them to its bus publisher directly, past its bars, which need trades
        only and read the book's clock from ``last_book``)."""
        self.spec = spec
        self.redundancy = redundancy
        limits = [x for x in (session_life, spec.session_life) if x]
        self.session_life: float | None = min(limits) if limits else None
        keepalive = spec.book_keepalive
        self.symbol_timeout: float | None = symbol_timeout or (1.5 * keepalive if keepalive else None)
        self.channels = tuple(channels)
        self.publish = publish
        self.conn_id = conn_id
        self.ws_url = ws_url or spec.ws_url
        self.rest_url = rest_url or spec.rest_url
        self.depth = depth
        self.tap = tap
        self.natives = {spec.native_symbol(s): s for s in symbols}
        self.subscription = Subscription(tuple(self.natives), self.channels, depth or spec.default_depth)
        self.arbiter = Arbiter(spec.sequence_rule)
        self.stats = ConnectionStats()
        self.sessions: dict[int, Session] = {}  # live sessions by id
        self.latest: Session | None = None  # the newest session of lane 0 (tests read its books)
        self._ended_books: dict[str, SyncStats] = {}  # native -> the book counters of ended sessions
        self._ids = itertools.count()
        self._http: aiohttp.ClientSession | None = None
        self._snapshot_gate = asyncio.Semaphore(SNAPSHOT_CONCURRENCY)
        self._log = log.bind(exchange=spec.name, connection=conn_id)
        self.trades = Trades(
            spec, self.natives, self.rest_url, self.arbiter, publish, self.rest_get, self.stats, self._log
        )
        self._books = BookOut(self.arbiter, publish_book or publish)
        # `book_event` for an update a live book applied (the bulk of a feed's events), the short way
        self.delta = self._books.delta
        self.trade = self.trades.out.trade  # a trade a session received, the short way too

    @property
    def last_book(self) -> BookDelta | BookSnapshot | None:
        """The newest book update published."""
        return self._books.last

    def resume_trades(self, last: Mapping[str, Trade]) -> None:
        """Carry on from trades published before this process started (a restarted shard)."""
        self.trades.resume(last)

    @property
    def syncs(self) -> dict[str, BookSync]:
        """The books of the newest session of the first lane, by native symbol."""
        return self.latest.syncs if self.latest is not None else {}

    async def run(self) -> None:
        """Run until cancelled. Every log line of the connection (and of the tasks it starts, which
        copy the context) carries its ``exchange`` and ``connection``, bound as structlog contextvars."""
        with structlog.contextvars.bound_contextvars(exchange=self.spec.name, connection=self.conn_id):
            await self._run()

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            self._http = http
            try:
                await asyncio.gather(*(self._lane(lane) for lane in range(self.redundancy)))
            finally:
                await self.close()

    async def _lane(self, lane: int) -> None:
        delays = backoff()
        name = self.conn_id if self.redundancy == 1 else f"{self.conn_id}-r{lane}"
        session = self._open(name, lane)
        while True:
            announced = asyncio.ensure_future(session.announced.wait())
            try:
                await asyncio.wait([session.task, announced], return_when=asyncio.FIRST_COMPLETED)
            finally:
                announced.cancel()
            if not session.task.done():
                session = await self._hand_over(session, name, lane)
                continue
            reason = session.task.result()
            if session.lifetime() > HEALTHY_AFTER_S:
                delays = backoff()
            delay = next(delays)
            self.stats.reconnects += 1
            self._log.warning("reconnecting", session=name, reason=reason, delay=round(delay, 3))
            await asyncio.sleep(delay)
            session = self._open(name, lane)

    async def _hand_over(self, old: Session, name: str, lane: int) -> Session:
        """Make before break: a successor subscribes; once its books are valid (or the old session
        ends, or the wait times out) the old session is closed and the successor carries on."""
        self.stats.handovers += 1
        self._log.info("handing over", session=name)
        new = self._open(name, lane)
        ready = asyncio.ensure_future(new.ready.wait())
        try:
            first = asyncio.FIRST_COMPLETED
            await asyncio.wait([ready, new.task, old.task], timeout=HANDOVER_TIMEOUT_S, return_when=first)
        finally:
            ready.cancel()
        await self._caught_up(old, new)
        await old.close("handed over")
        return new

    async def _caught_up(self, old: Session, new: Session) -> None:
        """Wait (bounded) until the old session has handled its stream up to where the successor's
        books start. A connection delivers in order, so once one of the old session's books reaches
        the id a new book started from, every frame the old connection carried before the new
        subscription took effect (its trades too) is handled; closing it earlier would drop frames
        already read for it, and trades without consecutive ids would be lost unseen."""
        if not new.ready.is_set() or old.task.done():
            return
        start = {n: s.last_seq for n, s in new.syncs.items() if s.last_seq is not None}
        if not start:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDOVER_TIMEOUT_S

        def behind() -> bool:
            for native, seq in start.items():
                sync = old.syncs.get(native)
                if sync is not None and sync.state == "live" and sync.last_seq is not None and sync.last_seq >= seq:
                    return False
            return True

        while behind() and not old.task.done() and loop.time() < deadline:
            await asyncio.sleep(0.005)

    def _open(self, name: str, lane: int) -> Session:
        session = Session(self, next(self._ids), name)
        self.sessions[session.id] = session
        self.arbiter.open(session.id)
        if lane == 0:
            self.latest = session
        session.task = asyncio.create_task(session.run(), name=f"{name}#{session.id}")
        return session

    def closed(self, session: Session, reason: str) -> None:
        self.sessions.pop(session.id, None)
        for native, sync in session.syncs.items():
            ended = self._ended_books.setdefault(native, SyncStats())
            ended.gaps += sync.stats.gaps
            ended.resyncs += sync.stats.resyncs
            ended.checksum_failures += sync.stats.checksum_failures
        self.arbiter.forget(session.id)
        # Trades may be missed from now until a session is back; and a session that failed may have
        # taken trades no other session carried (frames it had not handled, a successor not yet
        # subscribed): the next trade of each symbol checks the history (nothing to fetch if the
        # other sessions carried everything).
        if not self.sessions or reason not in OUR_CLOSES:
            self.trades.uncovered()

    def book_counters(self) -> dict[str, tuple[int, int, int]]:
        """Per native symbol: gaps, resyncs and checksum failures of every session so far (live and ended)."""
        out = {n: [s.gaps, s.resyncs, s.checksum_failures] for n, s in self._ended_books.items()}
        for session in self.sessions.values():
            for native, sync in session.syncs.items():
                c = out.setdefault(native, [0, 0, 0])
                c[0] += sync.stats.gaps
                c[1] += sync.stats.resyncs
                c[2] += sync.stats.checksum_failures
        return {n: (c[0], c[1], c[2]) for n, c in out.items()}

    @property
    def connected(self) -> bool:
        """Some session is subscribed."""
        return any(s.subscribed for s in self.sessions.values())

    # -- what the sessions deliver ----------------------------------------------------------------

    def book_event(self, session: Session, event: Event, sync: BookSync) -> None:
        for out in self.arbiter.book(session.id, event, sync, self._syncs_of):
            if type(out) is BookDelta or type(out) is BookSnapshot:  # a book update: where `delta` sends its
                self._books.publish(out)
            else:
                self.publish(out)

    def _syncs_of(self, native: str) -> dict[int, BookSync]:
        """Every live session's book of ``native``, by session id."""
        return {sid: s.syncs[native] for sid, s in self.sessions.items() if native in s.syncs}

    def count_frames(self) -> None:
        """Bring ``stats.frames`` and ``stats.bytes`` up to date (sessions add theirs once a tick)."""
        for session in self.sessions.values():
            session.count()

    async def rest_get(self, url: str) -> bytes:
        """GET a REST resource, retried with backoff on network errors and 5xx/429 (callers bound
        the time); another status is a `RemoteError`."""
        return await self._rest("GET", url)

    async def rest_post(self, url: str) -> bytes:
        """POST (no body) to a REST resource, retried as `rest_get` is."""
        return await self._rest("POST", url)

    async def _rest(self, method: str, url: str) -> bytes:
        assert self._http is not None
        delays = backoff(initial=0.2, cap=5.0)
        while True:
            try:
                async with self._snapshot_gate, self._http.request(method, url) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        if self.tap is not None:
                            self.tap.http(url, now_ns(), body)
                        return body
                    if resp.status < 500 and resp.status != 429:
                        raise RemoteError(f"HTTP {resp.status} from {url}: {body[:200]!r}")
                    error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                error = str(e) or type(e).__name__
            delay = next(delays)
            self._log.warning("REST request failed", method=method, url=url, error=error, delay=round(delay, 3))
            await asyncio.sleep(delay)

    async def close(self) -> None:
        """Close every session, and end running backfills with what they have (idempotent)."""
        for session in list(self.sessions.values()):
            await session.close("stopping")
        await self.trades.close()
