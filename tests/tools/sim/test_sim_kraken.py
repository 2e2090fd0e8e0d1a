"""The simulated Kraken v2 over real loopback sockets: the wire protocol checked by an independent
client (plain dicts, Decimal, zlib), the truth log at the served depth, and the generic
`FeedConnection` against it: books equal at depth with every checksum verified, a corrupted checksum
resyncs one symbol only, drops and stalls reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import live
import pytest
from aiohttp import WSMsgType
from live import books_from, until

from ingest.events import BookDelta, BookSnapshot, BookStatus, ConnectionStatus, Event, Trade
from ingest.exchanges import get_spec
from ingest.session.connection import FeedConnection
from ingest.settings import SimulatorSettings
from tools.sim.server import Simulator
from tools.sim.truth import load_truth

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-EUR"]
SPEC = get_spec("kraken")
Level = tuple[str, str]


run = live.run


@contextlib.asynccontextmanager
async def connected(sim: Simulator, path: str = "") -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url("kraken") + path) as ws:
        yield ws


def simulator(
    tmp_path: Path, feeds: dict[str, list[str]] | None = None, **settings: Any
) -> AbstractAsyncContextManager[Simulator]:
    return live.simulated(tmp_path, feeds or {"kraken": SYMBOLS}, **({"levels": 40} | settings))



class Client:
    """An independent Kraken v2 client: reads every frame (numbers as Decimal), keeps the books the
    documented way (apply in order, truncate to the depth, CRC32 of the top 10) and counts checks."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, depth: int) -> None:
        self.ws = ws
        self.depth = depth
        self.msgs: list[dict[str, Any]] = []
        self.books: dict[str, dict[str, dict[Decimal, Level]]] = {}
        self.verified = 0
        self.failed = 0
        self.truncated = 0  # levels the client dropped itself: pushed out of the window, never deleted
        self.end: aiohttp.WSMessage | None = None
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type is not WSMsgType.TEXT:
                self.end = msg
                return
            data = json.loads(msg.data, parse_float=Decimal)
            self.msgs.append(data)
            if data.get("channel") == "book":
                self._book(data)

    def _book(self, msg: dict[str, Any]) -> None:
        [element] = msg["data"]
        if msg["type"] == "snapshot":
            self.books[element["symbol"]] = {"bids": {}, "asks": {}}
        book = self.books[element["symbol"]]
        for side in ("bids", "asks"):
            for entry in element[side]:
                price, qty = Decimal(entry["price"]), Decimal(entry["qty"])
                if qty == 0:
                    book[side].pop(price, None)
                else:
                    book[side][price] = (f"{price:.8f}", f"{qty:.8f}")
            keep = sorted(book[side], reverse=side == "bids")[: self.depth]
            self.truncated += len(book[side]) - len(keep)
            book[side] = {p: book[side][p] for p in keep}
        if crc(self.levels(element["symbol"])) == element["checksum"]:
            self.verified += 1
        else:
            self.failed += 1

    def levels(self, symbol: str) -> tuple[list[Level], list[Level]]:
        book = self.books[symbol]
        bids = [book["bids"][p] for p in sorted(book["bids"], reverse=True)]
        asks = [book["asks"][p] for p in sorted(book["asks"])]
        return bids, asks

    def of(self, **match: Any) -> list[dict[str, Any]]:
        return [m for m in self.msgs if all(m.get(k) == v for k, v in match.items())]

    async def send(self, body: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(body))


