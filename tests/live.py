"""Helpers for tests that run against live sockets (the simulator, a feed connection)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType

from ingest.book.book import OrderBook
from ingest.events import BookDelta, BookSnapshot, Event

ENDS = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


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
