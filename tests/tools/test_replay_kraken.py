"""Replay of the real Kraken v1 recordings (trade, ticker and book-1000 connections) through the
codec chosen by the recorded URL and the live book sync, checked against an independent rebuild
(plain dicts, Decimal, zlib, the documented procedure); and a small v2 session through the v2 codec."""

from __future__ import annotations

import json
import zlib
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest.events import BookDelta, BookSnapshot, Trade
from tools.replay import replay, replay_events

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RECORDINGS = SHARED / "recordings" / "cryptofeed"
FILES = [RECORDINGS / f"KRAKEN.ws.{n}.0" for n in (48, 49, 50)]
CHECKSUMMED_UPDATES = 4269  # updates carrying "c" in KRAKEN.ws.50.0
CANONICAL = {"XBT": "BTC", "XDG": "DOGE"}


def canonical(pair: str) -> str:
    base, quote = pair.split("/")
    return f"{CANONICAL.get(base, base)}-{CANONICAL.get(quote, quote)}"


def crc(bids: dict[Decimal, tuple[str, str]], asks: dict[Decimal, tuple[str, str]]) -> int:
    def digits(text: str) -> str:
        return text.replace(".", "").lstrip("0")

    top_asks = [asks[p] for p in sorted(asks)[:10]]
    top_bids = [bids[p] for p in sorted(bids, reverse=True)[:10]]
    return zlib.crc32("".join(digits(p) + digits(q) for p, q in top_asks + top_bids).encode()) & 0xFFFFFFFF


def expected_from_the_files() -> dict[str, Any]:
    """Rebuild every book the way Kraken documents it, without the code under test."""
    frames = 0
    trades: Counter[str] = Counter()
    book_messages: Counter[str] = Counter()
    books: dict[str, dict[str, dict[Decimal, tuple[str, str]]]] = {}
    depth: dict[str, int] = {}
    verified = 0
    for path in FILES:
        for line in path.read_text().splitlines():
            head, sep, payload = line.partition(": ")
            if not sep or not head[0].isdigit():
                continue
            frames += 1
            msg = json.loads(payload)
            if not isinstance(msg, list):
                continue
            name, pair = msg[-2], msg[-1]
            if name == "trade":
                trades[canonical(pair)] += len(msg[1])
            elif name.startswith("book-"):
                symbol = canonical(pair)
                depth[symbol] = int(name.split("-")[1])
                book_messages[symbol] += 1
                if "as" in msg[1]:
                    snap = msg[1]
                    books[symbol] = {
                        "b": {Decimal(p): (p, q) for p, q, _ in snap["bs"]},
                        "a": {Decimal(p): (p, q) for p, q, _ in snap["as"]},
                    }
                    continue
                checksum = None
                for part in msg[1:-2]:
                    for side in ("a", "b"):
                        for p, q, *_ in part.get(side, []):
                            if Decimal(q) == 0:
                                books[symbol][side].pop(Decimal(p), None)
                            else:
                                books[symbol][side][Decimal(p)] = (p, q)
                    checksum = part.get("c", checksum)
                for side, best_last in (("b", False), ("a", True)):
                    keep = sorted(books[symbol][side], reverse=not best_last)[: depth[symbol]]
                    books[symbol][side] = {p: books[symbol][side][p] for p in keep}
                if checksum is not None:
                    assert crc(books[symbol]["b"], books[symbol]["a"]) == int(checksum), "recording inconsistent"
                    verified += 1
    symbols = {}
    for symbol in sorted(set(trades) | set(book_messages)):
        bids, asks = books.get(symbol, {}).get("b", {}), books.get(symbol, {}).get("a", {})
        symbols[symbol] = {
            "book_messages": book_messages[symbol],
            "trades": trades[symbol],
            "best_bid": list(bids[max(bids)]) if bids else None,
            "best_ask": list(asks[min(asks)]) if asks else None,
            "bid_levels": len(bids),
            "ask_levels": len(asks),
        }
    return {"frames": frames, "verified": verified, "symbols": symbols}


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return replay("kraken", FILES)


def test_every_checksummed_update_is_verified(result: dict[str, Any]) -> None:
    per_symbol = result["symbols"].values()
    assert sum(s["checksums_verified"] for s in per_symbol) == CHECKSUMMED_UPDATES
    assert sum(s["checksum_failures"] for s in per_symbol) == 0
    assert all((s["gaps"], s["resyncs"]) == (0, 0) for s in per_symbol)
    assert expected_from_the_files()["verified"] == CHECKSUMMED_UPDATES


def test_replay_matches_an_independent_rebuild(result: dict[str, Any]) -> None:
    expected = expected_from_the_files()
    assert (result["exchange"], result["frames"], result["decode_errors"]) == ("kraken", expected["frames"], 0)
    assert sorted(result["symbols"]) == sorted(expected["symbols"])
    for symbol, want in expected["symbols"].items():
        got = result["symbols"][symbol]
        assert {k: got[k] for k in want} == want, symbol
        # v1 sends checksums on updates only: every book message but the snapshot is verified.
        assert got["checksums_verified"] == got["book_messages"] - 1, symbol


