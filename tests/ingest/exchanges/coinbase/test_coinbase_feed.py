"""The generic feed connection with the Coinbase spec against the real Coinbase simulator on loopback:
books and trades equal the simulator's truth; a ``sequence_num`` hole resyncs every book of the
connection by resubscribing ``level2`` (no reconnect, trades untouched), under either scope setting;
heartbeats keep a quiet connection open past the server's idle close; a silent server is detected by
the heartbeats' absence, and the trades missed meanwhile are backfilled from the REST history."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from live import FeedRun, Step, books_from, run_feed, states, until

from ingest.events import BookSnapshot, BookStatus, ConnectionStatus, Trade
from ingest.exchanges.base import ExchangeSpec
from ingest.exchanges.coinbase.codec import CoinbaseCodec
from ingest.exchanges.coinbase.spec import SPEC, spec_for
from tools.sim.truth import load_truth

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]


def _books_match(run: FeedRun) -> bool:
    books = books_from(run.events)
    for symbol in SYMBOLS:
        want = run.sim.venues["coinbase"].markets[symbol].book()
        if symbol not in books or books[symbol].depth() != want:
            return False
    return True


def _run(
    tmp_path: Path, scenario: Step, *, spec: ExchangeSpec = SPEC, options: dict[str, Any] | None = None,
    **settings: Any,
) -> FeedRun:  # fmt: skip
    async def started(run: FeedRun) -> None:
        await until(lambda: run.conn.latest is not None and run.conn.latest.ready.is_set(), 15)

    async def settled(run: FeedRun) -> None:
        await until(lambda: _books_match(run), 15)

    return run_feed(
        tmp_path, "coinbase", spec, SYMBOLS, started=started, scenario=scenario, settled=settled,
        simulator={"rate": 200.0, "levels": 20} | settings,
        options={"heartbeat_interval": 0.1} | (options or {}), timeout=90,
    )  # fmt: skip


def _assert_trades_complete(run: FeedRun, tmp_path: Path) -> None:
    """Every trade of the truth log, once, in order, with its taker side; before them only the first
    ``market_trades`` snapshot's recent trades, which end where the truth begins."""
    truth = load_truth(tmp_path / "truth.jsonl")
    for symbol in SYMBOLS:
        expected = [(str(t.trade_id), t.price, t.qty, t.side) for t in truth.trades[("coinbase", symbol)]]
        got = [(e.trade_id, e.price, e.qty, e.side) for e in run.events if isinstance(e, Trade) and e.symbol == symbol]
        first = int(expected[0][0])
        before = [int(t[0]) for t in got if int(t[0]) < first]
        assert before == list(range(first - len(before), first)), symbol
        assert len(expected) > 10 and got[len(before) :] == expected, symbol


def _codec(run: FeedRun) -> CoinbaseCodec:
    assert run.conn.latest is not None and isinstance(run.conn.latest.codec, CoinbaseCodec)
    return run.conn.latest.codec


