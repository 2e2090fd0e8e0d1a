"""The generic half of a simulated exchange: client connections and what an exchange module plugs in.

- `ExchangeSim` is what an exchange module (``tools/sim/<exchange>.py``) provides: its paths, its
  wire format for the market's events, and the skip fault (sequence numbers are exchange-specific).
- `Venue` is what the simulator hands to it: the exchange's markets, its open connections, the
  truth-log hook for first subscriptions, the connection settings, and the exchange's own options
  (``options``: whatever the simulator was given for this exchange; the module validates them).
- `Connection` is one client WebSocket. `Connection.send` only queues; one writer task is the only
  writer to the socket (data, pings and pongs alike). A client whose unsent backlog passes the
  venue's ``max_send_buffer`` bytes is dropped and counted, as a real exchange drops slow readers,
  so a slow client can never grow an unbounded buffer. The server pings every ``ping_interval`` and
  aborts a client silent (no pong) for ``pong_timeout``. `Connection.stall` holds everything (data,
  pings, and the pong replies to client pings, which are discarded) for a while; `Connection.abort`
  closes the TCP connection with no close frame.

Nothing here names an exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from tools.sim.market import MarketEvent, MarketTrade, MarketView, Side
from tools.sim.truth import TruthLog

HISTORY_TRADES = 10_000  # trades per symbol the REST trade history serves

log = logging.getLogger(__name__)


class RecentTrades:
    """A symbol's newest trades (at most ``maxlen``) with their times, oldest first: a sequence of
    ``(MarketTrade, ts_ns)``. Held as plain tuples ``(id, price, qty, side, ts_ns)``, which the garbage
    collector stops tracking: a million tracked objects (10,000 trades x 100 symbols) made each of
    its full passes stall the simulator's sending, 60-130 ms every ~9 s at 20k msgs/s, a pause (and
    then a burst) that no exchange's feed has."""

    def __init__(self, maxlen: int) -> None:
        self._rows: deque[tuple[int, str, str, Side, int]] = deque(maxlen=maxlen)

    def append(self, entry: tuple[MarketTrade, int]) -> None:
        t, ts = entry
        self._rows.append((t.trade_id, t.price, t.qty, t.side, ts))

    def clear(self) -> None:
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> tuple[MarketTrade, int]:
        trade_id, price, qty, side, ts = self._rows[i]
        return MarketTrade(trade_id, price, qty, side), ts

    def __iter__(self) -> Iterator[tuple[MarketTrade, int]]:
        for trade_id, price, qty, side, ts in self._rows:
            yield MarketTrade(trade_id, price, qty, side), ts


class ExchangeSim(Protocol):
    """One exchange's protocol on top of the generic venue."""

    def routes(self, prefix: str) -> list[web.RouteDef]:
        """aiohttp routes, every path starting with ``prefix`` (``/<exchange>``)."""
        ...

    def publish(self, ts_ns: int, events: Mapping[str, Sequence[MarketEvent]]) -> None:
        """Turn one clock tick's events (canonical symbol -> events, in order) into messages and
        `Connection.send` them. Called only with symbols that had events."""
        ...

    def skip(self, symbol: str, count: int) -> None:
        """The skip fault: leave ``count`` update ids of ``symbol`` out of the next book updates."""
        ...

    def status(self) -> dict[str, Any]: ...


WRITE_BUFFER_LIMIT = 1 << 20  # bytes the transport may hold for a client before the writer waits
_FIN_TEXT, _FIN_BINARY = 0x81, 0x82


def ws_frame(data: str | bytes, *, text: bool = False) -> bytes:
    """One unmasked (server to client) WebSocket frame: text for ``str`` (or ``bytes`` with ``text``:
    UTF-8 already), binary for ``bytes`` (RFC 6455 5.2)."""
    if isinstance(data, str):
        payload, first = data.encode(), _FIN_TEXT
    else:
        payload, first = data, _FIN_TEXT if text else _FIN_BINARY
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


