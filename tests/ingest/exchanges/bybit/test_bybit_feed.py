"""The generic feed connection with the Bybit spec against the real Bybit simulator on loopback: books
and trades equal the simulator's; a break in ``u`` resubscribes that symbol only; a restart of the
book service (``u = 1``) is taken as the new book without a resync; depth truncation covers a server
that sends no deletes for levels leaving the depth; the periodic ping keeps a quiet connection up; and
trades missed while disconnected are backfilled from REST recent trades (or reported)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from live import FeedRun, Step, books_from, last_seqs, run_feed, states, until

from ingest.events import BookDelta, BookSnapshot, BookStatus, ConnectionStatus, Trade, TradeGap
from ingest.exchanges import get_spec
from ingest.exchanges.base import Channel, ExchangeSpec
from tools.sim.truth import load_truth

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
DEPTH = 50
SPEC = dataclasses.replace(get_spec("bybit"), app_ping_interval=0.5)


def _run(
    tmp_path: Path,
    scenario: Step,
    *,
    spec: ExchangeSpec = SPEC,
    options: dict[str, Any] | None = None,
    channels: tuple[Channel, ...] = ("trades", "book"),
    **settings: Any,
) -> FeedRun:
    books = "book" in channels

    async def started(run: FeedRun) -> None:
        if books:
            await until(lambda: sum(s == "valid" for _, s in states(run.events, BookStatus)) >= len(SYMBOLS))
        else:
            await until(lambda: any(isinstance(e, Trade) for e in run.events))

    async def settled(run: FeedRun) -> None:
        if books:
            await until(lambda: _caught_up(run))
        else:
            await asyncio.sleep(0.5)

    return run_feed(
        tmp_path, "bybit", spec, SYMBOLS, started=started, scenario=scenario, settled=settled,
        simulator={"rate": 200.0, "levels": 120} | settings, options=options or {}, ws_path="/v5/public/spot",
        channels=channels,
    )  # fmt: skip


def _caught_up(run: FeedRun) -> bool:
    """Every book's last published message is at its topic's final ``u``."""
    final = run.sim.status()["exchanges"]["bybit"]["update_ids"]
    last = last_seqs(run.events)
    return all(last.get(s) == final[f"orderbook.{DEPTH}.{s.replace('-', '')}"] for s in SYMBOLS)


def _assert_books_match(run: FeedRun) -> None:
    books = books_from(run.events)
    for symbol in SYMBOLS:
        bids, asks = run.sim.venues["bybit"].markets[symbol].book(DEPTH)
        assert books[symbol].depth() == (bids, asks), symbol
        assert len(bids) == DEPTH  # the market is deeper than the topic: the window matters


def _assert_trades_match(run: FeedRun, tmp_path: Path, origins: set[str] | None = None) -> list[Trade]:
    truth = load_truth(tmp_path / "truth.jsonl")
    out: list[Trade] = []
    for symbol in SYMBOLS:
        expected = [(str(t.trade_id), t.price, t.qty, t.side) for t in truth.trades[("bybit", symbol)]]
        trades = [e for e in run.events if isinstance(e, Trade) and e.symbol == symbol]
        got = [(e.trade_id, e.price, e.qty, e.side) for e in trades]
        assert len(expected) > 10 and got == expected, symbol
        out.extend(trades)
    return out


def test_books_and_trades_equal_the_simulators(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(1.0)

    run = _run(tmp_path, scenario)
    _assert_books_match(run)
    _assert_trades_match(run, tmp_path)
    for sync in run.conn.syncs.values():
        assert sync.stats.gaps == 0 and sync.stats.deltas_applied > 20 and sync.depth == DEPTH
    assert states(run.events, ConnectionStatus) == [("*", "connected")]
    assert run.status["subscriptions"] == {
        t: 1 for s in SYMBOLS for t in (f"orderbook.{DEPTH}.{s.replace('-', '')}", f"publicTrade.{s.replace('-', '')}")
    }


def test_a_break_in_u_resubscribes_that_symbol_only(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        run.sim.fault("skip", "bybit", symbol="ETH-USDT", count=2)
        await until(lambda: ("ETH-USDT", "gap") in states(run.events, BookStatus))
        await until(lambda: [e.symbol for e in run.events if isinstance(e, BookSnapshot)].count("ETH-USDT") == 2)
        await asyncio.sleep(0.3)

    run = _run(tmp_path, scenario)
    gaps = [e for e in run.events if isinstance(e, BookStatus) and e.state == "gap"]
    assert [g.symbol for g in gaps] == ["ETH-USDT"]
    assert gaps[0].gap_to is not None and gaps[0].gap_from is not None and gaps[0].gap_to >= gaps[0].gap_from
    snapshots = [e.symbol for e in run.events if isinstance(e, BookSnapshot)]
    assert sorted(snapshots) == sorted([*SYMBOLS, "ETH-USDT"])  # one resync, for ETH only
    after = run.events[run.events.index(gaps[0]) :]
    assert {"BTC-USDT", "SOL-USDT"} <= {e.symbol for e in after if isinstance(e, BookDelta)}
    assert states(run.events, ConnectionStatus) == [("*", "connected")]
    _assert_trades_match(run, tmp_path)  # the trade topic was never touched
    _assert_books_match(run)


def test_a_restart_of_the_book_service_is_followed_without_a_resync(tmp_path: Path) -> None:
    """``u = 1``: the book is overwritten by the restart's and ``u`` follows on from 1; nothing is
    reported broken, nothing resubscribed."""

    async def scenario(run: FeedRun) -> None:
        run.sim.fault("restart", "bybit", count=1)  # every symbol
        await until(lambda: all(run.sim.status()["exchanges"]["bybit"]["restarts"].get(s) == 1 for s in SYMBOLS))
        await asyncio.sleep(0.5)

    run = _run(tmp_path, scenario)
    assert all(state == "valid" for _, state in states(run.events, BookStatus))
    for sync in run.conn.syncs.values():
        assert (sync.stats.gaps, sync.stats.snapshots) == (0, 2)  # (its resync is our stop's)
        assert sync.last_seq is not None and sync.last_seq < 1000  # counting on from 1
    assert run.status["subscriptions"] == {
        t: 1 for s in SYMBOLS for t in (f"orderbook.{DEPTH}.{s.replace('-', '')}", f"publicTrade.{s.replace('-', '')}")
    }
    _assert_books_match(run)


def test_truncation_covers_a_server_that_sends_no_deletes_for_levels_leaving_the_depth(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(1.0)

    run = _run(tmp_path, scenario, options={"delete_outside": False})
    _assert_books_match(run)
    published = [e for e in run.events if isinstance(e, BookDelta)]
    # Some deletes were the client's own (levels pushed out of the window), published all the same.
    assert any(q == "0" for d in published for _, q in d.bids + d.asks)


def test_the_periodic_ping_keeps_a_quiet_connection_up(tmp_path: Path) -> None:
    """The server cuts a connection without pings or data for 0.6 s (Bybit's 10 minutes); the market
    is nearly still, so only the client's ping every 0.2 s keeps it up."""

    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(2.5)

    run = _run(
        tmp_path, scenario, spec=dataclasses.replace(SPEC, app_ping_interval=0.2, liveness_timeout=1.0),
        options={"idle_timeout": 0.6}, rate=0.05, channels=("book",),
    )  # fmt: skip
    assert states(run.events, ConnectionStatus) == [("*", "connected")]
    assert run.status["idle_drops"] == 0 and run.status["pings"] >= 8


def test_a_stalled_server_is_detected_and_the_books_resync(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        # Trades published before the stall anchor the backfill of those it holds back.
        await until(lambda: {e.symbol for e in run.events if isinstance(e, Trade)} == set(SYMBOLS))
        run.sim.fault("stall", "bybit", seconds=3.0)
        await until(lambda: ("*", "disconnected") in states(run.events, ConnectionStatus), 5)
        await until(lambda: sum(isinstance(e, BookSnapshot) for e in run.events) == 2 * len(SYMBOLS), 10)
        await asyncio.sleep(0.3)

    # A rate at which the recent-trade page (60 trades) still reaches back over the ~1.5 s outage.
    spec = dataclasses.replace(SPEC, app_ping_interval=0.2, liveness_timeout=0.8)
    run = _run(tmp_path, scenario, spec=spec, rate=60.0)
    assert [s for _, s in states(run.events, ConnectionStatus)] == ["connected", "disconnected", "connected"]
    _assert_books_match(run)
    trades = _assert_trades_match(run, tmp_path)  # what the stall held back was backfilled
    assert any(t.origin == "backfill" for t in trades) and not any(isinstance(e, TradeGap) for e in run.events)


@pytest.mark.parametrize("forget", [False, True])
def test_trades_missed_while_disconnected_are_backfilled_or_reported(tmp_path: Path, forget: bool) -> None:
    """A dropped connection misses the trades until it is back; the recent-trade page gives them
    (``origin = "backfill"``). With the history emptied (*forget*), the range is a `TradeGap`."""

    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(0.3)
        if forget:
            run.sim.fault("forget", "bybit")
        run.sim.fault("drop", "bybit")
        await until(lambda: states(run.events, ConnectionStatus).count(("*", "connected")) == 2)
        await asyncio.sleep(1.0)

    run = _run(tmp_path, scenario, channels=("trades",), rate=60.0)
    if forget:
        gaps = [e for e in run.events if isinstance(e, TradeGap)]
        assert gaps and all(g.reason == "trade history unavailable" for g in gaps)
        return
    trades = _assert_trades_match(run, tmp_path)
    assert any(t.origin == "backfill" for t in trades)
    assert not any(isinstance(e, TradeGap) for e in run.events)
