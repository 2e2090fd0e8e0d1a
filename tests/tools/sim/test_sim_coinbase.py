"""The Coinbase simulator over real loopback sockets: aiohttp clients against the real server, no mocks."""

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
from tools.sim.exchanges.coinbase import check_options
from tools.sim.server import Simulator
from tools.sim.truth import load_truth

SYMBOLS = ["BTC-USD", "ETH-USD"]


run = live.run


def simulator(
    tmp_path: Path, options: dict[str, Any] | None = None, **settings: Any
) -> AbstractAsyncContextManager[Simulator]:
    return live.simulated(tmp_path, {"coinbase": SYMBOLS}, {"coinbase": options or {}}, **settings)


def sub(channel: str, *products: str, kind: str = "subscribe") -> str:
    body: dict[str, Any] = {"type": kind}
    if products:
        body["product_ids"] = list(products)
    return orjson.dumps(body | {"channel": channel}).decode()


class Reader(live.Reader):
    def channel(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.json() if m.get("channel") == name]

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.json() if m.get("type") == "error"]


def rebuild(messages: list[dict[str, Any]], product: str) -> OrderBook:
    """Apply a product's level2 events by Coinbase's rules: a snapshot replaces, updates set absolute
    sizes, "0" removes."""
    book = OrderBook()
    for msg in messages:
        for ev in msg["events"]:
            if ev["product_id"] != product:
                continue
            bids = [(u["price_level"], u["new_quantity"]) for u in ev["updates"] if u["side"] == "bid"]
            asks = [(u["price_level"], u["new_quantity"]) for u in ev["updates"] if u["side"] == "offer"]
            assert all(u["side"] in ("bid", "offer") for u in ev["updates"])
            if ev["type"] == "snapshot":
                book.replace(bids, asks)
            else:
                book.apply(bids, asks)
    return book


def test_one_counter_per_connection_books_trades_and_heartbeats(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path, {"heartbeat_interval": 0.1}) as sim, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(sim.ws_url("coinbase"))
            r = Reader(ws)
            for frame in (sub("heartbeats"), sub("level2", *SYMBOLS), sub("market_trades", *SYMBOLS)):
                await ws.send_str(frame)
            await r.until(lambda: len(r.channel("heartbeats")) >= 5 and len(r.channel("market_trades")) >= 5)
            frozen = await sim.freeze()
            await asyncio.sleep(0.3)
            msgs = r.json()
            # One counter across every channel, from 0, +1 a message.
            assert [m["sequence_num"] for m in msgs] == list(range(len(msgs)))
            assert {m["channel"] for m in msgs} == {"subscriptions", "heartbeats", "l2_data", "market_trades"}
            acks = r.channel("subscriptions")
            assert acks[-1]["events"] == [
                {"subscriptions": {"level2": SYMBOLS, "market_trades": SYMBOLS, "heartbeats": []}}
            ]
            # level2: one snapshot per product (epoch event_time), then multi-product updates.
            l2 = r.channel("l2_data")
            snaps = [e for m in l2 for e in m["events"] if e["type"] == "snapshot"]
            assert [e["product_id"] for e in snaps] == SYMBOLS
            assert {u["event_time"] for e in snaps for u in e["updates"]} == {"1970-01-01T00:00:00Z"}
            assert any(len(m["events"]) == 2 for m in l2), "several products share a message"
            for symbol in SYMBOLS:
                book = rebuild(l2, symbol)
                bids, asks = sim.venues["coinbase"].markets[symbol].book()
                assert book.depth() == (bids, asks), symbol
            # Heartbeats: every 0.1 s, the counter a string, +1 each.
            beats = [int(m["events"][0]["heartbeat_counter"]) for m in r.channel("heartbeats")]
            assert beats == list(range(1, len(beats) + 1))
            assert isinstance(r.channel("heartbeats")[0]["events"][0]["heartbeat_counter"], str)
            # Trades: a snapshot of recent trades first, then every trade, newest first per message;
            # side is the maker's, the opposite of the truth's taker side.
            trades_msgs = r.channel("market_trades")
            assert trades_msgs[0]["events"][0]["type"] == "snapshot"
            truth = load_truth(tmp_path / "truth.jsonl")
            for symbol in SYMBOLS:
                live_rows = [
                    t for m in trades_msgs[1:] for e in m["events"] for t in e["trades"] if t["product_id"] == symbol
                ]
                got = sorted((int(t["trade_id"]), t["price"], t["size"], t["side"]) for t in live_rows)
                maker = {"buy": "SELL", "sell": "BUY"}
                expected = [(t.trade_id, t.price, t.qty, maker[t.side]) for t in truth.trades[("coinbase", symbol)]]
                assert len(expected) > 5 and got == expected
                assert frozen["last_trade_ids"]["coinbase"][symbol] == expected[-1][0]

    run(go)


