"""Per-symbol liveness, against the real simulators on loopback: a book that goes silent while its
connection keeps talking (the simulator's *mute* fault: the exchange stops sending it, says nothing)
is found, resubscribed and resynced, and the other books and the trades flow on untouched; a quiet
book that the exchange keeps alive (OKX's empty keep-alive updates) is not a false alarm."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from live import books_match, until

from ingest.events import BookStatus, ConnectionStatus, Event, Trade
from ingest.exchanges import get_spec
from ingest.session.connection import FeedConnection
from ingest.settings import SimulatorSettings
from tools.sim.server import Simulator
from tools.sim.truth import load_truth

SYMBOLS = {"binance": ["BTC-USDT", "ETH-USDT"], "okx": ["BTC-USDT", "ETH-USDT"], "kraken": ["BTC-USD", "ETH-USD"]}
DEPTH = {"kraken": 25}  # deeper than the simulated book, so the whole book is compared


def _feed(sim: Simulator, exchange: str, events: list[Event], symbol_timeout: float) -> FeedConnection:
    return FeedConnection(
        get_spec(exchange), SYMBOLS[exchange], ("trades", "book"), events.append, "c0",
        ws_url=sim.ws_url(exchange), rest_url=sim.rest_url(exchange), depth=DEPTH.get(exchange, 0),
        symbol_timeout=symbol_timeout,
    )  # fmt: skip


@pytest.mark.parametrize("exchange", ["binance", "okx", "kraken"])
def test_a_silent_book_on_a_live_connection_is_resubscribed(tmp_path: Path, exchange: str) -> None:
    muted, other = SYMBOLS[exchange]

    async def go() -> tuple[list[Event], FeedConnection]:
        sim = Simulator(SimulatorSettings(rate=100.0, levels=15), {exchange: SYMBOLS[exchange]}, tmp_path / "t.jsonl")
        await sim.start()
        events: list[Event] = []
        conn = _feed(sim, exchange, events, symbol_timeout=2.0)
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: conn.latest is not None and conn.latest.ready.is_set(), 15)
            await asyncio.sleep(0.3)
            assert sim.fault("mute", exchange, muted)["affected"] == 1
            await until(lambda: conn.stats.books_silent == 1, 10)
            await until(lambda: conn.latest is not None and conn.latest.ready.is_set(), 15)
            await asyncio.sleep(0.5)
            await sim.freeze()
            await until(lambda: books_match(sim, exchange, SYMBOLS[exchange], events), 15)
            return events[:], conn
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sim.stop()

    events, conn = asyncio.run(asyncio.wait_for(go(), 90))
    states = {s: [e.state for e in events if isinstance(e, BookStatus) and e.symbol == s] for s in (muted, other)}
    assert states[muted] == ["valid", "resyncing", "valid"]
    assert states[other] == ["valid"]  # the book that kept talking was never touched
    resync = next(e for e in events if isinstance(e, BookStatus) and e.state == "resyncing")
    assert resync.reason.startswith("book silent for ")
    assert [e.state for e in events if isinstance(e, ConnectionStatus)] == ["connected"]  # no reconnect
    assert conn.stats.reconnects == 0 and conn.stats.books_silent == 1
    truth = load_truth(tmp_path / "t.jsonl")
    for symbol in (muted, other):  # the muted book's trades flowed on: every one, once, in order
        published = [int(e.trade_id) for e in events if isinstance(e, Trade) and e.symbol == symbol]
        expected = [t.trade_id for t in truth.trades[(exchange, symbol)]]
        assert published == expected[expected.index(published[0]) :], symbol


def test_a_quiet_book_kept_alive_is_not_a_false_alarm(tmp_path: Path) -> None:
    """Almost no market activity for 6 s, a 2 s symbol timeout, keep-alives every 0.5 s: no revival."""
    options: dict[str, dict[str, Any]] = {"okx": {"keepalive_interval": 0.5}}

    async def go() -> FeedConnection:
        settings = SimulatorSettings(rate=0.01, levels=15)
        sim = Simulator(settings, {"okx": SYMBOLS["okx"]}, tmp_path / "t.jsonl", options=options)
        await sim.start()
        conn = _feed(sim, "okx", [], symbol_timeout=2.0)
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: conn.latest is not None and conn.latest.ready.is_set(), 15)
            await asyncio.sleep(6.0)
            assert sim.status()["exchanges"]["okx"]["keepalives"] >= 10
            return conn
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sim.stop()

    conn = asyncio.run(asyncio.wait_for(go(), 60))
    assert conn.stats.books_silent == 0 and conn.stats.reconnects == 0


def test_mute_needs_an_exchange_that_can_silence_one_book(tmp_path: Path) -> None:
    async def go() -> None:
        sim = Simulator(SimulatorSettings(), {"okx": ["BTC-USDT"]}, tmp_path / "t.jsonl")
        await sim.start()
        try:
            with pytest.raises(ValueError, match="mute needs a symbol"):
                sim.fault("mute", "okx")
            assert "mute" in sim.status()["exchanges"]["okx"]["connection_faults"]
        finally:
            await sim.stop()

    asyncio.run(go())
