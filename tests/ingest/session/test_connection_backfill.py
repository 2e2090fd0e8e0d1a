"""Trades missed while disconnected are backfilled from Kraken's and OKX's REST trade histories: a
feed connection against the real simulator on loopback loses its connection after every symbol had
trades, and afterwards what it published is checked against the simulator's ground truth.

- The simulators' history endpoints themselves: paging, the names they accept, their error bodies.
- A drop: every trade the simulator made from the first one published on is published exactly once,
  in id order, with the exchange's own price, quantity and side, and at least one of them came from
  the history (``origin == "backfill"``). No `TradeGap`.
- A stall long enough for the client to presume the connection dead, with the history emptied (the
  *forget* fault) partway through: the trades the history
  lost are a `TradeGap` in their place, so trades and gaps together still cover every id once, in
  order. Kraken's ids are consecutive, so the runner knows the exact ids the history did not give
  ("not in the trade history"), and trades and gaps cover every id once, in order. OKX's ids skip
  in general, so an absence from a history read to the end would not be a loss; but an emptied
  history ends before the trade the range starts after, so it was not read to the end, and the
  runner publishes the whole range between the last trade before the drop and the first after it as
  the gap ("trade history unavailable"), then the trades the history still had (those made after
  the forget): the test asserts that published trades are once each in id order and that every
  trade the simulator made is published or inside a gap.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from live import until

from ingest.events import BookStatus, ConnectionStatus, Event, Trade, TradeGap
from ingest.exchanges import get_spec
from ingest.exchanges.base import ExchangeSpec
from ingest.session.connection import FeedConnection
from ingest.settings import SimulatorSettings
from tools.sim.server import Simulator
from tools.sim.truth import GroundTruth, load_truth

SYMBOLS = {"kraken": ["BTC-USD", "ETH-USD"], "okx": ["BTC-USDT", "ETH-USDT"]}
# A silent connection is presumed dead after about 2 s (Kraken: no heartbeat; OKX: no pong to a text
# ping sent after 1 s of silence), so a stall of the server is a disconnection of known length.
SPECS: dict[str, ExchangeSpec] = {
    "kraken": dataclasses.replace(get_spec("kraken"), liveness_timeout=2.0),
    "okx": dataclasses.replace(get_spec("okx"), app_ping_interval=1.0),
}
FORGET_AFTER_S = 0.8  # into the stall: well before the client gives up on the connection
# The precision of the WebSocket timestamps (Kraken microseconds, OKX milliseconds), which the history's
# times match.
TIME_UNIT_NS = {"kraken": 1_000, "okx": 1_000_000}
EXPECTED_GAP_REASON = {"kraken": "not in the trade history", "okx": "trade history unavailable"}


@dataclasses.dataclass
class Run:
    events: list[Event]
    truth: GroundTruth
    conn: FeedConnection


def _run(tmp_path: Path, exchange: str, forget: bool) -> Run:
    """Connect, wait for trades of every symbol, lose the connection, wait until every symbol has
    live trades again after its backfill, freeze the simulator. Without ``forget`` the connection is
    dropped (TCP closed); with it the server stalls (the client presumes the connection dead and
    reconnects) and the history is emptied partway through the stall, so the trades made before that
    are lost to it and the ones made after are not."""
    symbols = SYMBOLS[exchange]

    async def go() -> Run:
        sim = Simulator(
            SimulatorSettings(rate=100.0, levels=20), {exchange: symbols}, tmp_path / "truth.jsonl",
            ping_interval=600.0,
        )  # fmt: skip
        await sim.start()
        events: list[Event] = []
        conn = FeedConnection(
            SPECS[exchange], symbols, ("trades", "book"), events.append, "b0",
            ws_url=sim.ws_url(exchange), rest_url=sim.rest_url(exchange),
        )  # fmt: skip
        task = asyncio.create_task(conn.run())

        def connects() -> int:
            return sum(isinstance(e, ConnectionStatus) and e.state == "connected" for e in events)

        try:
            await until(
                lambda: sum(isinstance(e, BookStatus) and e.state == "valid" for e in events) >= len(symbols), 20
            )
            await until(lambda: {e.symbol for e in events if isinstance(e, Trade)} == set(symbols), 20)
            if forget:
                sim.fault("stall", exchange, seconds=10.0)
                await asyncio.sleep(FORGET_AFTER_S)
                assert connects() == 1  # still connected as far as the client knows
                sim.fault("forget", exchange)
            else:
                sim.fault("drop", exchange)
            await until(lambda: connects() >= 2, 20)
            reconnected = len(events)

            def settled() -> bool:
                # Every symbol has live trades published after the reconnection: its backfill is over
                # (they wait for it).
                return all(
                    any(isinstance(e, Trade) and e.symbol == s and e.origin == "live" for e in events[reconnected:])
                    for s in symbols
                )

            await until(settled, 30)
            await sim.freeze()
            await asyncio.sleep(0.5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sim.stop()
        return Run(events, load_truth(tmp_path / "truth.jsonl"), conn)

    return asyncio.run(go())


def _stream(events: list[Event], symbol: str) -> list[Trade | TradeGap]:
    return [e for e in events if isinstance(e, Trade | TradeGap) and e.symbol == symbol]


@pytest.mark.parametrize("exchange", ["kraken", "okx"])
def test_trades_missed_while_disconnected_are_backfilled(tmp_path: Path, exchange: str) -> None:
    run = _run(tmp_path, exchange, forget=False)
    unit = TIME_UNIT_NS[exchange]
    assert not any(isinstance(e, TradeGap) for e in run.events)
    backfilled = 0
    for symbol in SYMBOLS[exchange]:
        published = [e for e in _stream(run.events, symbol) if isinstance(e, Trade)]
        truth = {t.trade_id: t for t in run.truth.trades[(exchange, symbol)]}
        first, last = int(published[0].trade_id), int(published[-1].trade_id)
        # Every trade the simulator made from the first published on, once, in id order.
        assert [int(t.trade_id) for t in published] == [i for i in sorted(truth) if first <= i <= last], symbol
        for t in published:
            made = truth[int(t.trade_id)]
            assert (t.exchange, t.price, t.qty, t.side) == (exchange, made.price, made.qty, made.side)
            assert t.ts_exchange == made.ts // unit * unit
        backfilled += sum(t.origin == "backfill" for t in published)
    assert backfilled == run.conn.stats.trades_backfilled > 0
    assert run.conn.stats.trades_unfilled == 0


@pytest.mark.parametrize("exchange", ["kraken", "okx"])
def test_trades_the_history_lost_are_a_gap(tmp_path: Path, exchange: str) -> None:
    run = _run(tmp_path, exchange, forget=True)
    gaps = [e for e in run.events if isinstance(e, TradeGap)]
    assert {g.symbol for g in gaps} == set(SYMBOLS[exchange])  # every symbol missed trades, then forgot them
    assert all(g.reason == EXPECTED_GAP_REASON[exchange] and g.exchange == exchange for g in gaps)
    assert run.conn.stats.trades_unfilled == sum(g.gap_to - g.gap_from + 1 for g in gaps)
    assert run.conn.stats.trades_backfilled > 0  # those made after the forget were still in the history
    for symbol in SYMBOLS[exchange]:
        stream = _stream(run.events, symbol)
        published = [int(e.trade_id) for e in stream if isinstance(e, Trade)]
        assert published == sorted(set(published)), symbol  # once each, in id order
        covered = set(published)
        for g in (e for e in stream if isinstance(e, TradeGap)):
            missing = set(range(g.gap_from, g.gap_to + 1))
            if exchange == "kraken":  # consecutive ids: exactly the ones nobody published
                assert not covered & missing, symbol
            covered |= missing
        # Every trade the simulator made from the first published on is published or in a gap.
        made = [t.trade_id for t in run.truth.trades[(exchange, symbol)] if published[0] <= t.trade_id <= published[-1]]
        assert set(made) <= covered, symbol
        if exchange == "kraken":  # trades and gaps, in stream order, cover every id once
            ids: list[int] = []
            for e in stream:
                ids += [int(e.trade_id)] if isinstance(e, Trade) else list(range(e.gap_from, e.gap_to + 1))
            assert ids == made, symbol


def test_the_simulated_history_endpoints(tmp_path: Path) -> None:
    async def go() -> dict[str, Any]:
        sim = Simulator(
            SimulatorSettings(rate=200.0, levels=10), {"kraken": ["BTC-USD"], "okx": ["BTC-USDT"]},
            tmp_path / "truth.jsonl",
        )  # fmt: skip
        await sim.start()
        await asyncio.sleep(0.5)
        await sim.freeze()  # the history stops growing
        out: dict[str, Any] = {"kraken": list(sim.venues["kraken"].trades["BTC-USD"])}
        out["okx"] = list(sim.venues["okx"].trades["BTC-USDT"])
        kraken, okx = (
            sim.rest_url("kraken") + "/0/public/Trades?",
            sim.rest_url("okx") + "/api/v5/market/history-trades?",
        )
        mid_ts = out["kraken"][5][1]
        mid_id = out["okx"][10][0].trade_id
        queries = {
            "k_all": kraken + "pair=XBTUSD",
            "k_v2": kraken + "pair=BTC/USD&count=2",
            "k_since": kraken + f"pair=BTCUSD&since={mid_ts}&count=3",
            "k_unknown": kraken + "pair=XBTEUR",
            "k_bad": kraken + "pair=XBTUSD&since=yesterday",
            "o_newest": okx + "instId=BTC-USDT&limit=2",
            "o_after": okx + f"instId=BTC-USDT&type=1&after={mid_id}&limit=3",
            "o_unknown": okx + "instId=BTC-USD",
            "o_bad": okx + "instId=BTC-USDT&limit=many",
        }
        async with aiohttp.ClientSession() as http:
            for name, url in queries.items():
                async with http.get(url) as resp:
                    out[name] = (resp.status, orjson.loads(await resp.read()))
        await sim.stop()
        return out

    got = asyncio.run(go())
    k, o = got["kraken"], got["okx"]
    assert got["k_all"][0] == 200 and [r[6] for r in got["k_all"][1]["result"]["XBTUSD"]] == [t.trade_id for t, _ in k]
    assert [r[6] for r in got["k_v2"][1]["result"]["XBTUSD"]] == [t.trade_id for t, _ in k[-2:]]
    since = got["k_since"][1]["result"]
    assert [r[6] for r in since["XBTUSD"]] == [t.trade_id for t, ts in k if ts > k[5][1]][:3]  # since is exclusive
    first_t, first_ts = next((t, ts) for t, ts in k if ts > k[5][1])
    row = since["XBTUSD"][0]
    assert row[:2] + row[3:] == [first_t.price, first_t.qty, first_t.side[0], "m", "", first_t.trade_id]
    assert f"{row[2]:.6f}" == f"{first_ts // 10**9}.{first_ts % 10**9 // 1000:06d}"  # seconds, to the microsecond
    assert int(since["last"]) == [ts for _, ts in k if ts > k[5][1]][2]
    assert got["k_unknown"] == (200, {"error": ["EQuery:Unknown asset pair"]})
    assert got["k_bad"] == (200, {"error": ["EGeneral:Invalid arguments"]})
    assert [r["tradeId"] for r in got["o_newest"][1]["data"]] == [str(t.trade_id) for t, _ in reversed(o[-2:])]
    assert [r["tradeId"] for r in got["o_after"][1]["data"]] == [str(t.trade_id) for t, _ in reversed(o[7:10])]
    assert got["o_unknown"] == (200, {"code": "51001", "msg": "Instrument ID doesn't exist.", "data": []})
    assert got["o_bad"] == (200, {"code": "51000", "msg": "Parameter limit error", "data": []})