def test_absolute_anchors(result: dict[str, Any]) -> None:
    """A few values read off the recording by hand, so the rebuild above cannot drift with the code."""
    xmr, btc, sc = result["symbols"]["XMR-USD"], result["symbols"]["BTC-CHF"], result["symbols"]["SC-EUR"]
    assert (xmr["best_bid"], xmr["best_ask"]) == (["353.64000000", "30.30000000"], ["354.48000000", "6.86050247"])
    assert (btc["best_bid"], btc["best_ask"]) == (["56060.30000", "0.05804973"], ["56194.20000", "0.01700000"])
    assert (xmr["trades"], sc["trades"], btc["trades"]) == (4, 6, 0)
    # The book-1000 subscription is replayed at depth 1000, not the live default of 10.
    assert (xmr["bid_levels"], xmr["ask_levels"]) == (657, 426)
    assert "XBT-CHF" not in result["symbols"]  # v1's XBT is BTC canonically


def test_result_is_json_serialisable(result: dict[str, Any]) -> None:
    assert json.loads(json.dumps(result)) == result


def test_trades_are_published_with_content() -> None:
    trades = [e for e in replay_events("kraken", FILES) if isinstance(e, Trade)]
    assert len(trades) == 10
    first = trades[0]
    assert (first.symbol, first.native, first.trade_id, first.price, first.qty, first.side) == (
        "XMR-USD", "XMR/USD", "1618678142.557535-0", "354.11000000", "0.89594024", "sell",
    )  # fmt: skip
    assert (first.ts_exchange, first.ts_recv) == (1618678142_557535000, 1618678142_592855000)


def test_books_are_published_snapshot_first_and_carry_their_checksums() -> None:
    seen: dict[str, int] = defaultdict(int)
    for event in replay_events("kraken", FILES):
        if isinstance(event, BookSnapshot):
            assert seen[event.symbol] == 0 and event.checksum is None
            seen[event.symbol] += 1
        elif isinstance(event, BookDelta):
            assert seen[event.symbol] >= 1 and event.checksum is not None
            seen[event.symbol] += 1
    assert sum(seen.values()) == CHECKSUMMED_UPDATES + 10


def test_a_v2_session_replays_through_the_v2_codec(tmp_path: Path) -> None:
    bids, asks = [("45283.5", "0.10000000")], [("45285.2", "0.00100000")]
    after = [("45283.5", "0.10000000"), ("45283.0", "2.00000000")]

    def checksum(b: list[tuple[str, str]], a: list[tuple[str, str]]) -> int:
        text = "".join(p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0") for p, q in a[:10] + b[:10])
        return zlib.crc32(text.encode()) & 0xFFFFFFFF

    stamp = "2023-10-06T17:35:55.440295Z"
    lines = [
        "wss://ws.kraken.com/v2 <-> 1",
        'wss://ws.kraken.com/v2 <- 1.1: {"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"]}}',
        '2: {"channel":"instrument","type":"snapshot","data":{"pairs":[{"symbol":"BTC/USD","price_precision":1,'
        '"qty_precision":8}]}}',
        '3: {"method":"subscribe","result":{"channel":"book","depth":25,"snapshot":true,"symbol":"BTC/USD"},'
        '"success":true}',
        f'4: {{"channel":"book","type":"snapshot","data":[{{"symbol":"BTC/USD","bids":[{{"price":45283.5,"qty":0.1}}],'
        f'"asks":[{{"price":45285.2,"qty":0.001}}],"checksum":{checksum(bids, asks)},"timestamp":"{stamp}"}}]}}',
        f'5: {{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","bids":[{{"price":45283.0,"qty":2}}],'
        f'"asks":[{{"price":45285.2,"qty":0}}],"checksum":{checksum(after, [])},"timestamp":"{stamp}"}}]}}',
        '6: {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":45283.5,'
        f'"qty":0.05,"ord_type":"market","trade_id":42,"timestamp":"{stamp}"}}]}}',
        '7: {"channel":"heartbeat"}',
    ]
    path = tmp_path / "v2"
    path.write_text("\n".join(lines) + "\n")
    assert replay("kraken", [path]) == {
        "exchange": "kraken",
        "frames": 6,
        "decode_errors": 0,
        "symbols": {
            "BTC-USD": {
                "book_messages": 2, "checksums_verified": 2, "checksum_failures": 0, "gaps": 0, "resyncs": 0,
                "trades": 1, "best_bid": ["45283.5", "0.10000000"], "best_ask": None,
                "bid_levels": 2, "ask_levels": 0,
            }
        },
    }  # fmt: skip
    [trade] = [e for e in replay_events("kraken", [path]) if isinstance(e, Trade)]
    assert (trade.trade_id, trade.price, trade.qty, trade.side) == ("42", "45283.5", "0.05000000", "sell")
