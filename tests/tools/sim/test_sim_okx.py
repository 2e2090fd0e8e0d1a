"""The OKX simulator over real loopback sockets: aiohttp clients against the real server, no mocks."""

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
from aiohttp import WSMsgType

from ingest.book.book import OrderBook
from ingest.exchanges.okx.checksum import book_checksum
from ingest.settings import SimulatorSettings
from tools.sim.exchanges.okx import checksum
from tools.sim.server import Simulator
from tools.sim.truth import load_truth

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


run = live.run


def simulator(
    tmp_path: Path, options: dict[str, Any] | None = None, sim_kw: dict[str, Any] | None = None, **settings: Any
) -> AbstractAsyncContextManager[Simulator]:
    return live.simulated(tmp_path, {"okx": SYMBOLS}, {"okx": options or {}}, sim_kw=sim_kw, **settings)


def public(sim: Simulator) -> str:
    return f"{sim.ws_url('okx')}/ws/v5/public"


class Reader(live.Reader):
    """The shared reader, with this protocol's look-ups."""

    def pushes(self, channel: str, inst: str) -> list[dict[str, Any]]:
        return [m for m in self.json() if m.get("arg") == {"channel": channel, "instId": inst} and "data" in m]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.json() if m.get("event") == event]



async def error_after(r: Reader, text: str) -> dict[str, Any]:
    """Send ``text`` and return the error event it gets."""
    seen = len(r.events("error"))
    await r.ws.send_str(text)
    await r.until(lambda: len(r.events("error")) > seen)
    return r.events("error")[-1]


def subscribe(*args: tuple[str, str], request_id: str | None = "1", op: str = "subscribe") -> str:
    req: dict[str, Any] = {"op": op, "args": [{"channel": c, "instId": i} for c, i in args]}
    return orjson.dumps(({"id": request_id} if request_id else {}) | req).decode()


def rebuild(pushes: list[dict[str, Any]]) -> tuple[OrderBook, list[tuple[int, int]], list[int]]:
    """Apply a symbol's books pushes by OKX's rules, asserting the chain: the first is a snapshot with
    prevSeqId -1, every later prevSeqId is the previous seqId. Returns the book, the (prevSeqId,
    seqId) pairs and, per message, whether its checksum matched the book (1), was 0 (0) or not (-1)."""
    book = OrderBook()
    chain: list[tuple[int, int]] = []
    checks: list[int] = []
    for n, push in enumerate(pushes):
        (d,) = push["data"]
        assert push["action"] == ("snapshot" if n == 0 else "update")
        if n == 0:
            assert d["prevSeqId"] == -1
            book.replace([tuple(x[:2]) for x in d["bids"]], [tuple(x[:2]) for x in d["asks"]])
        else:
            assert d["prevSeqId"] == chain[-1][1]
            book.apply([tuple(x[:2]) for x in d["bids"]], [tuple(x[:2]) for x in d["asks"]])
        assert all(len(x) == 4 and x[2] == "0" for x in d["bids"] + d["asks"])
        chain.append((d["prevSeqId"], d["seqId"]))
        checks.append(0 if d["checksum"] == 0 else 1 if d["checksum"] == book_checksum(book) else -1)
    return book, chain, checks


def test_books_chain_rebuilds_the_final_book_with_checksums_and_trades_match_truth(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            simulator(tmp_path, {"checksum": True}, rate=400.0) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as ws,
        ):
            r = Reader(ws)
            pairs = [(c, s) for s in SYMBOLS for c in ("books", "trades")]
            await ws.send_str(subscribe(*pairs, request_id="sub1"))
            await r.until(lambda: len(r.events("subscribe")) == 4)
            acks = r.events("subscribe")
            assert [(a["arg"]["channel"], a["arg"]["instId"]) for a in acks] == pairs
            assert all(a["id"] == "sub1" and len(a["connId"]) == 8 for a in acks)
            await asyncio.sleep(1.0)
            frozen = await sim.freeze()

            def caught_up() -> bool:
                return all(
                    r.pushes("books", s)[-1]["data"][0]["seqId"] == frozen["books"]["okx"][s]
                    and r.pushes("trades", s)[-1]["data"][0]["tradeId"] == str(frozen["last_trade_ids"]["okx"][s])
                    for s in SYMBOLS
                )

            await r.until(caught_up)
        truth = load_truth(tmp_path / "truth.jsonl")
        for symbol in SYMBOLS:
            book, chain, checks = rebuild(r.pushes("books", symbol))
            final = truth.books[("okx", symbol)]
            assert book.depth() == (list(final.bids), list(final.asks))
            assert chain[-1][1] == final.update_id
            assert all(seq > prev for prev, seq in chain[1:])
            assert any(seq - prev > 1 for prev, seq in chain[1:])  # seqIds jump, they are not +1
            assert checks == [1] * len(checks)
            trades = [p["data"] for p in r.pushes("trades", symbol)]
            assert all(len(d) == 1 and d[0]["count"] == "1" and d[0]["source"] == "0" for d in trades)
            got = [(int(d["tradeId"]), d["px"], d["sz"], d["side"]) for (d,) in trades]
            assert got == [(t.trade_id, t.price, t.qty, t.side) for t in truth.trades[("okx", symbol)]]
            assert all(d["instId"] == symbol and d["ts"].isdigit() for (d,) in trades)

    run(main)


