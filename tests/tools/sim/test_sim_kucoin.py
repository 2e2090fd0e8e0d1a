"""The KuCoin simulator over real loopback sockets: aiohttp clients against the real server, no mocks.
Books are rebuilt here by protocols.md E''s calibration procedure with plain dicts (not the code under
test) and compared with the model; trades with the truth log."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import live
import orjson
import pytest

from tools.sim.exchanges import check_options
from tools.sim.server import Simulator
from tools.sim.truth import load_truth

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


run = live.run


def simulator(
    tmp_path: Path, options: dict[str, Any] | None = None, **settings: Any
) -> AbstractAsyncContextManager[Simulator]:
    return live.simulated(tmp_path, {"kucoin": SYMBOLS}, {"kucoin": options or {}}, **settings)


class Reader(live.Reader):
    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.json() if m.get("type") == kind]

    def messages(self, topic: str) -> list[dict[str, Any]]:
        return [m["data"] for m in self.of("message") if m["topic"] == topic]


async def bullet(http: aiohttp.ClientSession, sim: Simulator) -> dict[str, Any]:
    async with http.post(f"{sim.rest_url('kucoin')}/api/v1/bullet-public") as resp:
        body: dict[str, Any] = orjson.loads(await resp.read())
    assert body["code"] == "200000"
    return body["data"]  # type: ignore[no-any-return]


async def connect(http: aiohttp.ClientSession, sim: Simulator, connect_id: str = "c1") -> tuple[Reader, str]:
    """A token, a connection, its welcome; returns the reader and the token used."""
    data = await bullet(http, sim)
    server = data["instanceServers"][0]
    ws = await http.ws_connect(f"{server['endpoint']}?token={data['token']}&connectId={connect_id}")
    r = Reader(ws)
    await r.until(lambda: bool(r.of("welcome")))
    assert r.json()[0] == {"id": connect_id, "type": "welcome"}
    return r, data["token"]


async def ended(r: Reader) -> None:
    await r.until(lambda: r.end is not None)


async def send(r: Reader, request: dict[str, Any]) -> None:
    await r.ws.send_str(orjson.dumps(request).decode())


def subscribe(topic: str, request_id: str = "1", kind: str = "subscribe") -> dict[str, Any]:
    return {"id": request_id, "type": kind, "topic": topic, "privateChannel": False, "response": True}


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200
        return orjson.loads(await resp.read())


def rebuild(snapshot: dict[str, Any], updates: list[dict[str, Any]]) -> tuple[dict[Decimal, str], dict[Decimal, str]]:
    """protocols.md E': drop ``sequenceEnd <= sequence``; apply when ``sequenceStart <= last + 1``; price
    "0" skips, size "0" deletes; changes in their sequence order. Asserts there is no gap."""
    bids = {Decimal(p): q for p, q in snapshot["bids"]}
    asks = {Decimal(p): q for p, q in snapshot["asks"]}
    last = int(snapshot["sequence"])
    for u in updates:
        if u["sequenceEnd"] <= last:
            continue
        assert u["sequenceStart"] <= last + 1, "gap"
        for side, book in (("bids", bids), ("asks", asks)):
            for price, size, _ in sorted(u["changes"][side], key=lambda c: int(c[2])):
                if Decimal(price) == 0:
                    continue
                if Decimal(size) == 0:
                    book.pop(Decimal(price), None)
                else:
                    book[Decimal(price)] = size
        last = u["sequenceEnd"]
    return bids, asks


def test_books_rebuild_to_the_models_and_matches_equal_the_truth(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path, {"noop_ratio": 0.5}) as sim, aiohttp.ClientSession() as http:
            r, _ = await connect(http, sim)
            await send(r, subscribe("/market/level2:BTC-USDT,ETH-USDT", "1"))
            await send(r, subscribe("/market/match:BTC-USDT,ETH-USDT", "2"))
            await r.until(lambda: len(r.of("ack")) == 2)
            assert r.of("ack") == [{"id": "1", "type": "ack"}, {"id": "2", "type": "ack"}]
            await asyncio.sleep(0.3)  # buffer, then the snapshots
            rest = sim.rest_url("kucoin")
            snaps = {s: await get(http, f"{rest}/api/v1/market/orderbook/level2_100?symbol={s}") for s in SYMBOLS}
            await asyncio.sleep(0.5)
            await sim.freeze()
            final = sim.status()["exchanges"]["kucoin"]["sequences"]
            await r.until(lambda: all(
                any(u["sequenceEnd"] == final[s] for u in r.messages(f"/market/level2:{s}")) for s in SYMBOLS
            ))  # fmt: skip
            for symbol in SYMBOLS:
                updates = r.messages(f"/market/level2:{symbol}")
                bids, asks = rebuild(snaps[symbol]["data"], updates)
                want_bids, want_asks = sim.venues["kucoin"].markets[symbol].book()
                assert sorted(bids.items(), reverse=True) == [(Decimal(p), q) for p, q in want_bids]
                assert sorted(asks.items()) == [(Decimal(p), q) for p, q in want_asks]
                # Consecutive messages cover consecutive sequences; no-ops occur; sides are in price order.
                for a, b in pairwise(updates):
                    assert b["sequenceStart"] == a["sequenceEnd"] + 1
                changes = [c for u in updates for side in ("bids", "asks") for c in u["changes"][side]]
                assert any(c[:2] == ["0", "0"] for c in changes)
                assert all(u["sequenceStart"] <= int(c[2]) <= u["sequenceEnd"] for u in updates
                           for side in ("bids", "asks") for c in u["changes"][side])  # fmt: skip
                assert any(c[1] == "0" for c in changes)  # deletes spelled "0"
                for u in updates:
                    prices = [Decimal(c[0]) for c in u["changes"]["asks"] if c[0] != "0"]
                    assert prices == sorted(prices)
            truth = load_truth(tmp_path / "truth.jsonl")
            for symbol in SYMBOLS:
                matches = r.messages(f"/market/match:{symbol}")
                expected = [(str(t.trade_id), t.price, t.qty, t.side) for t in truth.trades[("kucoin", symbol)]]
                got = [(m["sequence"], m["price"], m["size"], m["side"]) for m in matches]
                assert len(expected) > 10 and got == expected
                assert {m["type"] for m in matches} == {"match"} and all(m["time"].isdigit() for m in matches)
            await r.ws.close()

    run(go)


def test_the_bullet_answer_and_the_snapshot_shapes(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path, {"ping_interval": 5, "ping_timeout": 2}, levels=30) as sim, \
                aiohttp.ClientSession() as http:  # fmt: skip
            data = await bullet(http, sim)
            assert data["instanceServers"] == [
                {"endpoint": f"ws://{sim.base_url}/kucoin/", "encrypt": False, "protocol": "websocket",
                 "pingInterval": 5000, "pingTimeout": 2000}
            ]  # fmt: skip
            assert len(data["token"]) >= 32 and data["token"] != (await bullet(http, sim))["token"]
            rest = sim.rest_url("kucoin")
            for depth, levels in ((20, 20), (100, 30)):
                body = await get(http, f"{rest}/api/v1/market/orderbook/level2_{depth}?symbol=ETH-USDT")
                snap = body["data"]
                assert body["code"] == "200000" and snap["sequence"].isdigit() and isinstance(snap["time"], int)
                # The model keeps 1..levels a side (a trade may have taken a level not yet refilled).
                assert levels - 3 <= len(snap["bids"]) <= levels and levels - 3 <= len(snap["asks"]) <= levels
                prices = [Decimal(p) for p, _ in snap["bids"]]
                assert prices == sorted(prices, reverse=True)
            assert await get(http, f"{rest}/api/v1/market/orderbook/level2_100?symbol=NOPE-USDT") == {
                "code": "400100", "msg": "symbol invalid"
            }  # fmt: skip

    run(go)


def test_requests_acks_errors_ping_and_unsubscribe(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            r, _ = await connect(http, sim)
            await send(r, {"id": "p1", "type": "ping"})
            await r.until(lambda: bool(r.of("pong")))
            assert r.of("pong") == [{"id": "p1", "type": "pong"}]
            bad = [
                (subscribe("/market/level2:NOPE-USDT", "e1"), 404),
                (subscribe("/market/candles:BTC-USDT_1min", "e2"), 404),
                (subscribe("/market/level2:" + ",".join(["BTC-USDT"] * 101), "e3"), 400),
                ({"id": "e4", "type": "subscribe"}, 400),
                ({"id": "e5", "type": "hello"}, 400),
            ]
            for request, _ in bad:
                await send(r, request)
            await r.ws.send_str("not json")
            await r.until(lambda: len(r.of("error")) == len(bad) + 1)
            errors = r.of("error")
            assert [(e["id"], e["code"]) for e in errors] == [(q["id"], c) for q, c in bad] + [("", 400)]
            assert errors[0]["data"] == "topic /market/level2:NOPE-USDT is not found"
            assert sim.status()["exchanges"]["kucoin"]["subscriptions"] == {}
            await send(r, subscribe("/market/match:BTC-USDT", "s1") | {"response": False})
            await r.until(lambda: bool(r.messages("/market/match:BTC-USDT")))
            assert not r.of("ack")
            await send(r, subscribe("/market/match:BTC-USDT", "u1", "unsubscribe"))
            await r.until(lambda: bool(r.of("ack")))
            seen = len(r.messages("/market/match:BTC-USDT"))
            await asyncio.sleep(0.3)
            assert len(r.messages("/market/match:BTC-USDT")) == seen
            await r.ws.close()

    run(go)


def test_tokens_are_good_for_one_connection_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            r, token = await connect(http, sim)
            endpoint = f"ws://{sim.base_url}/kucoin/"
            for bad in (token, "forged"):
                ws = await http.ws_connect(f"{endpoint}?token={bad}&connectId=c9")
                again = Reader(ws)
                await ended(again)
                assert again.json() == [{"id": "c9", "type": "error", "code": 401, "data": "token is invalid"}]
            status = sim.status()["exchanges"]["kucoin"]
            assert (status["tokens_issued"], status["tokens_refused"], status["connections"]) == (1, 2, 1)
            await r.ws.close()

    run(go)


def test_a_connection_is_closed_when_its_token_expires_and_a_stale_token_is_refused(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path, {"token_life": 0.6}) as sim, aiohttp.ClientSession() as http:
            loop = asyncio.get_running_loop()
            start = loop.time()
            r, _ = await connect(http, sim)
            await send(r, subscribe("/market/match:BTC-USDT"))
            await r.until(lambda: r.end is not None, 3)
            assert 0.5 <= loop.time() - start <= 1.5
            assert r.end is not None and r.end.type is aiohttp.WSMsgType.CLOSE
            assert r.messages("/market/match:BTC-USDT")  # data flowed until then
            data = await bullet(http, sim)
            await asyncio.sleep(0.7)  # the token ages past its life before it is used
            ws = await http.ws_connect(f"ws://{sim.base_url}/kucoin/?token={data['token']}&connectId=late")
            late = Reader(ws)
            await late.until(lambda: late.end is not None)
            assert late.of("error")[0]["code"] == 401 and not late.of("welcome")
            status = sim.status()["exchanges"]["kucoin"]
            assert (status["token_expiries"], status["tokens_refused"]) == (1, 1)

    run(go)


def test_a_client_that_stops_pinging_is_dropped_and_one_that_pings_is_not(tmp_path: Path) -> None:
    async def go() -> None:
        options = {"ping_interval": 0.2, "ping_timeout": 0.2}
        async with simulator(tmp_path, options) as sim, aiohttp.ClientSession() as http:
            silent, _ = await connect(http, sim, "silent")
            pinging, _ = await connect(http, sim, "pinging")
            for i in range(12):
                await send(pinging, {"id": str(i), "type": "ping"})
                await asyncio.sleep(0.1)
            assert silent.end is not None and pinging.end is None
            status = sim.status()["exchanges"]["kucoin"]
            assert status["idle_drops"] == 1 and status["pings"] == 12
            await pinging.ws.close()

    run(go)


def test_skip_leaves_sequences_out_and_the_snapshot_has_them(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            r, _ = await connect(http, sim)
            await send(r, subscribe("/market/level2:BTC-USDT,ETH-USDT"))
            await r.until(lambda: len(r.messages("/market/level2:ETH-USDT")) >= 3)
            sim.fault("skip", "kucoin", symbol="ETH-USDT", count=5)
            await r.until(lambda: sim.status()["exchanges"]["kucoin"]["skipped"].get("ETH-USDT") == 5)
            await asyncio.sleep(0.1)
            for symbol, holes in (("ETH-USDT", 1), ("BTC-USDT", 0)):
                updates = r.messages(f"/market/level2:{symbol}")
                jumps = [b["sequenceStart"] - a["sequenceEnd"] - 1 for a, b in pairwise(updates)]
                assert sum(1 for j in jumps if j) == holes and sum(jumps) == 5 * holes
            assert sim.status()["exchanges"]["kucoin"]["book_faults"] == ["skip"]
            await r.ws.close()

    run(go)


def test_histories_serve_the_last_100_trades_oldest_first(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path, rate=400.0) as sim, aiohttp.ClientSession() as http:
            r, _ = await connect(http, sim)
            await send(r, subscribe("/market/match:BTC-USDT"))
            await r.until(lambda: len(r.messages("/market/match:BTC-USDT")) > 150, 15)
            url = f"{sim.rest_url('kucoin')}/api/v1/market/histories?symbol=BTC-USDT"
            rows = (await get(http, url))["data"]
            await sim.freeze()
            truth = {str(t.trade_id): t for t in load_truth(tmp_path / "truth.jsonl").trades[("kucoin", "BTC-USDT")]}
            assert len(rows) == 100
            first = int(rows[0]["sequence"])
            assert [int(x["sequence"]) for x in rows] == list(range(first, first + 100))
            for row in rows:
                t = truth[row["sequence"]]
                assert (row["price"], row["size"], row["side"]) == (t.price, t.qty, t.side)
                assert isinstance(row["time"], int) and row["time"] > 1_600_000_000 * 10**9
            sim.fault("forget", "kucoin", symbol="BTC-USDT")  # the market is frozen: nothing new comes in
            assert (await get(http, url)) == {"code": "200000", "data": []}
            assert (await get(http, url.replace("BTC-USDT", "X-Y")))["code"] == "400100"
            await r.ws.close()

    run(go)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"token_lfe": 1}, "unknown kucoin simulator option"),
        ({"token_life": 0}, "'token_life' must be a number of seconds above 0"),
        ({"token_life": True}, "'token_life' must be a number"),
        ({"ping_interval": "18"}, "'ping_interval' must be a number"),
        ({"noop_ratio": 2}, "'noop_ratio' must be between 0 and 1"),
    ],
)
def test_options_are_validated(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=f"kucoin: .*{error}"):
        check_options({"kucoin": options})


def test_defaults() -> None:
    from tools.sim.exchanges.kucoin import check_options as kucoin_options

    assert kucoin_options({}) == {"token_life": 86400.0, "ping_interval": 18.0, "ping_timeout": 10.0, "noop_ratio": 0.1}


def test_mute_silences_one_book_until_it_is_subscribed_again(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            r, _ = await connect(http, sim)
            await send(r, subscribe("/market/level2:BTC-USDT,ETH-USDT"))
            await send(r, subscribe("/market/match:ETH-USDT", "2"))
            await r.until(lambda: len(r.messages("/market/level2:ETH-USDT")) >= 2)
            assert sim.status()["exchanges"]["kucoin"]["connection_faults"] == ["drop", "stall", "garble", "mute"]
            sim.fault("mute", "kucoin", symbol="ETH-USDT")
            await asyncio.sleep(0.05)
            books, trades = len(r.messages("/market/level2:ETH-USDT")), len(r.messages("/market/match:ETH-USDT"))
            await asyncio.sleep(0.3)
            assert len(r.messages("/market/level2:ETH-USDT")) == books  # silent, with nothing said
            assert len(r.messages("/market/match:ETH-USDT")) > trades  # its trades and the other book flow
            await send(r, subscribe("/market/level2:ETH-USDT", "3"))
            await r.until(lambda: len(r.messages("/market/level2:ETH-USDT")) > books)
            await r.ws.close()

    run(go)