def crc(levels: tuple[list[Level], list[Level]]) -> int:
    bids, asks = levels
    text = "".join(p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0") for p, q in asks[:10] + bids[:10])
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def market(sim: Simulator, symbol: str, depth: int) -> tuple[list[Level], list[Level]]:
    bids, asks = sim.venues["kraken"].markets[symbol].book(depth)
    return [tuple(x) for x in bids], [tuple(x) for x in asks]  # type: ignore[misc]


def test_book_window_trades_and_truth_at_the_served_depth(tmp_path: Path) -> None:
    """Depth 25 over a 40-level market: the window's updates (no deletes for levels pushed out)
    rebuild the market's top 25 exactly, every checksum verifies, trades match the truth log."""

    async def main() -> None:
        async with simulator(tmp_path) as sim, connected(sim, "/v2") as ws:
            c = Client(ws, depth=25)
            await c.send({"method": "subscribe", "params": {"channel": "instrument"}, "req_id": 1})
            book = {"channel": "book", "symbol": ["BTC/USD", "SOL/EUR"], "depth": 25, "snapshot": True}
            await c.send({"method": "subscribe", "params": book, "req_id": 7})
            await c.send({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}})
            await until(lambda: len(c.of(channel="book", type="update")) > 200)
            frozen = await sim.freeze()
            await asyncio.sleep(0.5)
            sim_books = {s: market(sim, s, 25) for s in ("BTC-USD", "SOL-EUR")}
        status, instrument, *_ = c.msgs
        assert status["channel"] == "status" and status["data"][0]["system"] == "online"
        assert instrument["method"] == "subscribe" and instrument["req_id"] == 1 and instrument["success"]
        [pairs] = [m["data"]["pairs"] for m in c.of(channel="instrument", type="snapshot")]
        assert {p["symbol"]: (p["price_precision"], p["qty_precision"]) for p in pairs} == {
            "BTC/USD": (8, 8), "ETH/USD": (8, 8), "SOL/EUR": (8, 8),
        }  # fmt: skip
        acks = [m for m in c.msgs if m.get("req_id") == 7]
        assert [a["result"] for a in acks] == [
            {"channel": "book", "symbol": s, "depth": 25, "snapshot": True} for s in ("BTC/USD", "SOL/EUR")
        ]
        snapshots = c.of(channel="book", type="snapshot")
        assert [len(s["data"][0]["bids"]) for s in snapshots] == [25, 25]
        assert c.msgs.index(snapshots[0]) == c.msgs.index(acks[0]) + 1  # the ack, then its snapshot
        assert c.failed == 0 and c.verified == len(c.of(channel="book"))
        # Kraken's "no deletes for levels leaving the window": the client truncates them itself.
        assert c.truncated > 10
        truth = load_truth(tmp_path / "truth.jsonl")
        for symbol, native in (("BTC-USD", "BTC/USD"), ("SOL-EUR", "SOL/EUR")):
            assert c.levels(native) == sim_books[symbol], symbol
            tb = truth.books[("kraken", symbol)]
            assert (list(tb.bids), list(tb.asks)) == sim_books[symbol]  # the truth is the 25-level window
            assert tb.update_id == frozen["books"]["kraken"][symbol]
        assert ("kraken", "ETH-USD") not in truth.books  # nobody subscribed to it
        trades = [t for m in c.of(channel="trade", type="update") for t in m["data"]]
        assert len(trades) > 10
        expected = truth.trades[("kraken", "BTC-USD")]
        assert [(t["trade_id"], f"{t['price']:.8f}", f"{t['qty']:.8f}", t["side"]) for t in trades] == [
            (t.trade_id, t.price, t.qty, t.side) for t in expected
        ]
        assert all(t["symbol"] == "BTC/USD" and t["ord_type"] == "market" for t in trades)
        assert c.of(channel="trade", type="snapshot") == []  # snapshot defaults to false for trades

    run(main)


