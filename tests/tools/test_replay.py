"""Replay of the real Binance recording through the live codec and book sync, checked against an
independent re-implementation (plain dicts, Decimal, the documented procedure), and the replay's
handling of snapshots, gaps, bad frames and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest.errors import InputError
from ingest.events import BookDelta, BookSnapshot, Trade
from tools import replay as replay_module
from tools.replay import replay, replay_events

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RECORDINGS = SHARED / "recordings" / "cryptofeed"
FILES = [RECORDINGS / "BINANCE.ws.1.0", RECORDINGS / "BINANCE.http.0.0"]
VECTORS = json.loads((SHARED / "vectors" / "checksums.json").read_text())["binance_sync"]
CANONICAL = {"NKNUSDT": "NKN-USDT", "BLZETH": "BLZ-ETH", "LRCBTC": "LRC-BTC", "RUNEEUR": "RUNE-EUR"}


def expected_from_the_files() -> dict[str, Any]:
    """Rebuild each book the way Binance documents it, without the code under test."""
    snapshots: dict[str, Any] = {}
    for line in FILES[1].read_text().splitlines():
        if line:
            head, _, body = line.partition(": ")
            native = head.split("symbol=")[1].split("&")[0]
            snapshots[native] = json.loads(body)
    updates: dict[str, list[dict[str, Any]]] = defaultdict(list)
    trades: Counter[str] = Counter()
    frames = 0
    for line in FILES[0].read_text().splitlines()[1:]:
        if not line:
            continue
        frames += 1
        data = json.loads(line.partition(": ")[2])["data"]
        if data.get("e") == "depthUpdate":
            updates[data["s"]].append(data)
        elif data.get("e") == "aggTrade":
            trades[data["s"]] += 1
    symbols: dict[str, Any] = {}
    for native, snap in snapshots.items():
        sides = {
            side: {Decimal(p): (p, q) for p, q in snap[key]} for side, key in (("b", "bids"), ("a", "asks"))
        }
        last = snap["lastUpdateId"]
        first_applied = None
        for update in updates[native]:
            if update["u"] <= last:
                continue
            if first_applied is None:
                assert update["U"] <= last + 1 <= update["u"]
                first_applied = (update["U"], update["u"])
            else:
                assert update["U"] == last + 1, "the recording itself has a gap"
            for side in ("b", "a"):
                for price, qty in update[side]:
                    if Decimal(qty) == 0:
                        sides[side].pop(Decimal(price), None)
                    else:
                        sides[side][Decimal(price)] = (price, qty)
            last = update["u"]
        bids, asks = sides["b"], sides["a"]
        symbols[CANONICAL[native]] = {
            "first_applied": first_applied,
            "book_messages": len(updates[native]),
            "trades": trades[native],
            "best_bid": list(bids[max(bids)]) if bids else None,
            "best_ask": list(asks[min(asks)]) if asks else None,
            "bid_levels": len(bids),
            "ask_levels": len(asks),
        }
    return {"frames": frames, "symbols": symbols}


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return replay("binance", FILES)


def test_replay_matches_an_independent_rebuild(result: dict[str, Any]) -> None:
    expected = expected_from_the_files()
    assert (result["exchange"], result["frames"], result["decode_errors"]) == (
        "binance",
        expected["frames"],
        0,
    )
    assert sorted(result["symbols"]) == sorted(CANONICAL.values())
    for symbol, want in expected["symbols"].items():
        got = result["symbols"][symbol]
        assert got == {
            "book_messages": want["book_messages"],
            "checksums_verified": 0,
            "checksum_failures": 0,
            "gaps": 0,
            "resyncs": 0,
            "trades": want["trades"],
            "best_bid": want["best_bid"],
            "best_ask": want["best_ask"],
            "bid_levels": want["bid_levels"],
            "ask_levels": want["ask_levels"],
        }, symbol
    # A few absolute anchors, so the rebuild above cannot drift with the code under test.
    nkn = result["symbols"]["NKN-USDT"]
    assert (nkn["book_messages"], nkn["trades"]) == (150, 1)
    assert float(nkn["best_bid"][0]) < float(nkn["best_ask"][0])


def test_result_is_json_serialisable(result: dict[str, Any]) -> None:
    assert json.loads(json.dumps(result)) == result


def test_first_applied_deltas_match_the_vectors() -> None:
    first: dict[str, BookDelta] = {}
    published_snapshots: dict[str, BookSnapshot] = {}
    for event in replay_events("binance", FILES):
        if isinstance(event, BookSnapshot):
            published_snapshots[event.native] = event
        elif isinstance(event, BookDelta):
            first.setdefault(event.native, event)
            # never a delta the snapshot already covers
            assert event.seq is not None and event.seq > published_snapshots[event.native].seq  # type: ignore[operator]
    for vector in VECTORS:
        delta = first[vector["symbol"]]
        assert (delta.first_seq, delta.seq) == (vector["first_applied"]["U"], vector["first_applied"]["u"])
        assert published_snapshots[vector["symbol"]].seq == vector["lastUpdateId"]
    expected = expected_from_the_files()["symbols"]
    assert {CANONICAL[n]: (d.first_seq, d.seq) for n, d in first.items()} == {
        s: e["first_applied"] for s, e in expected.items()
    }


def test_trades_are_published_with_content() -> None:
    trades = [e for e in replay_events("binance", FILES) if isinstance(e, Trade)]
    assert [(t.symbol, t.trade_id, t.price, t.qty, t.side) for t in trades] == [
        ("NKN-USDT", "15683430", "0.35280000", "58.00000000", "buy"),
        ("LRC-BTC", "9213679", "0.00000638", "177.00000000", "buy"),
    ]
    assert trades[0].ts_recv == 1633998523_957215000


def depth(ts: str, first: int, last: int, bids: str = "[]") -> str:
    data = f'{{"e":"depthUpdate","E":1,"s":"BNBBTC","U":{first},"u":{last},"b":{bids},"a":[]}}'
    return f'{ts}: {{"stream":"bnbbtc@depth@100ms","data":{data}}}'


def snapshot(ts: str, seq: int, bid: str) -> str:
    url = "https://api.binance.com/api/v3/depth?symbol=BNBBTC&limit=1000"
    return f'{url} -> {ts}: {{"lastUpdateId":{seq},"bids":[["{bid}","1"]],"asks":[["9","1"]]}}'


def test_pending_snapshot_gap_resync_and_a_bad_frame(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    http = tmp_path / "http"
    ws.write_text(
        "\n".join(
            [
                "wss://stream.binance.com:9443/stream?streams=bnbbtc@depth@100ms <-> 1",
                depth("2", 95, 99),  # the snapshot (at 1.5, pending until now) already covers it
                depth("3", 101, 102, '[["2","1"]]'),  # bridges snapshot 100
                "3.5: {not json",
                depth("4", 106, 107, '[["3","1"]]'),  # 103..105 missing: gap, resync
                depth("5", 108, 108, '[["4","1"]]'),  # buffered until the next snapshot
                depth("7", 109, 109, '[["2","0"]]'),
            ]
        )
        + "\n"
    )
    http.write_text("\n".join([snapshot("1.5", 100, "1"), snapshot("6", 107, "1.5")]) + "\n")
    result = replay("binance", [ws, http])
    assert result == {
        "exchange": "binance",
        "frames": 6,
        "decode_errors": 1,
        "symbols": {
            "BNB-BTC": {
                "book_messages": 5,
                "checksums_verified": 0,
                "checksum_failures": 0,
                "gaps": 1,
                "resyncs": 1,
                "trades": 0,
                "best_bid": ["4", "1"],
                "best_ask": ["9", "1"],
                # snapshot 107 ("1.5"), then 108 adds "4"; 109 deletes "2", which that snapshot lacks
                "bid_levels": 2,
                "ask_levels": 1,
            }
        },
    }
    kinds = [(type(e).__name__, getattr(e, "seq", None)) for e in replay_events("binance", [ws, http])]
    assert kinds == [
        ("BookSnapshot", 100), ("BookStatus", None), ("BookDelta", 102), ("BookStatus", None),
        ("BookSnapshot", 107), ("BookStatus", None), ("BookDelta", 108), ("BookDelta", 109),
    ]  # fmt: skip


def test_recording_of_another_exchange_is_refused() -> None:
    with pytest.raises(InputError, match=r"ws\.kraken\.com.*not a binance host"):
        replay("binance", [RECORDINGS / "KRAKEN.ws.48.0"])
    with pytest.raises(InputError):
        replay("no-such-exchange", FILES)


def test_any_binance_host_or_loopback_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rec"
    path.write_text(
        "wss://data-stream.binance.vision/stream?streams=bnbbtc@trade <-> 1\n"
        "ws://127.0.0.1:9000/stream?streams=bnbbtc@trade <-> 2\n"
        '3: {"result":null,"id":1}\n'
    )
    assert replay("binance", [path]) == {
        "exchange": "binance",
        "frames": 1,
        "decode_errors": 0,
        "symbols": {},
    }
    path.write_text("wss://stream.example.com/ws <-> 1\n")
    with pytest.raises(InputError, match=r"stream\.example\.com"):
        replay("binance", [path])


def test_missing_or_malformed_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        replay("binance", [FILES[0], tmp_path / "missing"])
    bad = tmp_path / "bad"
    bad.write_text("wss://stream.binance.com:9443/ws <-> 1\nnot a record\n")
    with pytest.raises(InputError, match=f"{bad}:2"):
        replay_events("binance", [bad])
    with pytest.raises(InputError):
        replay("binance", [])


def test_progress_is_reported_every_so_many_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_module, "PROGRESS_EVERY", 100)
    calls: list[int] = []
    assert replay("binance", FILES, calls.append) == replay("binance", FILES)
    assert calls == [100, 200]  # 270 records: the opened line, 265 frames, 4 snapshots


def test_cli_prints_the_json_on_stdout_and_a_table_on_stderr() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tools.cli", "replay", "--exchange", "binance", *map(str, FILES)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result == json.loads(json.dumps(replay("binance", FILES)))
    lines = run.stderr.splitlines()
    assert lines[0].startswith("# replayed binance: 265 frames in ") and lines[0].endswith(", 0 undecodable, 4 symbols")
    assert lines[1].split()[1:3] == ["symbol", "book"]
    rows = {line.split()[1]: line.split()[2:] for line in lines[2:]}
    assert sorted(rows) == ["BLZ-ETH", "LRC-BTC", "NKN-USDT", "RUNE-EUR"]
    nkn = result["symbols"]["NKN-USDT"]
    bid, ask = nkn["best_bid"], nkn["best_ask"]
    assert rows["NKN-USDT"] == ["150", "1", "0", "0", f"{nkn['bid_levels']}/{nkn['ask_levels']}",
                                f"{bid[1]}@{bid[0]}", "/", f"{ask[1]}@{ask[0]}"]  # fmt: skip
