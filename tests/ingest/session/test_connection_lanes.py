"""Several sessions for one feed, against the real simulators on loopback: with ``redundancy = 2``
losing a connection loses nothing and resyncs nothing; an announced close (OKX's notice 64008,
Binance's serverShutdown) is a make-before-break handover with nothing lost or repeated."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

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

Scenario = Callable[[Simulator, FeedConnection], Awaitable[None]]


def _run(
    tmp_path: Path, exchange: str, redundancy: int, scenario: Scenario, session_life: float = 0.0
) -> tuple[list[Event], FeedConnection]:
    symbols = SYMBOLS[exchange]

    async def go() -> tuple[list[Event], FeedConnection]:
        sim = Simulator(SimulatorSettings(rate=100.0, levels=15), {exchange: symbols}, tmp_path / "truth.jsonl")
        await sim.start()
        events: list[Event] = []
        conn = FeedConnection(
            get_spec(exchange), symbols, ("trades", "book"), events.append, "c0",
            ws_url=sim.ws_url(exchange), rest_url=sim.rest_url(exchange), depth=DEPTH.get(exchange, 0),
            redundancy=redundancy, session_life=session_life,
        )  # fmt: skip
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: len(sim.venues[exchange].connections) == redundancy)
            await until(lambda: all(s.ready.is_set() for s in conn.sessions.values()), 15)
            await scenario(sim, conn)
            await asyncio.sleep(0.5)
            await sim.freeze()
            await until(lambda: books_match(sim, exchange, SYMBOLS[exchange], events), 15)
            published = events[:]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sim.stop()
        return published, conn

    return asyncio.run(asyncio.wait_for(go(), 90))


def _assert_nothing_lost_or_repeated(tmp_path: Path, exchange: str, events: list[Event]) -> None:
    statuses = [(e.symbol, e.state) for e in events if isinstance(e, BookStatus)]
    assert sorted(statuses) == sorted((s, "valid") for s in SYMBOLS[exchange])  # no resync, no gap
    truth = load_truth(tmp_path / "truth.jsonl")
    for symbol in SYMBOLS[exchange]:
        published = [int(e.trade_id) for e in events if isinstance(e, Trade) and e.symbol == symbol]
        assert published, symbol
        expected = [t.trade_id for t in truth.trades[(exchange, symbol)]]
        start = expected.index(published[0])
        assert published == expected[start:], symbol  # every trade once, in order, to the end


@pytest.mark.parametrize("exchange", ["binance", "okx", "kraken"])
def test_redundant_sessions_survive_losing_one(tmp_path: Path, exchange: str) -> None:
    async def scenario(sim: Simulator, conn: FeedConnection) -> None:
        await asyncio.sleep(0.5)
        min(sim.venues[exchange].connections, key=lambda c: c.id).abort()
        await until(lambda: len(conn.sessions) == 1)
        await asyncio.sleep(0.5)  # the survivor alone
        await until(lambda: len(conn.sessions) == 2 and all(s.ready.is_set() for s in conn.sessions.values()), 15)
        await asyncio.sleep(0.5)

    events, conn = _run(tmp_path, exchange, 2, scenario)
    _assert_nothing_lost_or_repeated(tmp_path, exchange, events)
    states = [e.state for e in events if isinstance(e, ConnectionStatus)]
    assert states.count("disconnected") == 1 and states.count("connected") == 3
    assert conn.arbiter.stats.duplicates > 0  # both sessions delivered: each event went out once


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_an_announced_close_is_a_handover_with_nothing_lost(tmp_path: Path, exchange: str) -> None:
    async def scenario(sim: Simulator, conn: FeedConnection) -> None:
        await asyncio.sleep(0.3)
        sim.fault("notice", exchange, seconds=3.0)
        await until(lambda: conn.stats.handovers == 1)
        await until(lambda: len(conn.sessions) == 1 and next(iter(conn.sessions.values())).ready.is_set(), 15)
        await asyncio.sleep(0.5)

    events, conn = _run(tmp_path, exchange, 1, scenario)
    _assert_nothing_lost_or_repeated(tmp_path, exchange, events)
    states = [e.state for e in events if isinstance(e, ConnectionStatus)]
    assert states == ["connected", "connected", "disconnected"]  # made before broken
    assert conn.stats.reconnects == 0


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_sessions_are_rotated_at_the_end_of_their_life_with_nothing_lost(tmp_path: Path, exchange: str) -> None:
    """A token or connection that expires (KuCoin's 24 h, Binance's 24 h): the session is replaced,
    make before break, before the exchange ends it; here its life is 2 s."""

    async def scenario(sim: Simulator, conn: FeedConnection) -> None:
        await until(lambda: conn.stats.rotations >= 3, 20)
        await until(lambda: len(conn.sessions) == 1 and next(iter(conn.sessions.values())).ready.is_set(), 15)

    events, conn = _run(tmp_path, exchange, 1, scenario, session_life=2.0)
    _assert_nothing_lost_or_repeated(tmp_path, exchange, events)
    states = [e.state for e in events if isinstance(e, ConnectionStatus)]
    assert states[:4] == ["connected", "connected", "disconnected", "connected"]  # each made before broken
    assert conn.stats.reconnects == 0 and conn.stats.handovers == conn.stats.rotations >= 3


def test_kraken_announces_no_closes(tmp_path: Path) -> None:
    async def go() -> None:
        sim = Simulator(SimulatorSettings(), {"kraken": ["BTC-USD"]}, tmp_path / "truth.jsonl")
        await sim.start()
        try:
            with pytest.raises(ValueError, match="kraken announces no closes"):
                sim.fault("notice", "kraken")
        finally:
            await sim.stop()

    asyncio.run(go())
