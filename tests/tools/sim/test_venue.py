"""The simulator's own WebSocket framing (server to client, unmasked), byte for byte (RFC 6455 5.2)."""

from __future__ import annotations

import pytest

from tools.sim.venue import ws_frame


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
