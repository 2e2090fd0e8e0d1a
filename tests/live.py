"""Helpers for tests that run against live sockets (the simulator, a feed connection)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType

from ingest.book.book import OrderBook
from ingest.events import BookDelta, BookSnapshot, BookStatus, ConnectionStatus, Event
from ingest.exchanges.base import Channel, ExchangeSpec
from ingest.session.connection import FeedConnection
from ingest.settings import SimulatorSettings
from tools.sim.server import Simulator

ENDS = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def run(coro: Callable[[], Coroutine[Any, Any, None]], timeout: float = 60.0) -> None:
    """Run a test's coroutine function on a fresh event loop, failing it after ``timeout`` seconds."""
    asyncio.run(asyncio.wait_for(coro(), timeout))


@contextlib.asynccontextmanager
async def simulated(
    tmp_path: Path, feeds: dict[str, list[str]], options: Mapping[str, Mapping[str, Any]] | None = None,
    *, sim_kw: Mapping[str, Any] | None = None, **settings: Any,
) -> AsyncIterator[Simulator]:
    """The simulator serving ``feeds`` on loopback (its truth log in ``tmp_path``): ``settings`` over
    rate 200 and 15 levels, ``options`` per exchange, ``sim_kw`` more `Simulator` arguments; frozen
    and stopped on the way out."""
    s = SimulatorSettings(**({"rate": 200.0, "levels": 15} | settings))
    sim = Simulator(s, feeds, tmp_path / "truth.jsonl", options=options, **(sim_kw or {}))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.freeze()
        await sim.stop()


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``cond()`` holds; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def books_from(events: list[Event]) -> dict[str, OrderBook]:
    """Books rebuilt from published events exactly as a consumer does: snapshot, then deltas."""
    books: dict[str, OrderBook] = {}
    for ev in events:
        if isinstance(ev, BookSnapshot):
            books.setdefault(ev.symbol, OrderBook()).replace(ev.bids, ev.asks)
        elif isinstance(ev, BookDelta):
            books[ev.symbol].apply(ev.bids, ev.asks)
    return books


def states(events: list[Event], kind: type[BookStatus] | type[ConnectionStatus]) -> list[tuple[str, str]]:
    """``(symbol, state)`` of every book status (or connection status) published, in order."""
    return [(e.symbol, e.state) for e in events if isinstance(e, kind)]


def last_seqs(events: list[Event]) -> dict[str, int | None]:
    """Each symbol's last published book message's ``seq``."""
    last: dict[str, int | None] = {}
    for ev in events:
        if isinstance(ev, BookSnapshot | BookDelta):
            last[ev.symbol] = ev.seq
    return last


def books_match(sim: Simulator, exchange: str, symbols: Sequence[str], events: list[Event]) -> bool:
    """Whether the books rebuilt from ``events`` equal the simulator's, level for level."""
    books = books_from(events)
    for symbol in symbols:
        bids, asks = sim.venues[exchange].markets[symbol].book()
        want = ([tuple(x) for x in bids], [tuple(x) for x in asks])
        if symbol not in books or books[symbol].depth() != want:
            return False
    return True


@dataclass
class FeedRun:
    """A `FeedConnection` run against the simulator: what it published (up to the end of the run, not
    what its own stop publishes), what the freeze returned, and the exchange's simulator status."""

    sim: Simulator
    conn: FeedConnection
    events: list[Event] = field(default_factory=list)
    frozen: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)


Step = Callable[[FeedRun], Awaitable[None]]


def run_feed(
    tmp_path: Path,
    exchange: str,
    spec: ExchangeSpec,
    symbols: Sequence[str],
    *,
    started: Step,
    scenario: Step,
    settled: Step,
    simulator: Mapping[str, Any],
    options: Mapping[str, Any],
    ws_path: str = "",
    channels: tuple[Channel, ...] = ("trades", "book"),
    timeout: float = 60.0,
    **feed: Any,
) -> FeedRun:
    """Start the simulator (``simulator``: its settings; ``options``: the exchange's simulator
    options; its truth log in ``tmp_path``) and a feed connection to it; await ``started``, the
    ``scenario``, the freeze, then ``settled``; stop both. ``feed``: more `FeedConnection` arguments."""

    async def go() -> FeedRun:
        sim = Simulator(
            SimulatorSettings(**simulator), {exchange: list(symbols)}, tmp_path / "truth.jsonl",
            ping_interval=600.0, options={exchange: dict(options)},
        )  # fmt: skip
        await sim.start()
        events: list[Event] = []
        conn = FeedConnection(
            spec, symbols, channels, events.append, f"{exchange}-0", ws_url=sim.ws_url(exchange) + ws_path,
            rest_url=sim.rest_url(exchange), **feed,
        )  # fmt: skip
        run = FeedRun(sim, conn, events)
        task = asyncio.create_task(conn.run())
        try:
            await started(run)
            await scenario(run)
            run.frozen = await sim.freeze()
            await settled(run)
            run.status = sim.status()["exchanges"][exchange]
            run.events = events[:]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sim.stop()
        return run

    return asyncio.run(asyncio.wait_for(go(), timeout))


class Reader:
    """Reads a client WebSocket in the background, keeping every message with its arrival time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.msgs: list[tuple[float, aiohttp.WSMessage]] = []
        self.end: aiohttp.WSMessage | None = None
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            msg = await self.ws.receive()
            self.msgs.append((loop.time(), msg))
            if msg.type in ENDS:
                self.end = msg
                return

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        await until(predicate, timeout)

    def texts(self) -> list[str]:
        return [m.data for _, m in self.msgs if m.type is WSMsgType.TEXT]

    def json(self) -> list[dict[str, Any]]:
        """Every JSON text message (a bare ``pong`` keepalive is not JSON and is left out)."""
        return [orjson.loads(t) for t in self.texts() if t != "pong"]
