"""A pre-built market sent by the real simulator over loopback: what a client receives, the truth log
and the REST book agree, paced and as fast as the client reads."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import aiohttp
import live
import orjson
import pytest

from ingest.settings import SimulatorSettings
from tools.sim.prebuilt import ReplaySpec
from tools.sim.server import Simulator
from tools.sim.truth import load_truth

FEEDS = {"binance": ["BTC-USDT", "ETH-USDT"]}
STREAMS = "btcusdt@depth@100ms/btcusdt@trade/ethusdt@depth@100ms/ethusdt@trade"


def _simulator(tmp_path: Path, spec: ReplaySpec) -> Simulator:
    settings = SimulatorSettings(rate=200.0, levels=15)
    return Simulator(settings, FEEDS, tmp_path / "truth.jsonl", replay=spec)


async def _receive_all(sim: Simulator, frames: int) -> list[dict[str, Any]]:
    """Subscribe every stream and read until ``frames`` frames came."""
    got: list[dict[str, Any]] = []
    url = f"{sim.ws_url('binance')}/stream?streams={STREAMS}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        while len(got) < frames:
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type is aiohttp.WSMsgType.TEXT  # text frames, as Binance's
            got.append(orjson.loads(msg.data))
    return got


@pytest.mark.parametrize("msgs_per_s", [4000.0, 0.0])
def test_a_client_gets_every_frame_stamped_and_the_truth_is_what_was_sent(tmp_path: Path, msgs_per_s: float) -> None:
    async def main() -> None:
        sim = _simulator(tmp_path, ReplaySpec(messages=1500, msgs_per_s=msgs_per_s))
        await sim.start()
        try:
            got = await _receive_all(sim, len(sim._players[0].store.payloads))
            status = sim.status()["replay"]["binance"]
            assert status["done"] is True and status["sent"] == status["frames"] == len(got)
            async with aiohttp.ClientSession() as http:
                rest = await (await http.get(f"{sim.rest_url('binance')}/api/v3/depth?symbol=ETHUSDT&limit=50")).json()
        finally:
            await sim.freeze()
            await sim.stop()
        truth = load_truth(tmp_path / "truth.jsonl")
        for symbol in FEEDS["binance"]:
            low = symbol.replace("-", "").lower()
            depth = [g["data"] for g in got if g["stream"] == f"{low}@depth@100ms"]
            trades = [g["data"] for g in got if g["stream"] == f"{low}@trade"]
            ids = [(d["U"], d["u"]) for d in depth]
            assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ids))  # no gap
            sent = [(t["t"], t["p"], t["q"], "sell" if t["m"] else "buy", t["T"]) for t in trades]
            want = [(x.trade_id, x.price, x.qty, x.side, x.ts // 1_000_000) for x in truth.trades[("binance", symbol)]]
            assert sent == want and len(sent) > 50  # the truth: exactly the trades sent, at their send time
            assert all(9_999_999_999_999 > d["E"] > 1_600_000_000_000 for d in depth)
            assert truth.books[("binance", symbol)].update_id == ids[-1][1]
        eth = truth.books[("binance", "ETH-USDT")]
        assert rest["lastUpdateId"] == eth.update_id
        assert [tuple(x) for x in rest["bids"]] == list(eth.bids) and [tuple(x) for x in rest["asks"]] == list(eth.asks)

    live.run(main)


def test_an_unpaced_market_starts_slowly_until_every_subscribed_book_was_fetched(tmp_path: Path) -> None:
    async def main() -> None:
        sim = _simulator(tmp_path, ReplaySpec(messages=3000, msgs_per_s=0.0))
        await sim.start()
        rest = sim.rest_url("binance")
        try:
            url = f"{sim.ws_url('binance')}/stream?streams={STREAMS}"
            async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:

                async def read(n: int) -> None:
                    for _ in range(n):
                        assert (await asyncio.wait_for(ws.receive(), 10)).type is aiohttp.WSMsgType.TEXT

                await read(10)
                assert sim.status()["replay"]["binance"]["books_wait_s"] is None  # no book fetched: slow start
                await (await http.get(f"{rest}/api/v3/depth?symbol=BTCUSDT&limit=50")).read()
                await read(10)
                status = sim.status()["replay"]["binance"]
                assert status["books_wait_s"] is None and not status["done"]  # ETH-USDT's book is still wanted
                await (await http.get(f"{rest}/api/v3/depth?symbol=ETHUSDT&limit=50")).read()
                await read(len(sim._players[0].store.payloads) - 20)
            status = sim.status()["replay"]["binance"]
            assert status["done"] is True and status["sent"] == status["frames"]
            assert 0 < status["books_wait_s"] < 10  # both books served: full speed from then on
        finally:
            await sim.freeze()
            await sim.stop()

    live.run(main)


def test_faults_that_change_frames_are_refused_on_a_pre_built_market(tmp_path: Path) -> None:
    async def main() -> None:
        sim = _simulator(tmp_path, ReplaySpec(messages=100, msgs_per_s=1000.0))
        await sim.start()
        try:
            with pytest.raises(ValueError, match="no skip fault on a pre-built market"):
                sim.fault("skip", "binance", count=2)
            assert sim.fault("drop", "binance") == {"ok": True, "affected": 0}
        finally:
            await sim.freeze()
            await sim.stop()

    live.run(main)


def test_only_exchanges_with_a_frame_format_pre_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the kraken simulator cannot pre-build its market"):
        Simulator(SimulatorSettings(), {"kraken": ["BTC-USD"]}, tmp_path / "t.jsonl", replay=ReplaySpec(10, 1.0))
