"""One WebSocket session of a feed, and what lives and dies with it.

A `Session` connects (after the exchange's token request and greeting, where it has them),
subscribes, decodes every frame with its own codec, passes book messages through its own `BookSync`
per symbol, and fetches (or resubscribes for) the snapshots a sync asks for; what it produces goes to
its `FeedConnection`, which arbitrates between sessions. Bad exchange data never crashes it (decode
errors are counted and logged with context).

Frames are not awaited: the WebSocket (``ws.py``, picows) hands each complete message to the
session's `Frames` (``frames.py``) from its protocol callback, so a frame costs no task wake-up,
future or message object; sends are synchronous writes. The session's task only waits for the
socket to end.

A watchdog task checks the session once a tick instead of a timer per frame: silence past the
exchange's liveness timeout (after a ping where the exchange has application pings) ends it, a book
silent on a talking session is resubscribed, and a session past its life is announced for a
make-before-break handover.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
import structlog

from ingest.book.sync import BookSync, NeedSnapshot, sync_for
from ingest.clock import now_ns
from ingest.errors import ConnectionLost, DecodeError, RemoteError, is_retryable
from ingest.events import BookSnapshot, BookStatus, ConnectionStatus, Event
from ingest.exchanges.base import Endpoint, Greeting, Reconnect, Reply, Resync
from ingest.session.backoff import backoff
from ingest.session.frames import Frames
from ingest.session.ws import WebSocket, connect

if TYPE_CHECKING:
    from ingest.session.connection import FeedConnection

HEALTHY_AFTER_S = 30.0  # a session that lived this long resets the backoffs
STREAM_RESYNC_GRACE_S = 2.0  # a stream declaring a book suspect sooner than this after its resubscribe backs off
WATCH_TICK_S = 1.0  # the liveness watchdog's period (at most; shorter for short timeouts)


class Session:
    """One WebSocket and what lives and dies with it: its codec, a `BookSync` per symbol, its
    snapshot requests. ``task`` runs it and returns why it ended."""

    def __init__(self, feed: FeedConnection, sid: int, name: str) -> None:
        spec = feed.spec
        self.feed = feed
        self.spec = spec
        self.id = sid
        self.name = name
        self.codec = spec.new_codec(feed.natives)
        self.syncs: dict[str, BookSync] = {}
        if "book" in feed.channels:
            self.syncs = {n: sync_for(spec, s, n, feed.depth) for n, s in feed.natives.items()}
        self.ready = asyncio.Event()  # every book valid (at once for a trades-only session)
        self.announced = asyncio.Event()  # the exchange said it will close this session, or it is old
        self.task: asyncio.Task[str]
        self._ws: WebSocket | None = None
        self._url = ""  # where the WebSocket is connected
        self._tap = feed.tap
        # The watchdog compares its frame count with what it saw last; `count` adds it to the feed's.
        self.frames = Frames(sid, self.codec, self.syncs, feed.natives, feed.tap, feed.delta, feed.trade,
                             self._act, self._other, self._undecodable)  # fmt: skip
        self._counted = (0, 0)  # frames and bytes added to the feed's counters so far (`count`)
        self._greeted = not spec.greeting
        self._subscribed = False
        self._dead: str | None = None  # why the watchdog ended the session
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._resubscribed: dict[str, tuple[int, float]] = {}  # native -> (attempts in a row, when)
        self._started = asyncio.get_running_loop().time()
        self._ended = False
        self._log = feed._log.bind(session=f"{name}#{sid}")

    def count(self) -> None:
        """Add the frames and bytes received since the last count to the feed's counters (the
        watchdog counts once a tick, a report and the end once more: no counter update per frame)."""
        frames, size = self.frames.count, self.frames.size
        stats = self.feed.stats
        stats.frames += frames - self._counted[0]
        stats.bytes += size - self._counted[1]
        self._counted = (frames, size)

    @property
    def subscribed(self) -> bool:
        """Connected, and the subscriptions sent (until the session ends)."""
        return self._subscribed and not self._ended

    def lifetime(self) -> float:
        return asyncio.get_running_loop().time() - self._started

    async def run(self) -> str:
        """Connect and read until the session ends; the reason it ended. Retryable failures end it;
        anything else (a bug, a fatal refusal) is raised after the session is wound up. Its log lines
        (its snapshot tasks' too) carry ``session``, bound in this task's context."""
        structlog.contextvars.bind_contextvars(session=f"{self.name}#{self.id}")
        try:
            reason = await self._connect_and_read()
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

    async def _connect_and_read(self) -> str:
        """Connect, subscribe (at once, or once greeted) and wait until the socket ends; why it did.
        Frames are handled as they arrive, by `Frames.on_frame` (a picows callback: no task per frame)."""
        spec = self.spec
        endpoint = await self._endpoint()
        ping = spec.ping_interval if spec.ws_ping else None
        ws = await connect(endpoint.url, self.frames.on_frame, ping, on_open=self._opened)
        watchdog = asyncio.create_task(self._watch(ws, endpoint))
        try:
            # No timer per frame: the watchdog sees silence, and closes the socket on it.
            ended = await ws.ended()
        finally:
            watchdog.cancel()
            await ws.close()  # bounded; a no-op when the socket is gone already
        if self._dead is not None:
            raise ConnectionLost(self._dead)
        return ended

    def _opened(self, ws: WebSocket) -> None:
        """The socket is up, its first frame not handled yet: from now on the session writes to it."""
        self._ws = ws
        self._url = ws.url
        if self._tap is not None:
            self._tap.opened(ws.url, now_ns())
        if self._greeted:
            self._subscribe(ws)

    def _subscribe(self, ws: WebSocket) -> None:
        feed = self.feed
        self._subscribed = True
        for frame in self.spec.subscribe_frames(feed.subscription):
            self._send(ws, frame)
        self._log.info("connected", symbols=len(feed.natives))
        feed.publish(self._conn_status("connected", "subscribed"))
        if not self.syncs:
            self.ready.set()
        if self.spec.snapshot_source == "rest":
            for native in self.syncs:
                self._request_snapshot(NeedSnapshot(native, "connected"))

    async def _watch(self, ws: WebSocket, endpoint: Endpoint) -> None:
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
        seen = self.frames.count
        pinged = False
        heard: dict[str, tuple[int, float]] = {}  # native -> (its mark in frames.heard, when it changed)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            self.count()
            if self.frames.count != seen:
                seen, last_frame_at, pinged = self.frames.count, now, False
            silent = now - last_frame_at
            if book_timeout is not None and silent <= tick:  # the session speaks: do its books?
                for native in self._silent_books(heard, now, start, book_timeout):
                    await self._revive(ws, native, now - heard[native][1])
                    heard[native] = (self.frames.heard.get(native, 0), now)
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
                self._send(ws, ping)
                last_ping_at, pinged = now, True
            if life is not None and now - start >= life and not self.announced.is_set():
                self.feed.stats.rotations += 1
                self._log.info("rotating: the session reached its life", life=life)
                self.announced.set()

    def _send(self, ws: WebSocket, frame: str) -> None:
        if self._tap is not None:
            self._tap.sent(self._url, now_ns(), frame)
        ws.send(frame)

    def _undecodable(self, error: DecodeError) -> None:
        self.feed.stats.decode_errors += 1
        self._log.warning("undecodable frame", error=str(error))

    def _other(self, item: object, frames: int) -> None:
        """What a frame holds besides book updates and trades."""
        if isinstance(item, BookSnapshot):  # a stream's snapshot
            sync = self.syncs.get(item.native)
            if sync is not None:
                self.frames.heard[item.native] = frames
                self._act(sync, sync.on_snapshot(item))
        elif isinstance(item, Reconnect):
            if not self.announced.is_set():
                self._log.info("the exchange announced a close", reason=item.reason)
                self.announced.set()
        elif isinstance(item, Resync):
            self._resync(item)
        elif isinstance(item, Greeting):
            self._greeted = True
            if not self._subscribed and self._ws is not None:
                self._subscribe(self._ws)
        elif isinstance(item, Reply) and item.error is not None:
            self._log.error("request refused", request=item.request_id, error=item.error)

    def _silent_books(
        self, heard: dict[str, tuple[int, float]], now: float, start: float, timeout: float
    ) -> list[str]:
        """The live books that said nothing for ``timeout`` seconds (``heard`` is updated)."""
        out: list[str] = []
        for native, sync in self.syncs.items():
            mark = self.frames.heard.get(native, 0)
            last_mark, since = heard.get(native, (0, start))
            if mark != last_mark or sync.state != "live":
                heard[native] = (mark, now)
            elif now - since >= timeout:
                out.append(native)
        return out

    async def _revive(self, ws: WebSocket, native: str, silent: float) -> None:
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
                self._send(ws, frame)
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
                if isinstance(a, BookStatus) and a.state == "gap":
                    self._log.warning("book gap: resyncing", symbol=a.symbol, reason=a.reason,
                                      gap_from=a.gap_from, gap_to=a.gap_to)  # fmt: skip
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
            self._send(self._ws, frame)

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
        self.count()
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
