"""The Bybit simulator over real loopback sockets: aiohttp clients against the real server, no mocks.
Books rebuilt from the wire by Bybit's documented rules equal the market's top ``depth`` levels; ``u``
runs +1 per message, jumps under *skip* and restarts at 1 under *restart*; trades equal the truth
log; acks, refusals, the pong, the 10-minute rule (scaled down) and REST recent trades."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import live
import orjson
import pytest

from ingest.book.book import OrderBook
from tools.sim.exchanges.bybit import check_options
from tools.sim.server import Simulator
from tools.sim.truth import load_truth

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


run = live.run


def simulator(
    tmp_path: Path, options: dict[str, Any] | None = None, **settings: Any
) -> AbstractAsyncContextManager[Simulator]:
    return live.simulated(tmp_path, {"bybit": SYMBOLS}, {"bybit": options or {}}, **({"levels": 30} | settings))


def spot(sim: Simulator) -> str:
    return f"{sim.ws_url('bybit')}/v5/public/spot"


class Reader(live.Reader):
    def topic(self, topic: str) -> list[dict[str, Any]]:
        return [m for m in self.json() if m.get("topic") == topic]

    def ops(self, op: str) -> list[dict[str, Any]]:
        return [m for m in self.json() if m.get("op") == op]


def request(op: str, *args: str, req_id: str | None = "r1") -> str:
    return orjson.dumps({"op": op, "args": list(args)} | ({"req_id": req_id} if req_id else {})).decode()


def rebuild(pushes: list[dict[str, Any]], depth: int | None = None) -> tuple[OrderBook, list[int]]:
    """Apply pushes by Bybit's rules: a snapshot (or u=1) replaces the book, a delta sets absolute
    sizes ("0" deletes); optionally truncate to ``depth``. Returns the book and the u sequence."""
    book = OrderBook()
    us: list[int] = []
    for p in pushes:
        d = p["data"]
        if p["type"] == "snapshot" or d["u"] == 1:
            book.replace([tuple(lv) for lv in d["b"]], [tuple(lv) for lv in d["a"]])
        else:
            book.apply([tuple(lv) for lv in d["b"]], [tuple(lv) for lv in d["a"]])
        if depth is not None:
            book.bids.truncate(depth)
            book.asks.truncate(depth)
        us.append(d["u"])
    return book, us


async def frozen_books(sim: Simulator, r: Reader, topic: str) -> list[dict[str, Any]]:
    """Freeze the market and wait until the topic's last push is the view's final ``u``."""
    await sim.freeze()
    final = sim.status()["exchanges"]["bybit"]["update_ids"][topic]
    await r.until(lambda: bool(r.topic(topic)) and r.topic(topic)[-1]["data"]["u"] == final)
    return r.topic(topic)


@pytest.mark.parametrize("delete_outside", [True, False])
def test_books_rebuild_to_the_market_window_and_u_runs_by_one(tmp_path: Path, delete_outside: bool) -> None:
    """With ``delete_outside`` the window's deletes come on the wire; without, truncating does it."""

    async def go() -> None:
        async with simulator(tmp_path, {"delete_outside": delete_outside}) as sim, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(spot(sim))
            r = Reader(ws)
            await ws.send_str(
                request("subscribe", "orderbook.1.BTCUSDT", "orderbook.50.BTCUSDT", "publicTrade.BTCUSDT")
            )
            await r.until(lambda: len(r.topic("orderbook.50.BTCUSDT")) > 30)
            ack = r.ops("subscribe")[0]
            assert ack == {
                "success": True,
                "ret_msg": "subscribe",
                "conn_id": ack["conn_id"],
                "req_id": "r1",
                "op": "subscribe",
            }
            market = sim.venues["bybit"].markets["BTC-USDT"]
            for depth in (1, 50):
                pushes = await frozen_books(sim, r, f"orderbook.{depth}.BTCUSDT")
                assert [p["type"] for p in pushes[:2]] == ["snapshot", "delta"]
                book, us = rebuild(pushes, None if delete_outside else depth)
                assert us == list(range(us[0], us[0] + len(us)))
                assert book.depth() == market.book(depth), depth
                assert all(p["data"]["s"] == "BTCUSDT" and p["data"]["seq"] > 0 for p in pushes)
            assert sim.venues["bybit"].book_depth["BTC-USDT"] == 50  # the last subscribed: the truth's window
            truth = load_truth(tmp_path / "truth.jsonl")
            expected = [(str(t.trade_id), t.price, t.qty, t.side) for t in truth.trades[("bybit", "BTC-USDT")]]
            got = [(t["i"], t["p"], t["v"], t["S"].lower()) for p in r.topic("publicTrade.BTCUSDT") for t in p["data"]]
            assert len(expected) > 10 and got == expected
            assert any(len(p["data"]) > 1 for p in r.topic("publicTrade.BTCUSDT"))  # several per message

    run(go)


