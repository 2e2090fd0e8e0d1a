"""The simulator's venue: its own WebSocket framing (server to client, unmasked), byte for byte (RFC 6455
5.2), and the recent trades its REST histories serve."""

from __future__ import annotations

import bisect
import gc

import pytest

from tools.sim.market import MarketTrade
from tools.sim.venue import RecentTrades, ws_frame


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, b"\x81\x00"), (125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e"), (65535, b"\x81\x7e\xff\xff"),
     (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00")],
)  # fmt: skip
def test_text_frames_carry_their_length_in_the_shortest_form(size: int, header: bytes) -> None:
    text = "x" * size
    assert ws_frame(text) == header + text.encode()


def test_bytes_are_a_binary_frame_and_text_is_utf8() -> None:
    assert ws_frame(b"\x00\xff") == b"\x82\x02\x00\xff"
    assert ws_frame("é") == b"\x81\x02\xc3\xa9"  # the length is of the UTF-8 bytes


def test_recent_trades_keep_the_newest_in_order_as_untracked_rows() -> None:
    recent = RecentTrades(3)
    for i in range(5):
        recent.append((MarketTrade(i, f"100.{i}", "1", "buy" if i % 2 else "sell"), 1_000 + i))
    assert list(recent) == [(MarketTrade(i, f"100.{i}", "1", "buy" if i % 2 else "sell"), 1_000 + i) for i in (2, 3, 4)]
    assert len(recent) == 3 and recent[0] == (MarketTrade(2, "100.2", "1", "sell"), 1_002)
    assert bisect.bisect_right(recent, 1_003, key=lambda e: e[1]) == 2  # the exchanges' histories search by time
    gc.collect()  # the collector stops tracking a row of plain values: its full passes do not walk them
    assert not any(gc.is_tracked(row) for row in recent._rows)
    recent.clear()
    assert list(recent) == []