def test_books_and_trades_equal_the_simulators(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(1.5)

    run = _run(tmp_path, scenario)
    _assert_trades_complete(run, tmp_path)
    assert states(run.events, ConnectionStatus) == [("*", "connected")]
    assert sorted(states(run.events, BookStatus)) == sorted((s, "valid") for s in SYMBOLS)
    assert sorted(e.symbol for e in run.events if isinstance(e, BookSnapshot)) == sorted(SYMBOLS)
    codec = _codec(run)
    assert (codec.stats.holes, codec.stats.duplicates, codec.stats.heartbeat_gaps) == (0, 0, 0)
    assert run.conn.stats.decode_errors == 0 and run.status["heartbeats"] > 10


def test_a_sequence_hole_resyncs_every_book_of_the_connection(tmp_path: Path) -> None:
    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(0.3)
        run.sim.fault("skip", "coinbase", symbol="ETH-USD", count=2)
        snapshots = lambda: [e.symbol for e in run.events if isinstance(e, BookSnapshot)]  # noqa: E731
        await until(lambda: len(snapshots()) >= 2 * len(SYMBOLS), 10)
        await until(lambda: run.conn.latest is not None and run.conn.latest.ready.is_set())
        await asyncio.sleep(0.5)

    run = _run(tmp_path, scenario)
    resyncs = [e for e in run.events if isinstance(e, BookStatus) and e.state == "resyncing"]
    # ETH's changes were lost, but the hole is in the connection's counter: every book is suspect.
    assert sorted(e.symbol for e in resyncs) == sorted(SYMBOLS)
    assert all(e.reason.startswith("sequence_num ") and e.reason.endswith("missing on the connection") for e in resyncs)
    assert run.conn.stats.resyncs_requested == len(SYMBOLS)
    assert sorted(e.symbol for e in run.events if isinstance(e, BookSnapshot)) == sorted(SYMBOLS * 2)
    assert states(run.events, ConnectionStatus) == [("*", "connected")]  # resubscribed, not reconnected
    assert run.status["subscriptions"] == {f"{c}:{s}": 1 for s in SYMBOLS for c in ("level2", "market_trades")}
    assert _codec(run).stats.holes >= 1
    _assert_trades_complete(run, tmp_path)  # market_trades was never touched


def test_per_channel_scope_against_a_server_counting_per_channel(tmp_path: Path) -> None:
    """The other reading of ``sequence_num``, end to end: clean when both agree, and a level2 hole
    still resyncs the books."""

    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(0.5)
        assert _codec(run).stats.holes == 0 and not states(run.events, BookStatus).count(("BTC-USD", "resyncing"))
        run.sim.fault("skip", "coinbase", symbol="BTC-USD", count=1)
        await until(lambda: ("BTC-USD", "resyncing") in states(run.events, BookStatus), 10)
        await until(lambda: run.conn.latest is not None and run.conn.latest.ready.is_set())
        await asyncio.sleep(0.3)

    run = _run(tmp_path, scenario, spec=spec_for("channel"), options={"sequence_scope": "channel"})
    resyncs = [e for e in run.events if isinstance(e, BookStatus) and e.state == "resyncing"]
    assert sorted(e.symbol for e in resyncs) == sorted(SYMBOLS)
    assert all(e.reason.endswith("missing in l2_data") for e in resyncs)
    assert _codec(run).scope == "channel"
    _assert_trades_complete(run, tmp_path)


def test_heartbeats_keep_a_quiet_connection_open(tmp_path: Path) -> None:
    """A still market and a server that closes idle connections after 0.5 s: only the heartbeats
    subscription keeps the session up (one connection all along)."""

    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(2.5)

    run = _run(tmp_path, scenario, options={"idle_close": 0.5}, rate=0.01)
    assert states(run.events, ConnectionStatus) == [("*", "connected")]
    assert run.status["idle_closes"] == 0 and run.status["accepted"] == 1
    assert run.conn.stats.reconnects == 0 and _codec(run).stats.heartbeat_gaps == 0


def test_a_silent_server_is_dead_and_missed_trades_are_backfilled(tmp_path: Path) -> None:
    """Heartbeats every 0.1 s, liveness 0.6 s: a 2 s stall ends the session; the new one gets a
    market_trades snapshot of only 5 trades, so the rest of the hole comes from the REST history."""
    spec = dataclasses.replace(SPEC, liveness_timeout=0.6)

    async def scenario(run: FeedRun) -> None:
        await asyncio.sleep(0.5)
        run.sim.fault("stall", "coinbase", seconds=2.0)
        await until(lambda: run.conn.stats.reconnects == 1, 10)
        await until(lambda: run.conn.latest is not None and run.conn.latest.ready.is_set(), 15)
        await until(lambda: run.conn.stats.trades_backfilled > 0, 15)
        await asyncio.sleep(0.5)

    run = _run(tmp_path, scenario, spec=spec, options={"snapshot_trades": 5})
    assert states(run.events, ConnectionStatus) == [("*", "connected"), ("*", "disconnected"), ("*", "connected")]
    assert run.conn.stats.trades_unfilled == 0
    _assert_trades_complete(run, tmp_path)
    backfilled = [e for e in run.events if isinstance(e, Trade) and e.origin == "backfill"]
    assert {e.symbol for e in backfilled} == set(SYMBOLS)
