"""A recorded Coinbase Advanced Trade session, built from the messages protocols.md section D documents
(the level2 snapshot, market_trades snapshot, heartbeats and subscriptions examples, hummingbot's real
level2 update, ccxt issue #27606's real market_trades update), replayed through the live codec and
book sync with `tools.replay`: the books and trades it yields, and the summary."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ingest.errors import InputError
from ingest.events import BookDelta, BookSnapshot, Trade
from tools.replay import replay, replay_events

WS = "wss://advanced-trade-ws.coinbase.com"


def envelope(channel: str, seq: int, stamp: str, events: str) -> str:
    return f'{{"channel":"{channel}","client_id":"","timestamp":"{stamp}","sequence_num":{seq},"events":[{events}]}}'


def level(side: str, price: str, qty: str, time: str = "1970-01-01T00:00:00Z") -> str:
    return f'{{"side":"{side}","event_time":"{time}","price_level":"{price}","new_quantity":"{qty}"}}'


def l2(kind: str, product: str, *levels: str) -> str:
    return f'{{"type":"{kind}","product_id":"{product}","updates":[{",".join(levels)}]}}'


def trade(tid: str, product: str, price: str, size: str, side: str, time: str) -> str:
    return (
        f'{{"trade_id":"{tid}","product_id":"{product}","price":"{price}","size":"{size}","side":"{side}",'
        f'"time":"{time}"}}'
    )


T1 = "2024-10-08T09:10:35.171517Z"
SESSION = [
    f"{WS} <-> 1700000000.0",
    f'{WS} <- 1700000000.01: {{"type":"subscribe","channel":"heartbeats"}}',
    f'{WS} <- 1700000000.02: {{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"level2"}}',
    f'{WS} <- 1700000000.03: {{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"market_trades"}}',
    "1700000000.1: "
    + envelope("subscriptions", 0, "2026-04-07T14:30:00.000000Z",
               '{"subscriptions":{"level2":["BTC-USD"],"market_trades":["BTC-USD","ETH-USD"]}}'),
    # The docs' level2 snapshot (its two bids), with two offers added so both sides are exercised.
    "1700000000.2: "
    + envelope("l2_data", 1, "2023-02-09T20:32:50.714964855Z",
               l2("snapshot", "BTC-USD", level("bid", "21921.73", "0.06317902"), level("bid", "21921.3", "0.02"),
                  level("offer", "21922.5", "0.5"), level("offer", "21923", "1.25"))),
    "1700000000.3: "
    + envelope("l2_data", 2, "2023-02-09T20:32:50.8Z",
               l2("snapshot", "ETH-USD", level("bid", "1260", "3"), level("offer", "1260.02", "4"))),
    # The docs' market_trades snapshot.
    "1700000000.4: "
    + envelope("market_trades", 3, "2023-02-09T20:19:35.39625135Z",
               '{"type":"snapshot","trades":['
               + trade("000000000", "ETH-USD", "1260.01", "0.3", "BUY", "2019-08-14T20:42:27.265Z") + "]}"),
    # The docs' heartbeat.
    "1700000000.5: "
    + envelope("heartbeats", 4, "2023-06-23T20:31:56.121961769Z",
               '{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",'
               '"heartbeat_counter":"3049"}'),
    # hummingbot's real update (a bid and an offer; captured a year after the docs' snapshot, so the
    # book it leaves is crossed: the replay applies what it is given), then one that deletes a level
    # and one for two products.
    "1700000000.6: "
    + envelope("l2_data", 5, "2024-10-08T09:10:36.120390407Z",
               l2("update", "BTC-USD", level("bid", "62317.89", "0.032355", T1),
                  level("offer", "62394.77", "0.0170024", T1))),
    "1700000000.7: "
    + envelope("l2_data", 6, "2024-10-08T09:10:36.2Z",
               l2("update", "BTC-USD", level("bid", "21921.3", "0", T1), level("offer", "21923", "0.75", T1))
               + "," + l2("update", "ETH-USD", level("bid", "1260", "0", T1), level("bid", "1259.5", "1", T1))),
    # A repeated sequence_num: a duplicate, ignored (its change must not land).
    "1700000000.8: "
    + envelope("l2_data", 6, "2024-10-08T09:10:36.2Z", l2("update", "BTC-USD", level("bid", "1", "1", T1))),
    # ccxt issue #27606's real market_trades message (newest first; two of its four trades).
    "1700000000.9: "
    + envelope("market_trades", 7, "2025-12-31T06:00:13.715382929Z",
               '{"type":"update","trades":['
               + trade("929248663", "BTC-USD", "88355.58", "0.00003338", "BUY", "2025-12-31T06:00:13.654578Z") + ","
               + trade("929248662", "BTC-USD", "88355.59", "0.00099993", "SELL", "2025-12-31T06:00:13.613311Z")
               + "]}"),
    "1700000001.0: "
    + envelope("heartbeats", 8, "2023-06-23T20:31:57.121961769Z",
               '{"current_time":"2023-06-23 20:31:57.121961769 +0000 UTC m=+91718.525857105",'
               '"heartbeat_counter":"3050"}'),
]  # fmt: skip


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "coinbase.ws"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_documented_session_replays_to_the_books_and_trades_it_describes(tmp_path: Path) -> None:
    path = write(tmp_path, SESSION)
    assert replay("coinbase", [path]) == {
        "exchange": "coinbase",
        "frames": 10,
        "decode_errors": 0,
        "symbols": {
            "BTC-USD": {
                "book_messages": 3, "checksums_verified": 0, "checksum_failures": 0, "gaps": 0, "resyncs": 0,
                "trades": 2, "best_bid": ["62317.89", "0.032355"], "best_ask": ["21922.5", "0.5"],
                "bid_levels": 2, "ask_levels": 3,
            },
            "ETH-USD": {
                "book_messages": 2, "checksums_verified": 0, "checksum_failures": 0, "gaps": 0, "resyncs": 0,
                "trades": 1, "best_bid": ["1259.5", "1"], "best_ask": ["1260.02", "4"],
                "bid_levels": 1, "ask_levels": 1,
            },
        },
    }  # fmt: skip
    events = list(replay_events("coinbase", [path]))
    books: dict[str, dict[str, dict[Decimal, str]]] = {}
    for ev in events:
        if isinstance(ev, BookSnapshot):
            books[ev.symbol] = {"b": {Decimal(p): q for p, q in ev.bids}, "a": {Decimal(p): q for p, q in ev.asks}}
        elif isinstance(ev, BookDelta):
            for side, levels in (("b", ev.bids), ("a", ev.asks)):
                for p, q in levels:
                    if q == "0":
                        books[ev.symbol][side].pop(Decimal(p), None)
                    else:
                        books[ev.symbol][side][Decimal(p)] = q
    assert books["BTC-USD"] == {
        "b": {Decimal("21921.73"): "0.06317902", Decimal("62317.89"): "0.032355"},
        "a": {Decimal("21922.5"): "0.5", Decimal("21923"): "0.75", Decimal("62394.77"): "0.0170024"},
    }
    assert books["ETH-USD"] == {"b": {Decimal("1259.5"): "1"}, "a": {Decimal("1260.02"): "4"}}
    trades = [(e.symbol, e.trade_id, e.price, e.qty, e.side) for e in events if isinstance(e, Trade)]
    assert trades == [
        ("ETH-USD", "000000000", "1260.01", "0.3", "sell"),
        ("BTC-USD", "929248662", "88355.59", "0.00099993", "buy"),
        ("BTC-USD", "929248663", "88355.58", "0.00003338", "sell"),
    ]


def test_a_resubscribe_after_a_sequence_hole_replaces_the_book(tmp_path: Path) -> None:
    """sequence_num jumps 8 -> 10 (a lost message); the client resubscribed level2 and the new
    snapshot replaced the book: what came before it is gone."""
    lines = [
        *SESSION,
        "1700000001.1: "
        + envelope("l2_data", 10, "2024-10-08T09:10:37Z", l2("update", "BTC-USD", level("bid", "5", "5", T1))),
        f'{WS} <- 1700000001.2: {{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}}',
        f'{WS} <- 1700000001.21: {{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}}',
        "1700000001.3: " + envelope("subscriptions", 11, "2024-10-08T09:10:37.1Z", '{"subscriptions":{}}'),
        "1700000001.4: "
        + envelope("l2_data", 12, "2024-10-08T09:10:37.2Z",
                   l2("snapshot", "BTC-USD", level("bid", "62300", "1"), level("offer", "62400", "2"))),
    ]  # fmt: skip
    summary = replay("coinbase", [write(tmp_path, lines)])
    btc = summary["symbols"]["BTC-USD"]
    assert (btc["best_bid"], btc["best_ask"], btc["bid_levels"], btc["ask_levels"]) == (
        ["62300", "1"], ["62400", "2"], 1, 1,
    )  # fmt: skip
    # The hole made every book of the connection suspect, as the live runner does.
    assert [summary["symbols"][s]["resyncs"] for s in ("BTC-USD", "ETH-USD")] == [1, 1]


def test_a_recording_from_another_exchange_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, ["wss://ws.kraken.com/v2 <-> 1", SESSION[5].replace("1700000000.2", "2")])
    with pytest.raises(InputError, match="not a coinbase host"):
        replay("coinbase", [path])
