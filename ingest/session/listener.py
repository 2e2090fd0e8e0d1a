"""A WebSocket's per-frame dispatch: complete messages to ``deliver``, every other frame to ``other``.

`ingest.session.ws.WebSocket` is a `FrameListener`. picows calls ``on_ws_frame`` once per frame;
a text or binary frame that is a whole message (``fin``, and no fragmented message open:
``in_pieces`` is False) goes to ``deliver(payload, binary)`` as ``bytes``; anything else (close,
pong, the frames of a fragmented message) goes to ``other(transport, frame)``, which keeps
``in_pieces`` up to date.

The install compiles ``listener.pyx``, the same class in Cython, and Python imports that extension
before this file (`ingest.compiled`): per frame, a Python override costs an interpreted call and
reading ``frame.msg_type`` builds an enum member, and at 10k msgs/s those were ~6 % of a shard's CPU
(BENCHMARKS.md, session 19). This file is what runs in a build without extensions (``INGEST_PURE=1``),
and the reference the tests hold both to.
"""

from __future__ import annotations

from collections.abc import Callable

import picows

_TEXT, _BINARY = picows.WSMsgType.TEXT, picows.WSMsgType.BINARY


class FrameListener(picows.WSListener):
    """Set ``deliver`` and ``other`` before the first frame (the compiled class starts them as None)."""

    deliver: Callable[[bytes, bool], None]
    other: Callable[[picows.WSTransport, picows.WSFrame], None]
    in_pieces: bool = False

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.fin and not self.in_pieces:
            kind = frame.msg_type
            if kind is _TEXT:
                self.deliver(frame.get_payload_as_bytes(), False)
                return
            if kind is _BINARY:
                self.deliver(frame.get_payload_as_bytes(), True)
                return
        self.other(transport, frame)