def test_trades_within_a_message_are_newest_first(tmp_path: Path) -> None:
    async def go() -> None:
        options = {"snapshot_older_trades": True}
        async with simulator(tmp_path, options, rate=2000.0, trade_ratio=0.9) as sim, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(sim.ws_url("coinbase"))
            r = Reader(ws)
            await asyncio.sleep(0.3)  # recent trades for the snapshot
            await ws.send_str(sub("market_trades", "BTC-USD"))
            await r.until(lambda: len(r.channel("market_trades")) >= 10)
            snapshot = r.channel("market_trades")[0]["events"][0]
            assert snapshot["type"] == "snapshot" and len(snapshot["trades"]) == 50
            for m in r.channel("market_trades"):
                ids = [int(t["trade_id"]) for e in m["events"] for t in e["trades"]]
                assert ids == sorted(ids, reverse=True)
            assert any(len(m["events"][0]["trades"]) > 1 for m in r.channel("market_trades")[1:])

    run(go)


def test_the_trades_snapshot_holds_nothing_from_before_the_first_subscription(tmp_path: Path) -> None:
    """By default (the truth log starts at the first subscription): the first subscriber's snapshot is
    empty, a later one's holds the trades since."""

    async def go() -> None:
        async with simulator(tmp_path, rate=500.0) as sim, aiohttp.ClientSession() as http:
            await asyncio.sleep(0.3)
            first = Reader(await http.ws_connect(sim.ws_url("coinbase")))
            await first.ws.send_str(sub("market_trades", "BTC-USD"))
            await first.until(lambda: len(first.channel("market_trades")) >= 5)
            second = Reader(await http.ws_connect(sim.ws_url("coinbase")))
            await second.ws.send_str(sub("market_trades", "BTC-USD"))
            await second.until(lambda: len(second.channel("market_trades")) >= 1)
            assert first.channel("market_trades")[0]["events"] == [{"type": "snapshot", "trades": []}]
            snapshot = [int(t["trade_id"]) for t in second.channel("market_trades")[0]["events"][0]["trades"]]
            live_ids = [int(t["trade_id"]) for m in first.channel("market_trades")[1:] for e in m["events"]
                        for t in e["trades"]]  # fmt: skip
            assert snapshot and snapshot == sorted(snapshot, reverse=True) and len(snapshot) <= 50
            assert min(snapshot) >= min(live_ids)  # nothing from before the first subscription

    run(go)


def test_skip_leaves_a_hole_in_sequence_num_and_the_changes_out(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path, {"heartbeat_interval": 0.05}) as sim, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(sim.ws_url("coinbase"))
            r = Reader(ws)
            for frame in (sub("heartbeats"), sub("level2", *SYMBOLS)):
                await ws.send_str(frame)
            await r.until(lambda: len(r.channel("l2_data")) >= 10)
            sim.fault("skip", "coinbase", symbol="ETH-USD", count=4)
            status = lambda: sim.status()["exchanges"]["coinbase"]  # noqa: E731
            await r.until(lambda: not status()["skip_pending"])
            await sim.freeze()
            await asyncio.sleep(0.3)
            assert status()["skipped"] == {"ETH-USD": 4} and status()["holes"] >= 1
            seqs = [m["sequence_num"] for m in r.json()]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            holes = [(a, b) for a, b in pairwise(seqs) if b != a + 1]
            assert holes and all(b == a + 2 for a, b in holes)  # one lost message per skipping tick
            market = sim.venues["coinbase"].markets
            # Only ETH's changes are missing: BTC's book is whole, ETH's is not.
            assert rebuild(r.channel("l2_data"), "BTC-USD").depth() == market["BTC-USD"].book()
            assert rebuild(r.channel("l2_data"), "ETH-USD").depth() != market["ETH-USD"].book()
            # A resubscribe brings a snapshot that is whole again.
            await ws.send_str(sub("level2", "ETH-USD", kind="unsubscribe"))
            await ws.send_str(sub("level2", "ETH-USD"))
            await r.until(lambda: sum(e["type"] == "snapshot" for m in r.channel("l2_data") for e in m["events"]) == 3)
            assert rebuild(r.channel("l2_data"), "ETH-USD").depth() == market["ETH-USD"].book()

    run(go)