def test_requests_errors_ping_heartbeat_and_unsubscribe(tmp_path: Path) -> None:
    async def main() -> None:
        async with simulator(tmp_path, rate=0.5) as sim, connected(sim) as ws:
            c = Client(ws, depth=10)
            await c.send({"method": "ping", "req_id": 101})
            await until(lambda: bool(c.of(method="pong")))
            await asyncio.sleep(1.3)
            assert c.of(channel="heartbeat") == []  # nothing subscribed yet: no heartbeats
            await c.send({"method": "subscribe", "params": {"channel": "heartbeat"}})
            await c.send({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "XYZ/USD"]},
                          "req_id": 2})  # fmt: skip
            await c.send({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}, "req_id": 3})
            await c.send({"method": "subscribe", "params": {"channel": "book", "symbol": ["ETH/USD"], "depth": 20},
                          "req_id": 4})  # fmt: skip
            await c.send({"method": "unsubscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}, "req_id": 5})
            await c.send({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"],
                                                            "snapshot": True}, "req_id": 6})  # fmt: skip
            await c.ws.send_str("{not json")
            await c.send({"method": "fly", "req_id": 8})
            await until(lambda: len(c.of(channel="heartbeat")) >= 2, 5)
            await c.send({"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}, "req_id": 9})
            await until(lambda: bool(c.of(req_id=9)))
            n = len(c.of(channel="book"))
            await asyncio.sleep(2.5)  # at rate 0.5 the market moves about once in that time
            assert len(c.of(channel="book")) == n  # unsubscribed: no more book messages
            status = sim.status()["exchanges"]["kraken"]
        pong = c.of(method="pong")[0]
        assert pong["req_id"] == 101 and pong["time_in"].endswith("Z") and pong["time_out"].endswith("Z")
        answers = [(m["success"], m.get("error"), m.get("symbol") or m["result"]["symbol"]) for m in c.of(req_id=2)]
        assert answers == [(True, None, "BTC/USD"), (False, "Currency pair not supported XYZ/USD", "XYZ/USD")]
        assert [(m["success"], m["error"]) for m in c.of(req_id=3)] == [(False, "Already subscribed")]
        assert c.of(req_id=4)[0]["success"] is False and "depth" in c.of(req_id=4)[0]["error"]
        assert [(m["success"], m["error"]) for m in c.of(req_id=5)] == [(False, "Subscription Not Found")]
        assert c.of(req_id=6)[0]["result"] == {"channel": "trade", "symbol": "BTC/USD", "snapshot": True}
        assert len(c.of(channel="trade", type="snapshot")) == 1
        assert [m["error"] for m in c.of(success=False) if "req_id" not in m] == ["Malformed request"]
        assert c.of(req_id=8)[0]["error"] == "Method not found"
        assert c.of(req_id=9)[0]["result"] == {"channel": "book", "symbol": "BTC/USD", "depth": 10}
        assert status["subscriptions"] == {"trade:BTC/USD": 1}

    run(main)


def test_corrupt_fault_is_generic_and_only_for_exchanges_with_checksums(tmp_path: Path) -> None:
    async def main() -> None:
        feeds = {"kraken": SYMBOLS[:1], "binance": ["BTC-USDT"]}
        async with simulator(tmp_path, feeds) as sim, connected(sim) as ws:
            c = Client(ws, depth=10)
            await c.send({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}})
            await until(lambda: len(c.of(channel="book")) > 3)
            assert sim.fault("corrupt", "kraken", count=2) == {"ok": True, "affected": 1}
            with pytest.raises(ValueError, match="checksum"):
                sim.fault("corrupt", "binance")
            with pytest.raises(ValueError, match="count"):
                sim.fault("corrupt", "kraken", count=0)
            await until(lambda: c.failed >= 2)
            status = sim.status()["exchanges"]["kraken"]
        assert status["corrupted"] == {"BTC-USD": 2} and status["corrupt_pending"] == {}
        # The independent client's book is still right: only the checksums were wrong.
        assert c.failed == 2

    run(main)


# -- the generic feed connection against the simulator ---------------------------------------------



Scenario = Callable[[Simulator, list[Event]], Awaitable[None]]


async def feed(
    tmp_path: Path, scenario: Scenario, depth: int = 10, **spec: Any
) -> tuple[list[Event], FeedConnection, Simulator]:
    sim = Simulator(SimulatorSettings(rate=200.0, levels=40), {"kraken": SYMBOLS}, tmp_path / "truth.jsonl")
    await sim.start()
    events: list[Event] = []
    conn = FeedConnection(
        dataclasses.replace(SPEC, **spec), SYMBOLS, ("trades", "book"), events.append, "k0",
        ws_url=sim.ws_url("kraken"), depth=depth,
    )  # fmt: skip
    task = asyncio.create_task(conn.run())
    try:
        await until(lambda: sum(isinstance(e, BookStatus) and e.state == "valid" for e in events) == len(SYMBOLS))
        await scenario(sim, events)
        await sim.freeze()
        await asyncio.sleep(0.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    return events, conn, sim


def assert_books_match(tmp_path: Path, sim: Simulator, events: list[Event], conn: FeedConnection, depth: int) -> None:
    truth = load_truth(tmp_path / "truth.jsonl")
    rebuilt = books_from(events)
    for symbol in SYMBOLS:
        want = market(sim, symbol, depth)
        tb = truth.books[("kraken", symbol)]
        assert (list(tb.bids), list(tb.asks)) == want, symbol
        assert conn.syncs[symbol.replace("-", "/")].book.depth() == want, symbol
        assert rebuilt[symbol].depth() == want, symbol


def assert_trades_match(tmp_path: Path, events: list[Event]) -> None:
    truth = load_truth(tmp_path / "truth.jsonl")
    for symbol in SYMBOLS:
        got = [(int(e.trade_id), e.price, e.qty, e.side) for e in events if isinstance(e, Trade) and e.symbol == symbol]
        want = [(t.trade_id, t.price, t.qty, t.side) for t in truth.trades[("kraken", symbol)]]
        assert got and got == want[: len(got)] and got[-1] == want[-1], symbol


@pytest.mark.parametrize("depth", [10, 25])
def test_feed_connection_books_equal_the_simulators_with_every_checksum_verified(tmp_path: Path, depth: int) -> None:
    async def scenario(sim: Simulator, events: list[Event]) -> None:
        await until(lambda: sum(isinstance(e, BookDelta) for e in events) > 600)

    events, conn, sim = asyncio.run(feed(tmp_path, scenario, depth))
    assert_books_match(tmp_path, sim, events, conn, depth)
    assert_trades_match(tmp_path, events)
    for native, sync in conn.syncs.items():
        assert sync.stats.checksum_failures == 0, native
        assert sync.stats.checksums_verified == sync.stats.deltas_applied + sync.stats.snapshots > 100, native
    assert conn.stats.decode_errors == 0
    assert not [e for e in events if isinstance(e, BookStatus) and e.state != "valid" and e.reason != "stopping"]


def test_corrupted_checksum_resyncs_that_symbol_only(tmp_path: Path) -> None:
    async def scenario(sim: Simulator, events: list[Event]) -> None:
        await until(lambda: sum(isinstance(e, BookDelta) for e in events) > 100)
        sim.fault("corrupt", "kraken", symbol="ETH-USD")
        await until(lambda: [e.symbol for e in events if isinstance(e, BookSnapshot)].count("ETH-USD") == 2)
        await until(lambda: sum(isinstance(e, BookDelta) for e in events) > 600)

    events, conn, sim = asyncio.run(feed(tmp_path, scenario))
    resyncs = [e for e in events if isinstance(e, BookStatus) and e.state == "resyncing" and e.reason != "stopping"]
    assert [(e.symbol, e.reason) for e in resyncs] == [("ETH-USD", "checksum mismatch")]
    snapshots = [e.symbol for e in events if isinstance(e, BookSnapshot)]
    assert sorted(snapshots) == sorted([*SYMBOLS, "ETH-USD"])  # one resubscription, for ETH only
    at = events.index(resyncs[0])
    back = next(i for i, e in enumerate(events) if i > at and isinstance(e, BookSnapshot))
    # The other symbols kept publishing while ETH-USD waited for its new snapshot.
    assert {e.symbol for e in events[at:back] if isinstance(e, BookDelta)} <= {"BTC-USD", "SOL-EUR"}
    assert {"BTC-USD", "SOL-EUR"} <= {e.symbol for e in events[at:] if isinstance(e, BookDelta)}
    assert not any(isinstance(e, ConnectionStatus) and e.state == "disconnected" for e in events[:-1])
    assert conn.syncs["ETH/USD"].stats.checksum_failures == 1
    assert conn.syncs["BTC/USD"].stats.checksum_failures == conn.syncs["SOL/EUR"].stats.checksum_failures == 0
    assert_books_match(tmp_path, sim, events, conn, 10)


def test_skipped_updates_are_caught_by_the_checksum(tmp_path: Path) -> None:
    async def scenario(sim: Simulator, events: list[Event]) -> None:
        await until(lambda: sum(isinstance(e, BookDelta) for e in events) > 100)
        sim.fault("skip", "kraken", symbol="SOL-EUR", count=3)
        await until(lambda: [e.symbol for e in events if isinstance(e, BookSnapshot)].count("SOL-EUR") == 2)
        await asyncio.sleep(0.3)

    events, conn, sim = asyncio.run(feed(tmp_path, scenario))
    assert sim.status()["exchanges"]["kraken"]["skipped"] == {"SOL-EUR": 3}
    resyncs = [e.symbol for e in events if isinstance(e, BookStatus) and e.reason == "checksum mismatch"]
    assert resyncs == ["SOL-EUR"]
    assert_books_match(tmp_path, sim, events, conn, 10)


@pytest.mark.parametrize("fault", ["drop", "stall"])
def test_dropped_or_stalled_connection_reconnects_and_resyncs(tmp_path: Path, fault: str) -> None:
    """A stall silences the heartbeats too: the liveness timeout (shortened here) notices."""

    async def scenario(sim: Simulator, events: list[Event]) -> None:
        sim.fault(fault, "kraken", **({"seconds": 3.0} if fault == "stall" else {}))
        await until(lambda: any(isinstance(e, ConnectionStatus) and e.state == "disconnected" for e in events))
        await until(lambda: sum(isinstance(e, BookSnapshot) for e in events) == 2 * len(SYMBOLS), 15)
        await asyncio.sleep(0.3)

    events, conn, sim = asyncio.run(feed(tmp_path, scenario, liveness_timeout=1.5))
    states = [e.state for e in events if isinstance(e, ConnectionStatus)]
    assert states[:3] == ["connected", "disconnected", "connected"]
    trades = [int(e.trade_id) for e in events if isinstance(e, Trade) and e.symbol == "BTC-USD"]
    assert trades == sorted(trades) and len(set(trades)) == len(trades)  # never a trade twice
    assert_books_match(tmp_path, sim, events, conn, 10)


def test_quiet_market_keeps_the_connection_alive_with_heartbeats(tmp_path: Path) -> None:
    async def main() -> None:
        sim = Simulator(SimulatorSettings(rate=0.1, levels=20), {"kraken": SYMBOLS[:1]}, tmp_path / "truth.jsonl")
        await sim.start()
        events: list[Event] = []
        conn = FeedConnection(
            dataclasses.replace(SPEC, liveness_timeout=1.5), SYMBOLS[:1], ("book",), events.append, "q0",
            ws_url=sim.ws_url("kraken"),
        )  # fmt: skip
        task = asyncio.create_task(conn.run())
        await asyncio.sleep(4.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
        assert [e.state for e in events if isinstance(e, ConnectionStatus)] == ["connected", "disconnected"]
        # status, 3 acks, the instrument and book snapshots, then (the market being quiet) heartbeats
        assert conn.stats.frames >= 6 + 3

    run(main)
