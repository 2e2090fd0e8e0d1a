"""A feed connection against the real simulator on loopback: sync, gap resync, drop and stall with
the trades missed meanwhile backfilled from the REST history, or reported when the history lost them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from live import books_from, until

from ingest.events import BookDelta, BookSnapshot, BookStatus, ConnectionStatus, Event, Trade, TradeGap
from ingest.exchanges import get_spec
from ingest.exchanges.base import ExchangeSpec
from ingest.session.connection import FeedConnection
from ingest.settings import SimulatorSettings
from tools.sim.server import Simulator

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
SPEC = dataclasses.replace(get_spec("binance"), ping_interval=0.5, liveness_timeout=1.5)




Scenario = Callable[[Simulator, list[Event]], Awaitable[None]]


LAST: list[FeedConnection] = []  # the connection of the latest _run, for its counters


async def _run(
    tmp_path: Path, scenario: Scenario, spec: ExchangeSpec = SPEC
) -> tuple[list[Event], Simulator, dict[str, Any]]:
    sim = Simulator(SimulatorSettings(rate=200.0, levels=20), {"binance": SYMBOLS}, tmp_path / "truth.jsonl")
    await sim.start()
    events: list[Event] = []
    conn = FeedConnection(
        spec, SYMBOLS, ("trades", "book"), events.append, "t0",
        ws_url=sim.ws_url("binance"), rest_url=sim.rest_url("binance"),
    )  # fmt: skip
    LAST[:] = [conn]
    task = asyncio.create_task(conn.run())
    try:
        await until(lambda: sum(isinstance(e, BookStatus) and e.state == "valid" for e in events) == len(SYMBOLS))
        await scenario(sim, events)
        frozen = await sim.freeze()
        await asyncio.sleep(0.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    return events, sim, frozen


def _assert_books_match(sim: Simulator, events: list[Event]) -> None:
    books = books_from(events)
    for symbol in SYMBOLS:
        bids, asks = sim.venues["binance"].markets[symbol].book()
        assert books[symbol].depth() == ([tuple(x) for x in bids], [tuple(x) for x in asks]), symbol


def test_gap_resyncs_that_symbol_only(tmp_path: Path) -> None:
    async def scenario(sim: Simulator, events: list[Event]) -> None:
        sim.fault("skip", "binance", symbol="ETH-USDT", count=3)
        await until(lambda: any(isinstance(e, BookStatus) and e.state == "gap" for e in events))
        await until(lambda: [e.symbol for e in events if isinstance(e, BookSnapshot)].count("ETH-USDT") == 2)
        await asyncio.sleep(0.3)

    events, sim, _ = asyncio.run(_run(tmp_path, scenario))
    gaps = [e for e in events if isinstance(e, BookStatus) and e.state == "gap"]
    assert [g.symbol for g in gaps] == ["ETH-USDT"]
    assert gaps[0].gap_from is not None and gaps[0].gap_to == gaps[0].gap_from + 2
    snapshots = [e.symbol for e in events if isinstance(e, BookSnapshot)]
    assert sorted(snapshots) == sorted([*SYMBOLS, "ETH-USDT"])  # one resync, for ETH only
    gap_at = events.index(gaps[0])
    # The other symbols kept publishing while ETH-USDT resynced.
    after = {e.symbol for e in events[gap_at:] if isinstance(e, BookDelta)}
    assert {"BTC-USDT", "SOL-USDT"} <= after
    assert not any(isinstance(e, ConnectionStatus) and e.state == "disconnected" for e in events[:-1])
    _assert_books_match(sim, events)


@pytest.mark.parametrize("fault", ["drop", "stall"])
def test_dropped_or_stalled_connection_reconnects_and_resyncs(tmp_path: Path, fault: str) -> None:
    async def scenario(sim: Simulator, events: list[Event]) -> None:
        await until(lambda: {e.symbol for e in events if isinstance(e, Trade)} == set(SYMBOLS))
        sim.fault(fault, "binance", **({"seconds": 4.0} if fault == "stall" else {}))
        await until(lambda: any(isinstance(e, ConnectionStatus) and e.state == "disconnected" for e in events))
        await until(lambda: sum(isinstance(e, BookSnapshot) for e in events) == 2 * len(SYMBOLS), 15)
        await asyncio.sleep(0.3)

    events, sim, _ = asyncio.run(_run(tmp_path, scenario))
    states = [e.state for e in events if isinstance(e, ConnectionStatus)]
    assert states[:3] == ["connected", "disconnected", "connected"]
    resyncing = [e.symbol for e in events if isinstance(e, BookStatus) and e.state == "resyncing"]
    assert set(SYMBOLS) <= set(resyncing)
    # Trades made while disconnected were fetched from the trade history: every id once, in order.
    for symbol in SYMBOLS:
        ids = [int(e.trade_id) for e in events if isinstance(e, Trade) and e.symbol == symbol]
        assert ids == list(range(ids[0], ids[0] + len(ids))), symbol
    backfilled = [e for e in events if isinstance(e, Trade) and e.origin == "backfill"]
    assert len(backfilled) == LAST[0].stats.trades_backfilled > 0
    assert not any(isinstance(e, TradeGap) for e in events)
    _assert_books_match(sim, events)


def test_server_pings_are_answered(tmp_path: Path) -> None:
    """The simulator pings every 0.2 s and drops a client that leaves a ping unanswered for 0.6 s."""

    async def go() -> tuple[list[Event], dict[str, Any]]:
        sim = Simulator(
            SimulatorSettings(rate=5.0, levels=10), {"binance": SYMBOLS[:1]}, tmp_path / "truth.jsonl",
            ping_interval=0.2, pong_timeout=0.6,
        )  # fmt: skip
        await sim.start()
        events: list[Event] = []
        quiet = dataclasses.replace(SPEC, ping_interval=60.0, liveness_timeout=60.0)  # only the server pings
        conn = FeedConnection(
            quiet, SYMBOLS[:1], ("book",), events.append, "p0",
            ws_url=sim.ws_url("binance"), rest_url=sim.rest_url("binance"),
        )  # fmt: skip
        task = asyncio.create_task(conn.run())
        await asyncio.sleep(3.0)
        status = sim.status()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
        return events, status

    events, status = asyncio.run(go())
    states = [e.state for e in events if isinstance(e, ConnectionStatus)]
    assert states == ["connected", "disconnected"]  # the disconnect is our own stop at the end
    assert status["exchanges"]["binance"]["pong_timeouts"] == 0


@pytest.mark.parametrize("history", [True, False])
def test_trades_the_history_lost_are_published_as_a_gap(tmp_path: Path, history: bool) -> None:
    """Trades missed during a disconnection that the exchange's history no longer holds (or where
    the exchange has no history to read) are reported as one `TradeGap` in their place; the rest of
    the hole is backfilled."""

    async def scenario(sim: Simulator, events: list[Event]) -> None:
        await until(lambda: {e.symbol for e in events if isinstance(e, Trade)} == set(SYMBOLS))
        sim.fault("drop", "binance")
        await asyncio.sleep(0.1)
        sim.fault("forget", "binance")
        await until(lambda: any(isinstance(e, TradeGap) for e in events), 15)
        await asyncio.sleep(0.5)

    spec = SPEC if history else dataclasses.replace(SPEC, trade_history=None)
    events, _, _ = asyncio.run(_run(tmp_path, scenario, spec))
    gaps = [e for e in events if isinstance(e, TradeGap)]
    reason = "not in the trade history" if history else "trade history unavailable"
    assert gaps and all(g.reason == reason for g in gaps)
    assert len(gaps) <= len(SYMBOLS)  # one hole per symbol, reported once
    for symbol in {g.symbol for g in gaps}:
        stream = [e for e in events if isinstance(e, Trade | TradeGap) and e.symbol == symbol]
        ids: list[int] = []
        for e in stream:  # trades and gaps together cover every id once, in order
            ids += [int(e.trade_id)] if isinstance(e, Trade) else list(range(e.gap_from, e.gap_to + 1))
        assert ids == list(range(ids[0], ids[0] + len(ids))), symbol
    assert LAST[0].stats.trades_unfilled == sum(g.gap_to - g.gap_from + 1 for g in gaps)