def test_checksums_are_zero_by_default_and_deletes_are_spelled_zero(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            simulator(tmp_path) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(sim.ws_url("okx")) as ws,
        ):  # the venue root serves the same endpoint
            r = Reader(ws)
            await ws.send_str(subscribe(("books", "BTC-USDT")))
            await r.until(lambda: len(r.pushes("books", "BTC-USDT")) > 40)
        pushes = r.pushes("books", "BTC-USDT")
        _, _, checks = rebuild(pushes)
        assert checks == [0] * len(checks)
        levels = [x for p in pushes[1:] for x in p["data"][0]["bids"] + p["data"][0]["asks"]]
        deletes = [x for x in levels if x[1] == "0"]
        assert deletes and all(x[3] == "0" for x in deletes)
        assert "0.00000000" not in {x[1] for x in levels}

    run(main)


def test_requests_acks_errors_unsubscribe_and_text_ping(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            simulator(tmp_path) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as ws,
        ):
            r = Reader(ws)
            await ws.send_str("ping")
            await r.until(lambda: "pong" in r.texts())
            for bad, code in (
                ("{not json", "60012"),
                ('{"op":"subscribe"}', "60012"),
                ('{"op":"login","args":[{"channel":"books","instId":"BTC-USDT"}]}', "60012"),
                (subscribe(("books", "BTC-USDT"), request_id="bad-id!"), "60012"),
                (subscribe(("books", "BTC-USDT"), ("books", "DOGE-USDT"), request_id="e1"), "60018"),
                (subscribe(("candle1m", "BTC-USDT"), request_id="e2"), "60018"),
            ):
                assert (await error_after(r, bad))["code"] == code, bad
            errors = r.events("error")
            assert errors[-2] == {
                "id": "e1",
                "event": "error",
                "code": "60018",
                "msg": "Wrong URL or channel:books,instId:DOGE-USDT doesn't exist",
                "connId": errors[-2]["connId"],
            }
            assert "id" not in errors[0]
            assert r.events("subscribe") == [] and r.pushes("books", "BTC-USDT") == []  # nothing changed
            await ws.send_str(subscribe(("books", "ETH-USDT"), request_id="s2"))
            await r.until(lambda: len(r.pushes("books", "ETH-USDT")) > 3)
            await ws.send_str(subscribe(("books", "ETH-USDT"), request_id="u3", op="unsubscribe"))
            await r.until(lambda: bool(r.events("unsubscribe")))
            assert r.events("unsubscribe")[0]["arg"] == {"channel": "books", "instId": "ETH-USDT"}
            await asyncio.sleep(0.2)
            # Replies and data share one ordered queue: after the unsubscribe ack, no more books.
            msgs = r.json()
            cut = next(i for i, m in enumerate(msgs) if m.get("event") == "unsubscribe")
            assert not [m for m in msgs[cut:] if "data" in m]
            await ws.send_str(subscribe(("books", "ETH-USDT"), request_id="s4"))
            await r.until(lambda: [p["action"] for p in r.pushes("books", "ETH-USDT")].count("snapshot") == 2)
            status = sim.status()["exchanges"]["okx"]
            assert status["pings"] == 1 and status["subscriptions"] == {"books:ETH-USDT": 1}

    run(main)


def test_idle_symbols_get_keepalive_updates(tmp_path: Path) -> None:
    async def main() -> None:
        opts = {"keepalive_interval": 0.2, "checksum": True}
        async with (
            simulator(tmp_path, opts, rate=0.01) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as ws,
        ):
            r = Reader(ws)
            await ws.send_str(subscribe(("books", "BTC-USDT")))
            await r.until(lambda: len(r.pushes("books", "BTC-USDT")) >= 4, timeout=5)
        pushes = r.pushes("books", "BTC-USDT")
        snap = pushes[0]["data"][0]
        for p in pushes[1:]:
            (d,) = p["data"]
            assert p["action"] == "update" and d["asks"] == d["bids"] == []
            assert d["prevSeqId"] == d["seqId"] == snap["seqId"]
            assert d["checksum"] == snap["checksum"] != 0
        _, _, checks = rebuild(pushes)
        assert checks == [1] * len(checks)
        times = [t for t, m in r.msgs if m.type is WSMsgType.TEXT and '"update"' in m.data]
        assert all(0.1 < b - a < 0.6 for a, b in pairwise(times))

    run(main)


