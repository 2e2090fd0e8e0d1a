"""A recorded Bybit session, built from the messages protocols.md section E documents (the
``orderbook.50`` snapshot and delta, a ``publicTrade`` push, the spot subscribe ack and pong), in the
line format `tools.recording` reads, replayed with `tools.replay` through the live codec and book
sync: the book it ends with is the one the messages describe, a ``u = 1`` restart overwrites the book,
and a break in ``u`` is a gap that the next snapshot (the resubscribe's) heals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import InputError
from ingest.events import BookDelta, BookSnapshot, BookStatus, Trade
from tools.replay import replay, replay_events

URL = "wss://stream.bybit.com/v5/public/spot"
TOPIC = "orderbook.50.BTCUSDT"


def book(kind: str, ts: int, bids: str, asks: str, u: int, seq: int) -> str:
    # Spot's key order: ts before type.
    return (
        f'{{"topic":"{TOPIC}","ts":{ts},"type":"{kind}","data":{{"s":"BTCUSDT","b":[{bids}],"a":[{asks}],'
        f'"u":{u},"seq":{seq}}},"cts":{ts - 2}}}'
    )


SESSION = [
    f"{URL} <-> 1672304484.000",
    f'{URL} <- 1672304484.001: {{"op":"subscribe","args":["{TOPIC}","publicTrade.BTCUSDT"],"req_id":"sub1"}}',
    '1672304484.010: {"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b",'
    '"req_id":"sub1","op":"subscribe"}',
    # protocols.md E's snapshot (two levels a side).
    "1672304484.980: "
    + book(
        "snapshot",
        1672304484978,
        '["16493.50","0.006"],["16493.00","0.100"]',
        '["16611.00","0.029"],["16612.00","0.213"]',
        18521288,
        7961638724,
    ),
    # Deltas: absolute sizes, "0" deletes, an unknown price inserts.
    "1672304485.001: " + book("delta", 1672304484998, '["16493.50","0.010"]', '["16611.00","0"]', 18521289, 7961638730),
    "1672304485.020: " + book("delta", 1672304485018, '["16494.00","1.5"]', '["16611.50","0.3"]', 18521290, 7961638741),
    # protocols.md E's trade push (the doc's example), and a second fill.
    '1672304486.870: {"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":['
    '{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick",'
    '"i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false},'
    '{"T":1672304486866,"s":"BTCUSDT","S":"Sell","v":"0.002","p":"16578.00","i":"2290000000061666327","BT":false}]}',
    f'{URL} <- 1672304490.000: {{"req_id":"ping","op":"ping"}}',
    '1672304490.005: {"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}',
    # The book service restarts: u = 1 holds the whole book; u counts on from 1.
    "1672304491.000: "
    + book("snapshot", 1672304490998, '["16500.00","2"]', '["16501.00","1"],["16502.00","4"]', 1, 7961639000),
    "1672304491.020: " + book("delta", 1672304491018, '["16499.50","3"]', '["16501.00","0"]', 2, 7961639010),
]


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "BYBIT.ws.1.0"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_documented_session_replays_to_the_book_and_trades_it_describes(tmp_path: Path) -> None:
    path = write(tmp_path, SESSION)
    assert replay("bybit", [path]) == {
        "exchange": "bybit",
        "frames": 8,
        "decode_errors": 0,
        "symbols": {
            "BTC-USDT": {
                "book_messages": 5,
                "checksums_verified": 0,
                "checksum_failures": 0,
                "gaps": 0,
                "resyncs": 0,
                "trades": 2,
                "best_bid": ["16500.00", "2"],
                "best_ask": ["16502.00", "4"],
                "bid_levels": 2,
                "ask_levels": 1,
            }
        },
    }
    events = list(replay_events("bybit", [path]))
    trades = [(e.trade_id, e.side, e.price, e.qty) for e in events if isinstance(e, Trade)]
    assert trades == [
        ("20f43950-d8dd-5b31-9112-a178eb6023af", "buy", "16578.50", "0.001"),
        ("2290000000061666327", "sell", "16578.00", "0.002"),
    ]
    snapshots = [e for e in events if isinstance(e, BookSnapshot)]
    assert [s.seq for s in snapshots] == [18521288, 1]
    deltas = [e for e in events if isinstance(e, BookDelta)]
    assert [(d.first_seq, d.seq) for d in deltas] == [(18521289, 18521289), (18521290, 18521290), (2, 2)]
    assert snapshots[0].bids == (("16493.50", "0.006"), ("16493.00", "0.100"))
    assert [s.state for s in events if isinstance(s, BookStatus)] == ["valid", "valid"]


def test_the_book_before_the_restart(tmp_path: Path) -> None:
    summary = replay("bybit", [write(tmp_path, SESSION[:7])])["symbols"]["BTC-USDT"]
    assert (summary["best_bid"], summary["best_ask"], summary["bid_levels"], summary["ask_levels"]) == (
        ["16494.00", "1.5"], ["16611.50", "0.3"], 3, 2,
    )  # fmt: skip


def test_a_break_in_u_is_a_gap_that_the_resubscribe_snapshot_heals(tmp_path: Path) -> None:
    lines = [
        *SESSION[:5],
        # u 18521290 is lost: 18521291 is a gap; the client resubscribes; deltas before the snapshot
        # are older than it and are dropped; the snapshot replaces the book.
        "1672304485.040: " + book("delta", 1672304485038, '["16495.00","9"]', "", 18521291, 7961638750),
        f'{URL} <- 1672304485.041: {{"op":"unsubscribe","args":["{TOPIC}"],"req_id":"unsub-BTCUSDT"}}',
        f'{URL} <- 1672304485.042: {{"op":"subscribe","args":["{TOPIC}"],"req_id":"resub-BTCUSDT"}}',
        "1672304485.050: " + book("delta", 1672304485048, '["16496.00","9"]', "", 18521292, 7961638760),
        "1672304485.060: "
        + book("snapshot", 1672304485058, '["16497.00","1"]', '["16498.00","1"]', 18521292, 7961638760),
        "1672304485.080: " + book("delta", 1672304485078, '["16496.50","2"]', "", 18521293, 7961638770),
    ]
    summary = replay("bybit", [write(tmp_path, lines)])["symbols"]["BTC-USDT"]
    assert (summary["gaps"], summary["resyncs"], summary["book_messages"]) == (1, 1, 6)
    assert (summary["best_bid"], summary["best_ask"], summary["bid_levels"], summary["ask_levels"]) == (
        ["16497.00", "1"], ["16498.00", "1"], 2, 1,
    )  # fmt: skip
    gap = next(
        e for e in replay_events("bybit", [write(tmp_path, lines)]) if isinstance(e, BookStatus) and e.state == "gap"
    )
    assert (gap.gap_from, gap.gap_to) == (18521290, 18521290)


def test_a_recording_from_another_exchange_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, ["wss://ws.okx.com:8443/ws/v5/public <-> 1.0", *SESSION[3:4]])
    with pytest.raises(InputError, match="not a bybit host"):
        replay("bybit", [path])