def test_skip_leaves_changes_out_and_u_jumps(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(spot(sim))
            r = Reader(ws)
            await ws.send_str(request("subscribe", "orderbook.50.ETHUSDT"))
            await r.until(lambda: len(r.topic("orderbook.50.ETHUSDT")) > 5)
            sim.fault("skip", "bybit", symbol="ETH-USDT", count=3)
            await r.until(lambda: sim.status()["exchanges"]["bybit"]["skipped"].get("ETH-USDT") == 3)
            seen = len(r.topic("orderbook.50.ETHUSDT"))
            await r.until(lambda: len(r.topic("orderbook.50.ETHUSDT")) > seen)  # the jump, sent
            pushes = await frozen_books(sim, r, "orderbook.50.ETHUSDT")
            _, us = rebuild(pushes)
            steps = [b - a for a, b in pairwise(us)]
            assert sorted(set(steps)) == [1, 4] and steps.count(4) == 1
            status = sim.status()["exchanges"]["bybit"]
            assert status["book_faults"] == ["skip", "restart"] and status["skip_pending"] == {}

    run(go)


def test_restart_sends_the_book_with_u_one_then_counts_on(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(spot(sim))
            r = Reader(ws)
            await ws.send_str(request("subscribe", "orderbook.50.BTCUSDT", "orderbook.200.BTCUSDT"))
            await r.until(lambda: len(r.topic("orderbook.50.BTCUSDT")) > 5)
            sim.fault("restart", "bybit", symbol="BTC-USDT", count=1)
            await r.until(lambda: sim.status()["exchanges"]["bybit"]["restarts"].get("BTC-USDT") == 1)
            market = sim.venues["bybit"].markets["BTC-USDT"]
            for depth in (50, 200):
                pushes = await frozen_books(sim, r, f"orderbook.{depth}.BTCUSDT")
                book, us = rebuild(pushes)
                at = us.index(1)
                assert pushes[at]["type"] == "snapshot" and us[0] > 1
                assert us[at:] == list(range(1, len(us) - at + 1))
                assert book.depth() == market.book(depth)

    run(go)


def test_ping_refusals_and_unsubscribe(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(spot(sim))
            r = Reader(ws)
            await ws.send_str('{"req_id":"100001","op":"ping"}')
            await ws.send_str('{"op":"ping"}')
            await r.until(lambda: len(r.ops("ping")) == 2)
            pongs = r.ops("ping")
            assert [(p["success"], p["ret_msg"], p.get("req_id")) for p in pongs] == [
                (True, "pong", "100001"), (True, "pong", None),
            ]  # fmt: skip
            eleven = [f"publicTrade.{s}" for s in ("BTCUSDT", "ETHUSDT")] * 6
            await ws.send_str(request("subscribe", *eleven[:11], req_id="big"))
            await ws.send_str(request("subscribe", "orderbook.40.BTCUSDT", "publicTrade.BTCUSDT", req_id="bad"))
            await ws.send_str(request("subscribe", "publicTrade.XRPUSDT", req_id="unknown"))
            await r.until(lambda: len(r.ops("subscribe")) == 3)
            refusals = {m["req_id"]: (m["success"], m["ret_msg"]) for m in r.ops("subscribe")}
            assert refusals == {
                "big": (False, "error:args size >10"),
                "bad": (False, "error:handler not found,topic:orderbook.40.BTCUSDT"),
                "unknown": (False, "error:handler not found,topic:publicTrade.XRPUSDT"),
            }
            assert sim.status()["exchanges"]["bybit"]["subscriptions"] == {}  # nothing of a refused request
            await ws.send_str(request("subscribe", "publicTrade.BTCUSDT", req_id="ok"))
            await r.until(lambda: len(r.topic("publicTrade.BTCUSDT")) > 0)
            await ws.send_str(request("unsubscribe", "publicTrade.BTCUSDT", req_id="off"))
            await r.until(lambda: any(m.get("req_id") == "off" for m in r.ops("unsubscribe")))
            assert sim.status()["exchanges"]["bybit"]["subscriptions"] == {}
            assert sim.status()["exchanges"]["bybit"]["pings"] == 2

    run(go)


def test_a_connection_without_pings_or_data_is_cut(tmp_path: Path) -> None:
    """Bybit's 10 minutes, scaled to 0.4 s: a client that pings stays, one that does not is cut."""

    async def go() -> None:
        async with simulator(tmp_path, {"idle_timeout": 0.4}) as sim, aiohttp.ClientSession() as http:
            quiet = Reader(await http.ws_connect(spot(sim)))
            pinging = await http.ws_connect(spot(sim))
            for _ in range(8):
                await pinging.send_str('{"op":"ping"}')
                await asyncio.sleep(0.1)
            await quiet.until(lambda: quiet.end is not None, 3)
            assert not pinging.closed and sim.status()["exchanges"]["bybit"]["idle_drops"] == 1

    run(go)


def test_recent_trades(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path, rate=1000.0) as sim, aiohttp.ClientSession() as http:
            await asyncio.sleep(1.0)
            await sim.freeze()  # the history stays put while it is compared
            base = f"{sim.rest_url('bybit')}/v5/market/recent-trade"
            async with http.get(f"{base}?category=spot&symbol=BTCUSDT&limit=1000") as resp:
                body = await resp.json(loads=orjson.loads)
            rows = body["result"]["list"]
            venue = sim.venues["bybit"].trades["BTC-USDT"]
            newest = [str(t.trade_id) for t, _ in reversed(venue)][:60]
            assert (body["retCode"], body["retMsg"], len(rows)) == (0, "OK", 60)
            assert [row["execId"] for row in rows] == newest
            assert set(rows[0]) == {"execId", "symbol", "price", "size", "side", "time", "isBlockTrade"}
            async with http.get(f"{base}?category=spot&symbol=BTCUSDT&limit=5") as resp:
                assert len((await resp.json(loads=orjson.loads))["result"]["list"]) == 5
            for query, msg in (
                ("category=linear&symbol=BTCUSDT", "Illegal category"),
                ("category=spot&symbol=XRPUSDT", "Not supported symbols"),
                ("category=spot&symbol=BTCUSDT&limit=0", "Invalid limit"),
            ):
                async with http.get(f"{base}?{query}") as resp:
                    body = await resp.json(loads=orjson.loads)
                assert (resp.status, body["retCode"], body["retMsg"]) == (200, 10001, msg)
            sim.fault("forget", "bybit", symbol="BTC-USDT")
            async with http.get(f"{base}?category=spot&symbol=BTCUSDT") as resp:
                assert (await resp.json(loads=orjson.loads))["result"]["list"] == []

    run(go)


def test_options() -> None:
    assert check_options({}) == {"delete_outside": True, "idle_timeout": 600.0}
    for bad, msg in (({"x": 1}, "unknown"), ({"delete_outside": 1}, "true or false"), ({"idle_timeout": 0}, "above 0")):
        with pytest.raises(ValueError, match=msg):
            check_options(bad)
