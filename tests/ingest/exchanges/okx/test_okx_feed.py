"""The generic feed connection with the OKX spec against the real OKX simulator on loopback: books and
trades equal the simulator's, a broken chain or a bad checksum resubscribes one symbol, resets are
followed, and the text ping/pong keepalive (timers scaled down) keeps a quiet connection up and
detects a server that stopped answering."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from live import FeedRun, Step, books_from, last_seqs, run_feed, states, until

from ingest.events import BookDelta, BookSnapshot, BookStatus, ConnectionStatus, Trade
from ingest.exchanges import get_spec
from ingest.exchanges.base import Channel, ExchangeSpec
from tools.sim.truth import load_truth

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
SPEC = dataclasses.replace(get_spec("okx"), app_ping_interval=0.5)


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
            await until(lambda: states(run.events, BookStatus).count(("BTC-USDT", "valid")) >= 1)
            await until(lambda: sum(s == "valid" for _, s in states(run.events, BookStatus)) >= len(SYMBOLS))

    async def settled(run: FeedRun) -> None:
        if books:
            await until(lambda: _caught_up(run))

    return run_feed(
        tmp_path, "okx", spec, SYMBOLS, started=started, scenario=scenario, settled=settled,
        simulator={"rate": 200.0, "levels": 20} | settings, options=options or {}, ws_path="/ws/v5/public",
        channels=channels,
    )  # fmt: skip


def _caught_up(run: FeedRun) -> bool:
    """Every book is at its chain's final seqId (the model's update id, unless a reset moved it)."""
    final = run.sim.status()["exchanges"]["okx"]["seq_ids"]
    last = last_seqs(run.events)
    return all(last.get(s) == final[s] for s in SYMBOLS)


def _assert_books_match(run: FeedRun) -> None:
    books = books_from(run.events)
    for symbol in SYMBOLS:
        bids, asks = run.sim.venues["okx"].markets[symbol].book()
        assert books[symbol].depth() == (bids, asks), symbol


def test_books_and_trades_equal_the_simulators_with_checksums_verified(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(1.0)

    run = _run(tmp_path, scenario, options={"checksum": True})
    _assert_books_match(run)
    assert run.status["seq_ids"] == run.frozen["books"]["okx"]  # seqIds are the truth log's update ids
    for sync in run.conn.syncs.values():
        assert sync.stats.checksums_verified > 50 and sync.stats.checksum_failures == 0
        assert sync.stats.gaps == 0 and sync.stats.deltas_dropped == 0
    truth = load_truth(tmp_path / "truth.jsonl")
    for symbol in SYMBOLS:
        expected = [(str(t.trade_id), t.price, t.qty, t.side) for t in truth.trades[("okx", symbol)]]
        got = [(e.trade_id, e.price, e.qty, e.side) for e in run.events if isinstance(e, Trade) and e.symbol == symbol]
        assert len(expected) > 10 and got == expected
    assert states(run.events, ConnectionStatus) == [("*", "connected")]


@pytest.mark.parametrize("fault", ["skip", "chain"])
def test_a_broken_chain_resubscribes_that_symbol_only(tmp_path: Path, fault: str) -> None:
    """``skip``: updates left out (the next one names an unseen predecessor); ``chain``: nothing left
    out, but an update names the wrong predecessor. Either way the chain check must catch it."""

    async def scenario(run: FeedRun) -> None:
        # One broken link (later ones could land after the resync's snapshot and force another).
        run.sim.fault(fault, "okx", symbol="ETH-USDT", count=3 if fault == "skip" else 1)
        await until(lambda: ("ETH-USDT", "gap") in states(run.events, BookStatus))
        await until(lambda: [e.symbol for e in run.events if isinstance(e, BookSnapshot)].count("ETH-USDT") == 2)
        await asyncio.sleep(0.3)

    run = _run(tmp_path, scenario)
    gaps = [e for e in run.events if isinstance(e, BookStatus) and e.state == "gap"]
    assert [g.symbol for g in gaps] == ["ETH-USDT"]
    snapshots = [e.symbol for e in run.events if isinstance(e, BookSnapshot)]
    assert sorted(snapshots) == sorted([*SYMBOLS, "ETH-USDT"])  # one resync, for ETH only
    gap_at = run.events.index(gaps[0])
    after = run.events[gap_at:]
    # The other symbols kept publishing (books and trades) while ETH-USDT resynced.
    assert {"BTC-USDT", "SOL-USDT"} <= {e.symbol for e in after if isinstance(e, BookDelta)}
    assert {"BTC-USDT", "SOL-USDT"} <= {e.symbol for e in after if isinstance(e, Trade)}
    # ETH's trades were never unsubscribed: no trade id is missing across the resync.
    eth = [int(e.trade_id) for e in run.events if isinstance(e, Trade) and e.symbol == "ETH-USDT"]
    assert eth == list(range(eth[0], eth[0] + len(eth)))
    assert states(run.events, ConnectionStatus) == [("*", "connected")]
    assert run.status["subscriptions"] == {f"{c}:{s}": 1 for s in SYMBOLS for c in ("books", "trades")}
    _assert_books_match(run)


def test_a_wrong_checksum_resubscribes_that_symbol_only(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        run.sim.fault("corrupt", "okx", symbol="SOL-USDT", count=1)
        await until(lambda: [e.symbol for e in run.events if isinstance(e, BookSnapshot)].count("SOL-USDT") == 2)
        await asyncio.sleep(0.3)

    run = _run(tmp_path, scenario, options={"checksum": True})
    resyncs = [e for e in run.events if isinstance(e, BookStatus) and e.state == "resyncing"]
    assert [(e.symbol, e.reason) for e in resyncs] == [("SOL-USDT", "checksum mismatch")]
    assert run.conn.syncs["SOL-USDT"].stats.checksum_failures == 1
    assert states(run.events, ConnectionStatus) == [("*", "connected")]
    _assert_books_match(run)


def test_a_checksum_fault_is_caught_even_when_checksums_are_off(tmp_path: Path) -> None:
    """Live OKX sends 0 (not checked); a non-zero checksum is checked whenever one comes."""

    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(0.3)
        run.sim.fault("corrupt", "okx", symbol="BTC-USDT", count=1)
        await until(lambda: ("BTC-USDT", "resyncing") in states(run.events, BookStatus))

    run = _run(tmp_path, scenario)
    assert run.conn.syncs["BTC-USDT"].stats.checksums_verified == 0
    assert run.conn.syncs["ETH-USDT"].stats.checksum_failures == 0
    _assert_books_match(run)


def test_maintenance_resets_are_followed_without_a_resync(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        await until(lambda: all(run.sim.status()["exchanges"]["okx"]["resets"].get(s, 0) >= 2 for s in SYMBOLS))

    run = _run(tmp_path, scenario, options={"reset_interval": 0.3, "checksum": True})
    assert all(state == "valid" for _, state in states(run.events, BookStatus))
    assert sorted(e.symbol for e in run.events if isinstance(e, BookSnapshot)) == sorted(SYMBOLS)
    for sync in run.conn.syncs.values():
        assert sync.stats.gaps == 0 and sync.stats.checksum_failures == 0
    _assert_books_match(run)


def test_text_ping_keeps_a_quiet_connection_alive(tmp_path: Path) -> None:
    """The server drops a connection that neither pings nor gets data for 0.6 s (OKX's 30 s); the
    market is nearly still, so only the client's ``ping`` every 0.2 s of silence keeps it up."""

    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(2.5)

    run = _run(
        tmp_path, scenario, spec=dataclasses.replace(SPEC, app_ping_interval=0.2), options={"idle_timeout": 0.6},
        rate=0.01,
    )  # fmt: skip
    assert states(run.events, ConnectionStatus) == [("*", "connected")]
    assert run.status["idle_drops"] == 0 and run.status["pings"] >= 8


def test_without_pings_the_server_drops_a_quiet_connection(tmp_path: Path) -> None:
    """The control for the test above: no application ping, and the server's 30-second rule bites."""

    async def scenario(run: FeedRun) -> None:
        await until(lambda: ("*", "disconnected") in states(run.events, ConnectionStatus))
        await until(lambda: states(run.events, ConnectionStatus).count(("*", "connected")) == 2)

    silent = dataclasses.replace(SPEC, app_ping=None, liveness_timeout=30.0)
    run = _run(tmp_path, scenario, spec=silent, options={"idle_timeout": 0.6}, rate=0.01)
    assert run.status["idle_drops"] >= 1


def test_a_server_that_stops_answering_is_detected_and_the_books_resync(tmp_path: Path) -> None:
    """A stalled server sends nothing and answers no ping: after 0.2 s of silence the client pings,
    after 0.2 s more it reconnects, resubscribes and gets new snapshots."""

    async def scenario(run: FeedRun) -> None:
        run.sim.fault("stall", "okx", seconds=4.0)
        await until(lambda: ("*", "disconnected") in states(run.events, ConnectionStatus), 3)
        await until(lambda: sum(isinstance(e, BookSnapshot) for e in run.events) == 2 * len(SYMBOLS))
        await asyncio.sleep(0.3)

    run = _run(tmp_path, scenario, spec=dataclasses.replace(SPEC, app_ping_interval=0.2), rate=100.0)
    conns = [e for e in run.events if isinstance(e, ConnectionStatus)]
    assert [e.state for e in conns] == ["connected", "disconnected", "connected"]
    assert "after a ping" in conns[1].reason
    assert set(SYMBOLS) <= {e.symbol for e in run.events if isinstance(e, BookStatus) and e.state == "resyncing"}
    _assert_books_match(run)
