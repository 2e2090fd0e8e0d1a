"""One feed connection: the only place that owns WebSockets and fetches REST snapshots.

`FeedConnection.run()` keeps a set of symbols of one exchange flowing. It runs ``redundancy`` lanes;
each lane keeps one WebSocket *session* up: connect, subscribe, decode every frame with the
exchange's codec, pass book deltas through the session's own `BookSync` per symbol, fetch snapshots
when a sync asks. What the sessions produce goes through one `Arbiter`, so every event is published
once however many sessions carry it (see ``arbiter.py``).

A lane reconnects with jittered backoff (reset after a healthy period), treats silence longer than
the exchange's liveness timeout as a dead session, and never lets bad exchange data crash the shard
(decode errors are counted and logged with context). When the exchange announces that it will close
a session (OKX's ``notice`` 64008, Binance's ``serverShutdown``), the lane makes before it breaks:
a successor session subscribes and waits until its books are valid, and only then is the old one
closed; the arbiter splices the two, so nothing is lost or repeated.

Trades are complete across disconnects: `Trades` (``trades.py``) backfills the holes from the
exchange's REST history, or publishes them as gaps.

Everything exchange-specific comes from the `ExchangeSpec`; this module never names an exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import structlog

from ingest.book.sync import BookSync, NeedSnapshot, sync_for
from ingest.clock import now_ns
from ingest.errors import ConnectionLost, DecodeError, RemoteError, is_retryable
from ingest.events import BookDelta, BookSnapshot, BookStatus, ConnectionStatus, Event, Trade
from ingest.exchanges.base import (
    Channel,
    Endpoint,
    ExchangeSpec,
    Greeting,
    Reconnect,
    Reply,
    Resync,
    Subscription,
)
from ingest.session.arbiter import Arbiter
from ingest.session.backoff import backoff
from ingest.session.trades import Trades

log = structlog.get_logger("feed")

HEALTHY_AFTER_S = 30.0
SNAPSHOT_CONCURRENCY = 4
HANDOVER_TIMEOUT_S = 20.0  # the longest an announced close waits for the successor's books
STREAM_RESYNC_GRACE_S = 2.0  # a stream declaring a book suspect sooner than this after its resubscribe backs off
OUR_CLOSES = ("handed over", "stopping")  # session ends that lose nothing
WATCH_TICK_S = 1.0  # the liveness watchdog's period (at most; shorter for short timeouts)
# A session that ends waits this long at most for the exchange's close frame (a dead one sends none).
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)


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
    ) -> None:
        """``session_life``: seconds after which a session is replaced, make before break (0: the
        exchange's own limit, `ExchangeSpec.session_life`; never longer than that).
        ``symbol_timeout``: seconds a book may be silent on a live session before it is presumed dead
        and resubscribed (0: 1.5 times the exchange's `ExchangeSpec.book_keepalive`, or never)."""
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
        self.natives = {spec.native_symbol(s): s for s in symbols}
        self.subscription = Subscription(tuple(self.natives), self.channels, depth or spec.default_depth)
        self.arbiter = Arbiter(spec.sequence_rule)
        self.stats = ConnectionStats()
        self.sessions: dict[int, Session] = {}  # live sessions by id
        self.latest: Session | None = None  # the newest session of lane 0 (tests read its books)
        self._ids = itertools.count()
        self._http: aiohttp.ClientSession | None = None
        self._snapshot_gate = asyncio.Semaphore(SNAPSHOT_CONCURRENCY)
        self._log = log.bind(exchange=spec.name, connection=conn_id)
        self.trades = Trades(
            spec, self.natives, self.rest_url, self.arbiter, publish, self.rest_get, self.stats, self._log
        )

    def resume_trades(self, last: Mapping[str, Trade]) -> None:
        """Carry on from trades published before this process started (a restarted shard)."""
        self.trades.resume(last)

    @property
    def syncs(self) -> dict[str, BookSync]:
        """The books of the newest session of the first lane, by native symbol."""
        return self.latest.syncs if self.latest is not None else {}

    async def run(self) -> None:
        """Run until cancelled."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            self._http = http
            try:
                await asyncio.gather(*(self._lane(http, lane) for lane in range(self.redundancy)))
            finally:
                await self.close()

    async def _lane(self, http: aiohttp.ClientSession, lane: int) -> None:
        delays = backoff()
        name = self.conn_id if self.redundancy == 1 else f"{self.conn_id}-r{lane}"
        session = self._open(http, name, lane)
        while True:
            announced = asyncio.ensure_future(session.announced.wait())
            try:
                await asyncio.wait([session.task, announced], return_when=asyncio.FIRST_COMPLETED)
            finally:
                announced.cancel()
            if not session.task.done():
                session = await self._hand_over(http, session, name, lane)
                continue
            reason = session.task.result()
            if session.lifetime() > HEALTHY_AFTER_S:
                delays = backoff()
            delay = next(delays)
            self.stats.reconnects += 1
            self._log.warning("reconnecting", session=name, reason=reason, delay=round(delay, 3))
            await asyncio.sleep(delay)
            session = self._open(http, name, lane)

    async def _hand_over(self, http: aiohttp.ClientSession, old: Session, name: str, lane: int) -> Session:
        """Make before break: a successor subscribes; once its books are valid (or the old session
        ends, or the wait times out) the old session is closed and the successor carries on."""
        self.stats.handovers += 1
        self._log.info("handing over", session=name)
        new = self._open(http, name, lane)
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

    def _open(self, http: aiohttp.ClientSession, name: str, lane: int) -> Session:
        session = Session(self, next(self._ids), name, http)
        self.sessions[session.id] = session
        self.arbiter.open(session.id)
        if lane == 0:
            self.latest = session
        session.task = asyncio.create_task(session.run(), name=f"{name}#{session.id}")
        return session

    def closed(self, session: Session, reason: str) -> None:
        self.sessions.pop(session.id, None)
        self.arbiter.forget(session.id)
        # Trades may be missed from now until a session is back; and a session that failed may have
        # taken trades no other session carried (frames it had not handled, a successor not yet
        # subscribed): the next trade of each symbol checks the history (nothing to fetch if the
        # other sessions carried everything).
        if not self.sessions or reason not in OUR_CLOSES:
            self.trades.uncovered()

    # -- what the sessions deliver ----------------------------------------------------------------

    def book_event(self, session: Session, event: Event, sync: BookSync) -> None:
        for out in self.arbiter.book(session.id, event, sync, self._syncs_of):
            self.publish(out)

    def _syncs_of(self, native: str) -> dict[int, BookSync]:
        """Every live session's book of ``native``, by session id."""
        return {sid: s.syncs[native] for sid, s in self.sessions.items() if native in s.syncs}

    def trade(self, trade: Trade) -> None:
        if self.arbiter.trade(trade):
            self.trades.admit(trade)

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


class Session:
    """One WebSocket and what lives and dies with it: its codec, a `BookSync` per symbol, its
    snapshot requests. ``task`` runs it and returns why it ended."""

    def __init__(self, feed: FeedConnection, sid: int, name: str, http: aiohttp.ClientSession) -> None:
        spec = feed.spec
        self.feed = feed
        self.spec = spec
        self.id = sid
        self.name = name
        self.http = http
        self.codec = spec.new_codec(feed.natives)
        self.syncs: dict[str, BookSync] = {}
        if "book" in feed.channels:
            self.syncs = {n: sync_for(spec, s, n, feed.depth) for n, s in feed.natives.items()}
        self.ready = asyncio.Event()  # every book valid (at once for a trades-only session)
        self.announced = asyncio.Event()  # the exchange said it will close this session, or it is old
        self.task: asyncio.Task[str]
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._frames = 0  # frames received (the watchdog compares it with what it saw last)
        self._greeted = not spec.greeting
        self._subscribed = False
        self._dead: str | None = None  # why the watchdog ended the session
        self._heard: dict[str, int] = {}  # native -> the frame count when its book last spoke
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._resubscribed: dict[str, tuple[int, float]] = {}  # native -> (attempts in a row, when)
        self._started = asyncio.get_running_loop().time()
        self._ended = False
        self._log = feed._log.bind(session=f"{name}#{sid}")

    def lifetime(self) -> float:
        return asyncio.get_running_loop().time() - self._started

    async def run(self) -> str:
        """Connect and read until the session ends; the reason it ended. Retryable failures end it;
        anything else (a bug, a fatal refusal) is raised after the session is wound up."""
        try:
            await self._connect_and_read()
            reason = "closed by the exchange"
        except asyncio.CancelledError:
            self._end("stopping")
            raise
        except Exception as e:
            reason = f"{type(e).__name__}: {e}"
            if not is_retryable(e) and not isinstance(e, aiohttp.ClientError):
                self._end(f"fatal: {e!r}")
                raise
        self._end(reason)
        return reason

    async def close(self, reason: str) -> None:
        """End the session from outside (handover, shard stop)."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        self._end(reason)

    async def _endpoint(self) -> Endpoint:
        """Where to connect: the spec's URL, or what the exchange's token request answers."""
        spec, feed = self.spec, self.feed
        request = spec.endpoint_request
        if request is None:
            return Endpoint(spec.connect_url(feed.ws_url, feed.subscription))
        body = await feed.rest_post(request.url(feed.rest_url))
        try:
            return request.decode(body, f"{self.name}-{self.id}-{uuid.uuid4().hex[:12]}")
        except DecodeError as e:
            raise ConnectionLost(f"no endpoint in the token response: {e}") from None

    async def _connect_and_read(self) -> None:
        spec = self.spec
        endpoint = await self._endpoint()
        heartbeat = spec.ping_interval if spec.ws_ping else None
        ws_connect = self.http.ws_connect(
            endpoint.url, heartbeat=heartbeat, autoping=True, max_msg_size=16 * 2**20, timeout=WS_TIMEOUT
        )
        async with ws_connect as ws:
            self._ws = ws
            watchdog = asyncio.create_task(self._watch(ws, endpoint))
            try:
                if self._greeted:
                    await self._subscribe(ws)
                while True:
                    # No timer per frame: the watchdog sees silence, and closes the socket on it.
                    msg = await ws.receive()
                    if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        self._frames += 1
                        self._on_frame(msg.data)
                        if not self._subscribed and self._greeted:
                            await self._subscribe(ws)
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                        break
                    elif msg.type == aiohttp.WSMsgType.ERROR:
                        raise ConnectionLost(f"websocket error: {ws.exception()!r}")
            finally:
                watchdog.cancel()
        if self._dead is not None:
            raise ConnectionLost(self._dead)

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        feed = self.feed
        self._subscribed = True
        for frame in self.spec.subscribe_frames(feed.subscription):
            await ws.send_str(frame)
        self._log.info("connected", symbols=len(feed.natives))
        feed.publish(self._conn_status("connected", "subscribed"))
        if not self.syncs:
            self.ready.set()
        if self.spec.snapshot_source == "rest":
            for native in self.syncs:
                self._request_snapshot(NeedSnapshot(native, "connected"))

    async def _watch(self, ws: aiohttp.ClientWebSocketResponse, endpoint: Endpoint) -> None:
        """Liveness, keepalive and rotation, once per tick rather than a timer per frame.

        With an application-level ping sent on silence, silence first triggers a ping, then (still
        silent as long again) the session is dead; with periodic pings (or none), silence past the
        liveness timeout is. A session not greeted within that timeout is dead too. A session older
        than the feed's session life is announced, so the lane replaces it, make before break."""
        spec, loop = self.spec, asyncio.get_running_loop()
        ping = spec.app_ping
        every = endpoint.ping_interval or spec.app_ping_interval
        limit = endpoint.liveness_timeout or spec.liveness_timeout
        on_silence = ping is not None and not spec.app_ping_periodic
        if on_silence:
            limit = 2 * every
        tick = min(WATCH_TICK_S, limit / 4, every / 4 if ping is not None else WATCH_TICK_S)
        life, book_timeout = self.feed.session_life, self.feed.symbol_timeout
        start = last_frame_at = last_ping_at = loop.time()
        seen = self._frames
        pinged = False
        heard: dict[str, tuple[int, float]] = {}  # native -> (its mark in _heard, when it changed)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            if self._frames != seen:
                seen, last_frame_at, pinged = self._frames, now, False
            silent = now - last_frame_at
            if book_timeout is not None and silent <= tick:  # the session speaks: do its books?
                for native in self._silent_books(heard, now, start, book_timeout):
                    await self._revive(ws, native, now - heard[native][1])
                    heard[native] = (self._heard.get(native, 0), now)
            dead: str | None = None
            if silent >= limit:
                dead = f"no message for {silent:.0f}s{' after a ping' if pinged else ''}"
            elif not self._greeted and now - start >= limit:
                dead = f"not greeted within {limit:g}s"
            if dead is not None:
                self._dead = dead
                await ws.close()  # the reader sees the close and the session ends with ``dead``
                return
            if ping is not None and (now - last_ping_at >= every if not on_silence else silent >= every and not pinged):
                await ws.send_str(ping)
                last_ping_at, pinged = now, True
            if life is not None and now - start >= life and not self.announced.is_set():
                self.feed.stats.rotations += 1
                self._log.info("rotating: the session reached its life", life=life)
                self.announced.set()

    def _on_frame(self, data: bytes | str) -> None:
        feed = self.feed
        feed.stats.frames += 1
        try:
            decoded = self.codec.decode(data, now_ns())
        except DecodeError as e:
            feed.stats.decode_errors += 1
            self._log.warning("undecodable frame", error=str(e))
            return
        for item in decoded:
            if isinstance(item, Trade):
                if item.native in feed.natives:
                    feed.trade(item)
            elif isinstance(item, BookDelta | BookSnapshot):
                sync = self.syncs.get(item.native)
                if sync is not None:
                    self._heard[item.native] = self._frames
                    self._act(sync, sync.on_delta(item) if isinstance(item, BookDelta) else sync.on_snapshot(item))
            elif isinstance(item, Reconnect):
                if not self.announced.is_set():
                    self._log.info("the exchange announced a close", reason=item.reason)
                    self.announced.set()
            elif isinstance(item, Resync):
                self._resync(item)
            elif isinstance(item, Greeting):
                self._greeted = True
            elif isinstance(item, Reply) and item.error is not None:
                self._log.error("request refused", request=item.request_id, error=item.error)

    def _silent_books(
        self, heard: dict[str, tuple[int, float]], now: float, start: float, timeout: float
    ) -> list[str]:
        """The live books that said nothing for ``timeout`` seconds (``heard`` is updated)."""
        out: list[str] = []
        for native, sync in self.syncs.items():
            mark = self._heard.get(native, 0)
            last_mark, since = heard.get(native, (0, start))
            if mark != last_mark or sync.state != "live":
                heard[native] = (mark, now)
            elif now - since >= timeout:
                out.append(native)
        return out

    async def _revive(self, ws: aiohttp.ClientWebSocketResponse, native: str, silent: float) -> None:
        """A book went silent while its session kept talking: resubscribe it and resync it (or,
        where the exchange has no way to resubscribe one symbol, end the session)."""
        feed, spec = self.feed, self.spec
        symbol = feed.natives[native]
        reason = f"book silent for {silent:.0f}s"
        feed.stats.books_silent += 1
        self._log.warning("book silent on a live session: resubscribing", symbol=symbol, silent=round(silent, 1))
        frames = spec.resubscribe_frames
        if frames is None:
            self._dead = f"{symbol}: {reason}"
            await ws.close()
            return
        if spec.snapshot_source == "rest":  # a stream snapshot source resubscribes on the reset below
            for frame in frames(native, feed.subscription):
                await ws.send_str(frame)
        sync = self.syncs[native]
        self._act(sync, sync.reset(reason, now_ns()))

    def _resync(self, item: Resync) -> None:
        """The stream declared books suspect: each is reset and fetches (or resubscribes for) a
        fresh snapshot, while the other books flow on."""
        natives = [n for n in (item.natives or tuple(self.syncs)) if n in self.syncs]
        self.feed.stats.resyncs_requested += len(natives)
        self._log.warning("the stream declared books suspect", reason=item.reason, books=len(natives))
        ts, now = now_ns(), asyncio.get_running_loop().time()
        for native in natives:
            sync = self.syncs[native]
            # A sound book declared suspect with the rest of its connection is not failing on its
            # own: its resubscribe starts over, unless the stream keeps declaring it within seconds.
            if sync.state == "live" and now - self._resubscribed.get(native, (0, 0.0))[1] >= STREAM_RESYNC_GRACE_S:
                self._resubscribed.pop(native, None)
            self._act(sync, sync.reset(item.reason, ts))

    def _act(self, sync: BookSync, actions: Sequence[Event | NeedSnapshot]) -> None:
        for a in actions:
            if isinstance(a, NeedSnapshot):
                self._request_snapshot(a)
            else:
                self.feed.book_event(self, a, sync)
                if isinstance(a, BookStatus) and a.state == "valid" and not self.ready.is_set():
                    self._check_ready()

    def _check_ready(self) -> None:
        if all(s.state == "live" for s in self.syncs.values()):
            self.ready.set()

    def _request_snapshot(self, need: NeedSnapshot) -> None:
        if self._ended:
            return
        task = self._snapshot_tasks.get(need.native)
        if task is not None and not task.done():
            return
        fetch = self._fetch_snapshot if self.spec.snapshot_source == "rest" else self._resubscribe
        self._snapshot_tasks[need.native] = asyncio.create_task(fetch(need.native))

    async def _resubscribe(self, native: str) -> None:
        """Ask the stream for a fresh snapshot of one symbol; the others are not touched."""
        frames = self.spec.resubscribe_frames
        if frames is None or self._ws is None or self._ws.closed:
            return
        # A book that keeps failing right after its snapshot must not resubscribe in a tight loop.
        now = asyncio.get_running_loop().time()
        count, last = self._resubscribed.get(native, (0, 0.0))
        count = count + 1 if now - last < HEALTHY_AFTER_S else 1
        self._resubscribed[native] = (count, now)
        if count > 1:
            await asyncio.sleep(min(0.25 * 2 ** (count - 2), 30.0))
        if self._ws is None or self._ws.closed:
            return
        self._log.info("resubscribing", symbol=self.feed.natives[native], attempt=count)
        for frame in frames(native, self.feed.subscription):
            await self._ws.send_str(frame)

    async def _fetch_snapshot(self, native: str) -> None:
        feed = self.feed
        url = self.spec.snapshot_url(feed.rest_url, native)
        delays = backoff(initial=0.2, cap=10.0)
        while True:
            try:
                snapshot = self.codec.decode_snapshot(await feed.rest_get(url), native, now_ns())
            except RemoteError as e:  # a refusal or an undecodable body: ask again, later
                feed.stats.snapshot_errors += 1
                delay = next(delays)
                self._log.warning("snapshot failed", symbol=feed.natives[native], error=str(e), delay=delay)
                await asyncio.sleep(delay)
                continue
            feed.stats.snapshots_fetched += 1
            sync = self.syncs[native]
            self._act(sync, sync.on_snapshot(snapshot))
            return

    def _end(self, reason: str) -> None:
        """Wind the session up once: its books reset (through the arbiter, so a standby takes over
        where one is valid), its snapshot requests cancelled, the disconnect published."""
        if self._ended:
            return
        self._ended = True
        for task in self._snapshot_tasks.values():
            task.cancel()
        self._snapshot_tasks.clear()
        ts = now_ns()
        for sync in self.syncs.values():
            self._act(sync, [a for a in sync.reset(reason, ts) if not isinstance(a, NeedSnapshot)])
        self.feed.closed(self, reason)
        self.feed.publish(self._conn_status("disconnected", reason))

    def _conn_status(self, state: str, reason: str) -> ConnectionStatus:
        natives = tuple(self.feed.natives.values())
        return ConnectionStatus(self.spec.name, "*", "*", self.name, state, reason, natives, now_ns())  # type: ignore[arg-type]