def test_the_30_second_rule_drops_a_silent_client_and_spares_one_that_pings(tmp_path: Path) -> None:
    async def main() -> None:
        opts = {"idle_timeout": 0.5}
        async with (
            simulator(tmp_path, opts, rate=0.01) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as mute,
            http.ws_connect(public(sim)) as pinger,
            http.ws_connect(public(sim)) as unsubscribed,
        ):
            rm, rp, ru = Reader(mute), Reader(pinger), Reader(unsubscribed)
            await mute.send_str(subscribe(("trades", "BTC-USDT")))
            await pinger.send_str(subscribe(("trades", "BTC-USDT")))
            t0 = asyncio.get_running_loop().time()
            for _ in range(8):
                await asyncio.sleep(0.2)
                await pinger.send_str("ping")
            assert rm.end is not None and rm.end.type is WSMsgType.CLOSED  # aborted, no close frame
            assert ru.end is not None and ru.end.type is WSMsgType.CLOSED
            assert 0.4 < rm.msgs[-1][0] - t0 < 1.2
            assert rp.end is None and rp.texts().count("pong") >= 6
            status = sim.status()["exchanges"]["okx"]
            assert status["idle_drops"] == 2 and status["connections"] == 1

    run(main)


def test_skip_fault_breaks_one_symbols_chain(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            simulator(tmp_path) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as ws,
        ):
            r = Reader(ws)
            await ws.send_str(subscribe(*[("books", s) for s in SYMBOLS]))
            await r.until(lambda: len(r.pushes("books", "BTC-USDT")) > 3)
            assert sim.fault("skip", "okx", symbol="BTC-USDT", count=3) == {"ok": True, "affected": 1}
            await asyncio.sleep(0.5)
            assert sim.status()["exchanges"]["okx"]["skipped"] == {"BTC-USDT": 3}
        btc = [p["data"][0] for p in r.pushes("books", "BTC-USDT")]
        breaks = [(a["seqId"], b["prevSeqId"]) for a, b in pairwise(btc) if b["prevSeqId"] != a["seqId"]]
        assert len(breaks) == 1 and breaks[0][1] >= breaks[0][0] + 3
        rebuild(r.pushes("books", "ETH-USDT"))  # the other chain is whole

    run(main)


def test_chain_fault_names_a_wrong_predecessor_and_loses_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            simulator(tmp_path) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as ws,
        ):
            r = Reader(ws)
            await ws.send_str(subscribe(*[("books", s) for s in SYMBOLS]))
            await r.until(lambda: len(r.pushes("books", "BTC-USDT")) > 3)
            assert sim.fault("chain", "okx", symbol="BTC-USDT", count=2) == {"ok": True, "affected": 1}
            await asyncio.sleep(0.3)
            await sim.freeze()
            final = sim.status()["exchanges"]["okx"]["seq_ids"]["BTC-USDT"]
            await r.until(lambda: r.pushes("books", "BTC-USDT")[-1]["data"][0]["seqId"] == final)
        status = sim.status()["exchanges"]["okx"]
        assert status["chains_broken"] == {"BTC-USDT": 2} and status["chain_pending"] == {}
        assert status["book_faults"] == ["skip", "chain", "corrupt"]
        btc = [p["data"][0] for p in r.pushes("books", "BTC-USDT")]
        breaks = [i for i, (a, b) in enumerate(pairwise(btc), 1) if b["prevSeqId"] != a["seqId"]]
        assert len(breaks) == 2 and all(btc[i]["prevSeqId"] == btc[i - 1]["seqId"] + 1 for i in breaks)
        # Every change was sent: applied regardless of the links, the book is the market's.
        book = OrderBook()
        for n, d in enumerate(btc):
            levels = [tuple(x[:2]) for x in d["bids"]], [tuple(x[:2]) for x in d["asks"]]
            book.replace(*levels) if n == 0 else book.apply(*levels)
        assert book.depth() == sim.venues["okx"].markets["BTC-USDT"].book()
        rebuild(r.pushes("books", "ETH-USDT"))  # the other chain is whole

    run(main)


def test_book_faults_an_exchange_does_not_offer_are_refused(tmp_path: Path) -> None:
    async def main() -> None:
        s = SimulatorSettings(rate=10.0, levels=5)
        sim = Simulator(s, {"okx": SYMBOLS, "binance": ["BTC-USDT"]}, tmp_path / "truth.jsonl")
        for kind, why in (("chain", "sequence chain"), ("corrupt", "checksum")):
            with pytest.raises(ValueError, match=why):
                sim.fault(kind, "binance")
            assert sim.fault(kind, "okx", count=1) == {"ok": True, "affected": 2}
        with pytest.raises(ValueError, match="count"):
            sim.fault("chain", "okx", count=0)
        sim.truth.close()

    run(main)


