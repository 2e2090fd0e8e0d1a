"""`FrameListener`'s dispatch, the compiled class and its plain-Python twin held to the same answers on
picows's own frames: a whole text or binary message to ``deliver``, every other frame to ``other``.
(`test_ws` drives the class the install built through a real server; `tests/ingest/test_compiled.py`
checks that the install built it.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import picows
import pytest
from picows.picows import _make_test_ws_frame

import ingest.session.listener as built

T = picows.WSMsgType


def _twin() -> ModuleType:
    """``listener.py`` itself, whichever of the two ``import`` finds."""
    path = Path(built.__file__).with_name("listener.py")
    spec = importlib.util.spec_from_file_location("listener_twin", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


IMPLEMENTATIONS = {"imported": built.FrameListener, "python": _twin().FrameListener}


def _listener(cls: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    seen: list[tuple[Any, ...]] = []
    listener = cls()
    listener.deliver = lambda data, binary: seen.append(("deliver", data, binary))
    listener.other = lambda transport, frame: seen.append(("other", frame.msg_type, frame.get_payload_as_bytes()))
    return listener, seen


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_whole_messages_are_delivered_as_bytes_with_their_kind(name: str) -> None:
    listener, seen = _listener(IMPLEMENTATIONS[name])
    listener.on_ws_frame(None, _make_test_ws_frame(T.TEXT, b'{"e":"trade"}', True, False))
    listener.on_ws_frame(None, _make_test_ws_frame(T.BINARY, b"\x00\x01", True, False))
    assert seen == [("deliver", b'{"e":"trade"}', False), ("deliver", b"\x00\x01", True)]


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_every_other_frame_goes_to_other(name: str) -> None:
    listener, seen = _listener(IMPLEMENTATIONS[name])
    close = b"\x03\xe8bye"  # 1000, "bye"
    for kind, payload, fin in [
        (T.TEXT, b'{"part":', False),  # a fragmented message's first frame
        (T.CONTINUATION, b"1}", True),
        (T.PONG, b"p", True),
        (T.CLOSE, close, True),
    ]:
        listener.on_ws_frame(None, _make_test_ws_frame(kind, payload, fin, False))
    assert seen == [("other", T.TEXT, b'{"part":'), ("other", T.CONTINUATION, b"1}"), ("other", T.PONG, b"p"),
                    ("other", T.CLOSE, close)]  # fmt: skip


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_while_a_message_is_in_pieces_even_a_whole_frame_goes_to_other(name: str) -> None:
    # The owner (`WebSocket._other_frame`) sets in_pieces at a fragment's start and decides what a
    # complete frame inside it means (a protocol error); the listener must not deliver it.
    listener, seen = _listener(IMPLEMENTATIONS[name])
    listener.in_pieces = True
    listener.on_ws_frame(None, _make_test_ws_frame(T.TEXT, b"{}", True, False))
    listener.in_pieces = False
    listener.on_ws_frame(None, _make_test_ws_frame(T.TEXT, b"[]", True, False))
    assert seen == [("other", T.TEXT, b"{}"), ("deliver", b"[]", False)]
