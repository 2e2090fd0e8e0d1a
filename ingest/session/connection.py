"""One feed connection: the only place that owns a WebSocket and fetches REST snapshots.

`FeedConnection.run()` keeps one connection to one exchange up for a set of symbols: connect,
subscribe, decode every frame with the exchange's codec, pass book deltas through each symbol's
`BookSync`, fetch snapshots when a sync asks, publish every resulting event. It reconnects with
jittered backoff (reset after a healthy period), treats silence longer than the exchange's
liveness timeout as a dead connection, and never lets bad exchange data crash the shard (decode
errors are counted and logged with context).

Everything exchange-specific comes from the `ExchangeSpec`; this module never names an exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
import structlog

from ingest.book.sync import BookSync, NeedSnapshot, sync_for
from ingest.clock import now_ns
from ingest.errors import ConnectionLost, DecodeError, RemoteError, is_retryable
from ingest.events import BookDelta, BookSnapshot, ConnectionStatus, Event, Trade
from ingest.exchanges.base import Channel, ExchangeSpec, Reconnect, Reply, Subscription
from ingest.session.backoff import backoff

log = structlog.get_logger("feed")

HEALTHY_AFTER_S = 30.0
SNAPSHOT_CONCURRENCY = 4


@dataclass(slots=True)
class ConnectionStats:
    frames: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    snapshots_fetched: int = 0
    snapshot_errors: int = 0
    trade_gaps: int = 0
    trades_missing: int = 0


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
    ) -> None:
        self.spec = spec
        self.redundancy = redundancy
        self.channels = tuple(channels)
        self.publish = publish
        self.conn_id = conn_id
        self.ws_url = ws_url or spec.ws_url
        self.rest_url = rest_url or spec.rest_url
        self.natives = {spec.native_symbol(s): s for s in symbols}
        self.subscription = Subscription(tuple(self.natives), self.channels, depth or spec.default_depth)
        self.codec = spec.new_codec(self.natives)
        self.syncs: dict[str, BookSync] = {}
        if "book" in self.channels:
            self.syncs = {n: sync_for(spec, s, n, depth) for n, s in self.natives.items()}
        self.stats = ConnectionStats()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._resubscribed: dict[str, tuple[int, float]] = {}  # native -> (attempts in a row, when)
        self._last_trade_id: dict[str, int] = {}  # native -> highest trade id seen, across reconnects
        self._snapshot_gate = asyncio.Semaphore(SNAPSHOT_CONCURRENCY)
        self._http: aiohttp.ClientSession | None = None
        self._log = log.bind(exchange=spec.name, connection=conn_id)

    async def run(self) -> None:
        """Run until cancelled."""
        delays = backoff()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            self._http = http
            while True:
                started = asyncio.get_running_loop().time()
                try:
                    await self._session(http)
                    reason = "closed by the exchange"
                except asyncio.CancelledError:
                    self._disconnected("stopping")
                    raise
                except Exception as e:
                    if not is_retryable(e) and not isinstance(e, aiohttp.ClientError):
                        self._disconnected(f"fatal: {e!r}")
                        raise
                    reason = f"{type(e).__name__}: {e}"
                self._disconnected(reason)
                if asyncio.get_running_loop().time() - started > HEALTHY_AFTER_S:
                    delays = backoff()
                delay = next(delays)
                self.stats.reconnects += 1
                self._log.warning("reconnecting", reason=reason, delay=round(delay, 3))
                await asyncio.sleep(delay)

    async def _session(self, http: aiohttp.ClientSession) -> None:
        spec = self.spec
        url = spec.connect_url(self.ws_url, self.subscription)
        heartbeat = spec.ping_interval if spec.ws_ping else None
        async with http.ws_connect(url, heartbeat=heartbeat, autoping=True, max_msg_size=16 * 2**20) as ws:
            self._ws = ws
            for frame in spec.subscribe_frames(self.subscription):
                await ws.send_str(frame)
            self._log.info("connected", symbols=len(self.natives))
            self.publish(self._conn_status("connected", "subscribed"))
            if spec.snapshot_source == "rest":
                for native in self.syncs:
                    self._request_snapshot(NeedSnapshot(native, "connected"))
            # With an application-level ping, silence first triggers a ping, then (still silent) a
            # reconnect; without one, silence past the liveness timeout is a dead connection.
            idle = spec.app_ping_interval if spec.app_ping is not None else spec.liveness_timeout
            pinged = False
            while True:
                try:
                    # Not wait_for: before Python 3.12 it swallows a cancellation that arrives as the
                    # frame does, and the runner would go on reconnecting after being stopped.
                    async with asyncio.timeout(idle):
                        msg = await ws.receive()
                except TimeoutError:
                    if spec.app_ping is None or pinged:
                        raise ConnectionLost(f"no message for {idle}s{' after a ping' if pinged else ''}") from None
                    await ws.send_str(spec.app_ping)
                    pinged = True
                    continue
                pinged = False
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._on_frame(msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    return
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise ConnectionLost(f"websocket error: {ws.exception()!r}")

    def _on_frame(self, data: bytes | str) -> None:
        ts = now_ns()
        self.stats.frames += 1
        try:
            decoded = self.codec.decode(data, ts)
        except DecodeError as e:
            self.stats.decode_errors += 1
            self._log.warning("undecodable frame", error=str(e))
            return
        for item in decoded:
            if isinstance(item, Trade):
                if item.native in self.natives:
                    self._check_trade_id(item)
                    self.publish(item)
            elif isinstance(item, BookDelta | BookSnapshot):
                sync = self.syncs.get(item.native)
                if sync is not None:
                    actions = sync.on_delta(item) if isinstance(item, BookDelta) else sync.on_snapshot(item)
                    self._act(actions)
            elif isinstance(item, Reconnect):
                raise ConnectionLost(f"exchange asked to reconnect: {item.reason}")
            elif isinstance(item, Reply) and item.error is not None:
                self._log.error("request refused", request=item.request_id, error=item.error)

    def _check_trade_id(self, trade: Trade) -> None:
        """Where the exchange numbers each symbol's trades consecutively, a jump is logged and
        counted with the missing range (filling it from REST history is the backfill's job)."""
        if not self.spec.trade_ids_contiguous or not trade.trade_id.isdigit():
            return
        tid = int(trade.trade_id)
        last = self._last_trade_id.get(trade.native)
        self._last_trade_id[trade.native] = tid if last is None else max(last, tid)
        if last is not None and tid > last + 1:
            self.stats.trade_gaps += 1
            self.stats.trades_missing += tid - last - 1
            self._log.warning("trade ids missing", symbol=trade.symbol, first=last + 1, last=tid - 1)

    def _act(self, actions: Sequence[Event | NeedSnapshot]) -> None:
        for a in actions:
            if isinstance(a, NeedSnapshot):
                self._request_snapshot(a)
            else:
                self.publish(a)

    def _request_snapshot(self, need: NeedSnapshot) -> None:
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
        self._log.info("resubscribing", symbol=self.natives[native], attempt=count)
        for frame in frames(native, self.subscription):
            await self._ws.send_str(frame)

    async def _fetch_snapshot(self, native: str) -> None:
        assert self._http is not None
        url = self.spec.snapshot_url(self.rest_url, native)
        delays = backoff(initial=0.2, cap=10.0)
        while True:
            try:
                async with self._snapshot_gate, self._http.get(url) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RemoteError(f"snapshot HTTP {resp.status}: {body[:200]!r}")
                snapshot = self.codec.decode_snapshot(body, native, now_ns())
            except (aiohttp.ClientError, TimeoutError, RemoteError) as e:
                self.stats.snapshot_errors += 1
                delay = next(delays)
                self._log.warning("snapshot failed", symbol=self.natives[native], error=str(e), delay=delay)
                await asyncio.sleep(delay)
                continue
            self.stats.snapshots_fetched += 1
            self._act(self.syncs[native].on_snapshot(snapshot))
            return

    def _disconnected(self, reason: str) -> None:
        for task in self._snapshot_tasks.values():
            task.cancel()
        self._snapshot_tasks.clear()
        ts = now_ns()
        for sync in self.syncs.values():
            self._act([a for a in sync.reset(reason, ts) if not isinstance(a, NeedSnapshot)])
        self.publish(self._conn_status("disconnected", reason))

    def _conn_status(self, state: str, reason: str) -> ConnectionStatus:
        return ConnectionStatus(
            self.spec.name, "*", "*", self.conn_id, state, reason, tuple(self.natives.values()), now_ns()  # type: ignore[arg-type]
        )

    async def close(self) -> None:
        for task in self._snapshot_tasks.values():
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._snapshot_tasks.values(), return_exceptions=True)