@pytest.mark.parametrize("checksums", [False, True])
def test_corrupt_fault_sends_wrong_checksums(tmp_path: Path, checksums: bool) -> None:
    async def main() -> None:
        async with (
            simulator(tmp_path, {"checksum": checksums}) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as ws,
        ):
            r = Reader(ws)
            await ws.send_str(subscribe(("books", "BTC-USDT")))
            await r.until(lambda: len(r.pushes("books", "BTC-USDT")) > 3)
            body = {"kind": "corrupt", "exchange": "okx", "symbol": "BTC-USDT", "count": 2}
            async with http.post(f"{sim.control_url}/fault", json=body) as resp:
                assert resp.status == 200 and await resp.json() == {"ok": True, "affected": 1}
            await asyncio.sleep(0.3)
            assert sim.status()["exchanges"]["okx"]["corrupted"] == {"BTC-USDT": 2}
        _, _, checks = rebuild(r.pushes("books", "BTC-USDT"))
        assert checks.count(-1) == 2
        assert set(checks) == ({1, -1} if checksums else {0, -1})

    run(main)


def test_maintenance_resets_restart_the_chain_lower(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            simulator(tmp_path, {"reset_interval": 0.3}) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as ws,
        ):
            r = Reader(ws)
            await ws.send_str(subscribe(("books", "BTC-USDT")))
            await r.until(lambda: sim.status()["exchanges"]["okx"]["resets"].get("BTC-USDT", 0) >= 2)
            await sim.freeze()
            await r.until(
                lambda: (
                    r.pushes("books", "BTC-USDT")[-1]["data"][0]["seqId"]
                    == sim.status()["exchanges"]["okx"]["seq_ids"]["BTC-USDT"]
                )
            )
        book, chain, _ = rebuild(r.pushes("books", "BTC-USDT"))  # prevSeqId always the last seqId
        resets = [(prev, seq) for prev, seq in chain[1:] if seq < prev]
        assert len(resets) >= 2 and all(seq >= 0 for _, seq in resets)
        bids, asks = sim.venues["okx"].markets["BTC-USDT"].book()
        assert book.depth() == (bids, asks)

    run(main)


def test_aggregated_trades_carry_count_and_cover_every_fill(tmp_path: Path) -> None:
    async def main() -> None:
        opts = {"aggregate_trades": True}
        async with (
            simulator(tmp_path, opts, rate=2000.0, trade_ratio=0.9) as sim,
            aiohttp.ClientSession() as http,
            http.ws_connect(public(sim)) as ws,
        ):
            r = Reader(ws)
            await ws.send_str(subscribe(("trades", "BTC-USDT")))
            await r.until(lambda: any(p["data"][0]["count"] != "1" for p in r.pushes("trades", "BTC-USDT")))
            frozen = await sim.freeze()
            last = str(frozen["last_trade_ids"]["okx"]["BTC-USDT"])
            await r.until(lambda: r.pushes("trades", "BTC-USDT")[-1]["data"][0]["tradeId"] == last)
        fills = {t.trade_id: t for t in load_truth(tmp_path / "truth.jsonl").trades[("okx", "BTC-USDT")]}
        covered: list[int] = []
        for push in r.pushes("trades", "BTC-USDT"):
            (d,) = push["data"]
            last_id, count = int(d["tradeId"]), int(d["count"])
            ids = list(range(last_id - count + 1, last_id + 1))
            covered.extend(ids)
            assert {(fills[i].price, fills[i].side) for i in ids} == {(d["px"], d["side"])}
            total = sum(int(fills[i].qty.replace(".", "")) for i in ids)
            assert int(d["sz"].replace(".", "")) == total
        assert covered == sorted(fills)

    run(main)


def test_options_are_validated(tmp_path: Path) -> None:
    settings = SimulatorSettings()
    for bad in (
        {"checksums": True},
        {"checksum": 1},
        {"idle_timeout": 0},
        {"reset_interval": -1},
        {"keepalive_interval": "1"},
    ):
        with pytest.raises(ValueError, match="option"):
            Simulator(settings, {"okx": SYMBOLS}, tmp_path / "t.jsonl", options={"okx": bad})
    with pytest.raises(ValueError, match="not simulated"):
        Simulator(settings, {"okx": SYMBOLS}, tmp_path / "t.jsonl", options={"nowhere": {}})


def test_checksum_vectors_of_the_simulator() -> None:
    """The simulator computes OKX's checksum on its own (not the adapter's code): the docs' vectors."""
    assert checksum([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]) == -1881014294
    assert checksum([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]) == 831078360