class Connection:
    """One client WebSocket. `send` only queues; the writer task is the socket's single writer."""

    _ids = itertools.count(1)

    def __init__(self, venue: Venue, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.id = next(self._ids)
        self.venue = venue
        self.ws = ws
        self.subs: dict[str, str] = {}  # stream name -> canonical symbol, in subscription order
        self.closed = False
        self._transport = request.transport
        self._loop = asyncio.get_running_loop()
        self._data: deque[bytes] = deque()  # WebSocket frames, made when queued
        self._queued = 0  # bytes in _data
        self._control: deque[tuple[bool, bytes]] = deque()  # (is_ping, payload): pings and pongs
        self._wake = asyncio.Event()
        self._stall_until = 0.0
        self._last_pong = self._loop.time()

    @property
    def stalled(self) -> bool:
        return self._loop.time() < self._stall_until

    @property
    def backlog(self) -> int:
        """Bytes queued here and in the transport, not yet handed to the kernel."""
        transport = self._transport
        return self._queued + (transport.get_write_buffer_size() if transport is not None else 0)

    def send(self, text: str | bytes) -> None:
        """Queue a text frame (bytes: a binary frame). Drops the connection if its backlog passes the
        venue's bound."""
        self._queue(ws_frame(text))

    def send_text(self, data: bytes) -> None:
        """Queue a text frame whose UTF-8 bytes are ``data`` (as `send`)."""
        self._queue(ws_frame(data, text=True))

    def _queue(self, frame: bytes) -> None:
        if self.closed:
            return
        self._data.append(frame)
        self._queued += len(frame)
        if self._queued > self.venue.max_send_buffer:
            self.venue.slow_drops += 1
            log.info("dropping slow client %s (%d bytes queued)", self.id, self._queued)
            self.abort()
            return
        self._wake.set()

    def abort(self) -> None:
        """Close the TCP connection at once: no close frame, queued data discarded."""
        self.closed = True
        self._data.clear()
        self._queued = 0
        if self._transport is not None:
            self._transport.abort()
        self._wake.set()

    def stall(self, seconds: float) -> None:
        self._stall_until = max(self._stall_until, self._loop.time() + seconds)

    async def close(self) -> None:
        """A clean close (server going away): a close frame, then the socket."""
        if not self.closed:
            self.closed = True
            self._wake.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(code=1001, message=b"server stopping"), 1.0)
        if self._transport is not None:
            self._transport.abort()

    async def run(self, on_text: Callable[[Connection, str], None], *beside: Coroutine[Any, Any, None]) -> None:
        """Serve the connection until it closes: read frames (text goes to ``on_text``), answer
        pings, ping the client and drop it if it stops answering. ``beside``: the exchange's own tasks
        for this connection (its watchdog, its heartbeats), run with it and cancelled when it ends; an
        error one of them raised (a bug) is raised here then."""
        own = [asyncio.create_task(self._writer()), asyncio.create_task(self._pinger())]
        theirs = [asyncio.create_task(c) for c in beside]
        tasks = own + theirs
        try:
            while not self.closed:
                msg = await self.ws.receive()
                if msg.type is WSMsgType.TEXT:
                    on_text(self, msg.data)
                elif msg.type is WSMsgType.PING:
                    if not self.stalled:  # a stalled server answers nothing
                        self._control.append((False, msg.data))
                        self._wake.set()
                elif msg.type is WSMsgType.PONG:
                    self._last_pong = self._loop.time()
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            self.closed = True
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            self.venue.connections.discard(self)
            if not self.ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(), 1.0)
        for result in results[len(own):]:
            if isinstance(result, Exception):
                raise result

    async def _writer(self) -> None:
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                while not self.closed and (self._control or self._data):
                    wait = self._stall_until - self._loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        continue
                    if self._control:
                        is_ping, payload = self._control.popleft()
                        await (self.ws.ping(payload) if is_ping else self.ws.pong(payload))
                    else:
                        await self._write_data()
        except (ConnectionError, RuntimeError):
            self.abort()

    async def _write_data(self) -> None:
        """Everything queued, as WebSocket frames in one write (not a write, and a system call, per
        frame: most of the simulator's time at 10k messages/s went there), then wait while the
        client is that far behind (as aiohttp's own send does)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client's connection is closing")
        frames = list(self._data)
        self._data.clear()
        self._queued = 0
        transport.write(b"".join(frames))
        while not self.closed and transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            await asyncio.sleep(0.005)

    async def _pinger(self) -> None:
        interval, timeout = self.venue.ping_interval, self.venue.pong_timeout
        next_ping = self._loop.time() + interval
        while not self.closed:
            await asyncio.sleep(max(0.0, min(next_ping, self._last_pong + timeout) - self._loop.time()))
            now = self._loop.time()
            if self.stalled:
                # No pings were sent while stalled, so the silence is ours, not the client's.
                self._last_pong = max(self._last_pong, self._stall_until)
                next_ping = self._stall_until + interval
                continue
            if now - self._last_pong >= timeout:
                self.venue.pong_timeouts += 1
                log.info("client %s sent no pong for %.1f s: closing", self.id, timeout)
                self.abort()
                return
            if now >= next_ping:
                self._control.append((True, str(time.time_ns() // 1_000_000).encode()))
                self._wake.set()
                next_ping = now + interval


class Venue:
    """The generic half of one simulated exchange, handed to its exchange module."""

    def __init__(
        self,
        name: str,
        markets: Mapping[str, MarketView],
        truth: TruthLog,
        ping_interval: float,
        pong_timeout: float,
        max_send_buffer: int,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.markets = markets
        self.truth = truth
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_send_buffer = max_send_buffer
        self.options: Mapping[str, Any] = dict(options or {})
        self.connections: set[Connection] = set()
        # Levels per side a symbol's book is served at, for exchanges that serve a window of the book
        # (set by the exchange module); the truth log's final book is that window. Absent: the whole book.
        self.book_depth: dict[str, int] = {}
        # Each symbol's recent trades with their times, for the exchanges' REST trade history.
        self.trades: dict[str, RecentTrades] = {s: RecentTrades(HISTORY_TRADES) for s in markets}
        # Symbols whose book some client fetched over REST (exchange modules that serve books add them).
        self.books_served: set[str] = set()
        self.accepted = 0
        self.slow_drops = 0
        self.pong_timeouts = 0

    async def accept(self, request: web.Request) -> Connection:
        """Complete the WebSocket handshake. The caller subscribes, then awaits `Connection.run`."""
        # compress=False: the real exchanges do not deflate, and deflate would dominate the CPU.
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Connection(self, request, ws)
        self.connections.add(conn)
        self.accepted += 1
        return conn

    def record_trades(self, symbol: str, events: Sequence[MarketEvent]) -> None:
        history = self.trades[symbol]
        for ev in events:
            if ev.trade is not None:
                history.append((ev.trade, ev.ts_ns))

    def forget_trades(self, symbol: str) -> None:
        """The *forget* fault: the history loses what it holds, so a backfill cannot fill a hole."""
        self.trades[symbol].clear()

    def history(self, symbol: str, from_id: int | None, limit: int) -> list[tuple[MarketTrade, int]]:
        """Up to ``limit`` trades from id ``from_id`` on, oldest first (the newest ``limit`` if None)."""
        trades = self.trades[symbol]
        if from_id is None:
            return list(trades)[-limit:]
        return [t for t in trades if t[0].trade_id >= from_id][:limit]

    def subscribe(self, conn: Connection, stream: str, symbol: str) -> None:
        """Add a stream to a connection; the first subscription of a symbol goes in the truth log."""
        conn.subs[stream] = symbol
        market = self.markets.get(symbol)
        if market is not None:
            self.truth.subscribed(self.name, symbol, market.next_trade_id, time.time_ns())

    def status(self) -> dict[str, Any]:
        subs: dict[str, int] = {}
        for conn in self.connections:
            for stream in conn.subs:
                subs[stream] = subs.get(stream, 0) + 1
        return {
            "connections": len(self.connections),
            "accepted": self.accepted,
            "slow_drops": self.slow_drops,
            "pong_timeouts": self.pong_timeouts,
            "subscriptions": dict(sorted(subs.items())),
            "symbols": {
                s: {"update_id": m.update_id, "last_trade_id": m.last_trade_id}
                for s, m in self.markets.items()
            },
        }
