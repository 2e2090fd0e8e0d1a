"""Log lines carry their context: a feed connection's lines (against the real simulator on loopback,
with a real gap) name the shard, exchange, connection and session, and the symbol where they are about
one; the standard `logging` lines of libraries come out as the same JSON with the same context."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from live import until

from ingest import logs
from ingest.events import BookSnapshot, BookStatus, Event
from ingest.exchanges import get_spec
from ingest.session.connection import FeedConnection
from ingest.settings import SimulatorSettings
from tools.sim.server import Simulator

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """JSON logs of "shard 3" on a stderr of our own; the library's defaults are restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    logs.configure("info", "json", shard=3)

    def lines() -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in stderr.getvalue().splitlines()]

    try:
        yield lines
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers, root.level = handlers, level


def test_a_connections_lines_carry_shard_exchange_connection_session_and_symbol(tmp_path: Path, json_logs: Any) -> None:
    async def go() -> None:
        sim = Simulator(SimulatorSettings(rate=200.0, levels=20), {"binance": SYMBOLS}, tmp_path / "truth.jsonl")
        await sim.start()
        events: list[Event] = []
        conn = FeedConnection(
            get_spec("binance"), SYMBOLS, ("trades", "book"), events.append, "binance-s3-c0",
            ws_url=sim.ws_url("binance"), rest_url=sim.rest_url("binance"),
        )  # fmt: skip
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: sum(isinstance(e, BookStatus) and e.state == "valid" for e in events) == 2)
            sim.fault("skip", "binance", symbol="ETH-USDT", count=3)
            await until(lambda: [e.symbol for e in events if isinstance(e, BookSnapshot)].count("ETH-USDT") == 2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sim.stop()

    asyncio.run(go())
    lines = json_logs()
    context = {"shard": 3, "exchange": "binance", "connection": "binance-s3-c0", "session": "binance-s3-c0#0"}
    connected = [line for line in lines if line["event"] == "connected"]
    assert len(connected) == 1 and connected[0].items() >= context.items()
    gaps = [line for line in lines if line["event"] == "book gap: resyncing"]
    assert len(gaps) == 1
    assert gaps[0].items() >= {**context, "symbol": "ETH-USDT", "level": "warning"}.items()
    assert gaps[0]["gap_to"] == gaps[0]["gap_from"] + 2
    # Nothing of the connection's context leaks out of its task.
    assert structlog.contextvars.get_contextvars() == {"shard": 3}


def test_standard_logging_lines_are_json_with_the_context(json_logs: Any) -> None:
    async def in_a_connection() -> None:
        with structlog.contextvars.bound_contextvars(exchange="okx", connection="okx-s3-c0"):
            logging.getLogger("aiohttp.client").warning("unclosed %s", "session")

    asyncio.run(in_a_connection())
    logging.getLogger("aiohttp.client").debug("below the level: not written")
    [line] = json_logs()
    assert line.items() >= {
        "event": "unclosed session", "logger": "aiohttp.client", "level": "warning",
        "shard": 3, "exchange": "okx", "connection": "okx-s3-c0",
    }.items()  # fmt: skip