def test_idle_close_spares_a_client_that_subscribed_heartbeats(tmp_path: Path) -> None:
    """A still market: the raw client without heartbeats is closed after ``idle_close``; the one with
    heartbeats stays; one that never subscribes is closed after ``subscribe_timeout``."""

    async def go() -> None:
        options = {"idle_close": 0.6, "subscribe_timeout": 0.4, "heartbeat_interval": 0.1}
        async with simulator(tmp_path, options, rate=0.001) as sim, aiohttp.ClientSession() as http:
            loop = asyncio.get_running_loop()
            raw, beating, silent = [Reader(await http.ws_connect(sim.ws_url("coinbase"))) for _ in range(3)]
            start = loop.time()
            await raw.ws.send_str(sub("level2", "BTC-USD"))
            await beating.ws.send_str(sub("heartbeats"))
            await beating.ws.send_str(sub("level2", "BTC-USD"))
            await silent.until(lambda: silent.end is not None, timeout=5)
            assert 0.3 < silent.msgs[-1][0] - start < 1.5
            await raw.until(lambda: raw.end is not None, timeout=5)
            closed_after = raw.msgs[-1][0] - start
            assert 0.5 < closed_after < 2.0, closed_after
            assert raw.end is not None and raw.end.type is aiohttp.WSMsgType.CLOSE
            await asyncio.sleep(1.5)
            assert beating.end is None and not beating.ws.closed
            assert len(beating.channel("heartbeats")) >= 10
            status = sim.status()["exchanges"]["coinbase"]
            assert (status["idle_closes"], status["subscribe_timeouts"]) == (1, 1)

    run(go)


def test_bad_requests_get_an_error_and_no_sequence_num(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            r = Reader(await http.ws_connect(sim.ws_url("coinbase")))
            bad = [
                ('{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2","heartbeats"]}', "one channel"),
                (sub("level2", "DOGE-USD"), "unknown product 'DOGE-USD'"),
                (sub("ticker", "BTC-USD"), "unknown channel 'ticker'"),
                (sub("level2"), "no product_ids for level2"),
                ('{"type":"hello"}', "unknown type"),
                ("nope", "malformed JSON"),
            ]
            for n, (frame, reason) in enumerate(bad):
                await r.ws.send_str(frame)
                await r.until(lambda n=n: len(r.errors()) > n)
                error = r.errors()[-1]
                assert set(error) == {"type", "message", "reason"} and error["message"] == "Failed to subscribe"
                assert reason in error["reason"]
            await r.ws.send_str(sub("heartbeats"))
            await r.until(lambda: bool(r.channel("subscriptions")))
            assert r.channel("subscriptions")[0]["sequence_num"] == 0
            assert sim.status()["exchanges"]["coinbase"]["subscriptions"] == {}

    run(go)


def test_unsubscribe_with_no_products_ends_the_whole_channel(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path) as sim, aiohttp.ClientSession() as http:
            r = Reader(await http.ws_connect(sim.ws_url("coinbase")))
            await r.ws.send_str(sub("level2", *SYMBOLS))
            await r.ws.send_str(sub("market_trades", "BTC-USD"))
            await r.until(lambda: len(r.channel("subscriptions")) == 2)
            await r.ws.send_str(sub("level2", kind="unsubscribe"))
            await r.until(lambda: len(r.channel("subscriptions")) == 3)
            assert r.channel("subscriptions")[-1]["events"] == [{"subscriptions": {"market_trades": ["BTC-USD"]}}]
            assert sim.status()["exchanges"]["coinbase"]["subscriptions"] == {"market_trades:BTC-USD": 1}

    run(go)


def test_channel_scope_counts_per_channel(tmp_path: Path) -> None:
    async def go() -> None:
        options = {"sequence_scope": "channel", "heartbeat_interval": 0.05}
        async with simulator(tmp_path, options) as sim, aiohttp.ClientSession() as http:
            r = Reader(await http.ws_connect(sim.ws_url("coinbase")))
            for frame in (sub("heartbeats"), sub("level2", *SYMBOLS), sub("market_trades", *SYMBOLS)):
                await r.ws.send_str(frame)
            await r.until(lambda: len(r.channel("heartbeats")) >= 5 and len(r.channel("l2_data")) >= 5)
            for channel in ("subscriptions", "heartbeats", "l2_data", "market_trades"):
                seqs = [m["sequence_num"] for m in r.channel(channel)]
                assert seqs == list(range(len(seqs))), channel

    run(go)


def test_rest_public_market_trades(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator(tmp_path, rate=500.0) as sim, aiohttp.ClientSession() as http:
            await asyncio.sleep(1.2)
            await sim.freeze()
            base = f"{sim.rest_url('coinbase')}/api/v3/brokerage/market/products"
            async with http.get(f"{base}/BTC-USD/ticker?limit=1000") as resp:
                assert resp.status == 200
                body = await resp.json()
            held = list(sim.venues["coinbase"].trades["BTC-USD"])
            ids = [int(t["trade_id"]) for t in body["trades"]]
            assert ids == sorted((t.trade_id for t, _ in held), reverse=True)[:1000]
            assert set(body) == {"trades", "best_bid", "best_ask"}
            row = body["trades"][0]
            newest, ts = held[-1]
            assert row == {
                "trade_id": str(newest.trade_id), "product_id": "BTC-USD", "price": newest.price,
                "size": newest.qty, "side": {"buy": "SELL", "sell": "BUY"}[newest.side],
                "time": row["time"], "exchange": "coinbase",
            }  # fmt: skip
            # end is exclusive, start inclusive, in whole seconds.
            end = ts // 1_000_000_000
            async with http.get(f"{base}/BTC-USD/ticker?limit=5&end={end}") as resp:
                page = (await resp.json())["trades"]
            expected = [t.trade_id for t, s in held if s // 1_000_000_000 < end][-5:][::-1]
            assert [int(t["trade_id"]) for t in page] == expected
            async with http.get(f"{base}/BTC-USD/ticker?limit=1000&start={end}") as resp:
                page = (await resp.json())["trades"]
            assert [int(t["trade_id"]) for t in page] == [t.trade_id for t, s in held if s // 10**9 >= end][::-1]
            for url, status in (
                (f"{base}/DOGE-USD/ticker?limit=5", 404),
                (f"{base}/BTC-USD/ticker", 400),
                (f"{base}/BTC-USD/ticker?limit=5000", 400),
                (f"{base}/BTC-USD/ticker?limit=x", 400),
            ):
                async with http.get(url) as resp:
                    assert resp.status == status, url

    run(go)


def test_options_are_checked() -> None:
    assert check_options({}) == {
        "idle_close": 75.0, "subscribe_timeout": 5.0, "heartbeat_interval": 1.0,
        "sequence_scope": "connection", "snapshot_trades": 50, "snapshot_older_trades": False,
    }  # fmt: skip
    assert check_options({"idle_close": 2, "sequence_scope": "channel"})["idle_close"] == 2.0
    for raw, error in (
        ({"idle": 1}, "unknown coinbase simulator option"),
        ({"idle_close": 0}, "'idle_close' must be a number of seconds above 0"),
        ({"idle_close": True}, "'idle_close' must be a number"),
        ({"sequence_scope": "product"}, "'sequence_scope' must be one of"),
        ({"snapshot_trades": -1}, "'snapshot_trades' must be a whole number"),
        ({"snapshot_older_trades": 1}, "'snapshot_older_trades' must be true or false"),
    ):
        with pytest.raises(ValueError, match=error):
            check_options(raw)
