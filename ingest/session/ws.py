"""The WebSocket under a session: connect, hand every message to a callback, send, close, say why it ended.

Built on picows: the library parses frames in Cython and calls ``on_ws_frame`` once per frame, with no
coroutine, future or message object per frame (aiohttp's ``ws.receive()`` costs one of each, and was a
third of a shard's CPU with the event loop). Complete text and binary messages go to the owner's
synchronous ``on_message(data, binary)`` as ``bytes`` (text is not decoded here: the codecs read bytes),
straight from `ingest.session.listener.FrameListener` (compiled: no Python between picows and the owner);
every other frame comes to `WebSocket._other_frame`.

What the socket does on its own:
- reassembles fragmented messages (a first frame without ``fin``, then CONTINUATION frames), up to
  `MAX_MESSAGE` bytes (a frame or message past it ends the connection);
- answers the server's pings with pongs;
- with ``ping_interval``, pings after that long without data, and ends the connection when the pong
  does not come within half of it (what aiohttp's ``heartbeat`` did);
- answers the server's close frame and disconnects.

``close()`` sends a close frame and waits (at most `CLOSE_TIMEOUT_S`) for the server's, then drops the
socket. ``ended()`` waits until the connection is gone and returns why (the server's close code and
reason) or raises `ConnectionLost` (no pong, a protocol error, a close we did not expect); an
exception raised by ``on_message`` (a bug) ends the connection and is raised by ``ended()`` unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

import picows

from ingest.errors import ConnectionLost
from ingest.session.listener import FrameListener

MAX_MESSAGE = 16 * 2**20  # the largest frame or reassembled message (a full order book snapshot fits)
CLOSE_TIMEOUT_S = 2.0  # a closing socket waits this long for the server's close frame (a dead one sends none)
CONNECT_TIMEOUT_S = 30.0  # TCP, TLS and the upgrade together

OnMessage = Callable[[bytes, bool], None]  # (payload, binary): one complete message
OnOpen = Callable[["WebSocket"], None]  # the socket is up; called before its first message is handed over

_TEXT, _BINARY = picows.WSMsgType.TEXT, picows.WSMsgType.BINARY  # (other frames only: see FrameListener)
_CONTINUATION, _CLOSE = picows.WSMsgType.CONTINUATION, picows.WSMsgType.CLOSE

# picows logs every connect and disconnect at INFO; a session logs its own, with context.
logging.getLogger("picows").setLevel(logging.WARNING)


def _drop(data: bytes, binary: bool) -> None:
    pass


class WebSocket(FrameListener):
    """One client connection (made by `connect`). Single writer: the session that owns it."""

    def __init__(self, url: str, on_message: OnMessage, on_open: OnOpen | None = None) -> None:
        super().__init__()
        self.url = url
        self.deliver = on_message  # whole messages, from FrameListener.on_ws_frame
        self.other = self._other_frame  # every other frame
        self.in_pieces = False
        self._on_open = on_open
        self._parts: list[bytes] = []  # a fragmented message being reassembled (while in_pieces)
        self._binary = False  # ... and whether it is binary
        self._size = 0
        self._closing = False  # we sent the close frame (close(), or an answer to the server's)
        self._closed_by_us = False  # close() was called
        self._transport: picows.WSTransport | None = None

    # -- picows callbacks --------------------------------------------------------------------------

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        # Frames that came with the upgrade response are handed over right after this, before
        # `connect` returns: ``on_open`` is where the owner learns of the socket in time.
        self._transport = transport
        if self._on_open is not None:
            self._on_open(self)

    def _other_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        if kind is _CLOSE:
            if not self._closing:
                self._closing = True
                transport.send_close(frame.get_close_code())  # the answer a close handshake wants
            transport.disconnect()
            return
        if kind is _TEXT or kind is _BINARY:  # the first frame of a fragmented message
            if self.in_pieces:
                raise picows.WSProtocolError(picows.WSCloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one")
            self.in_pieces, self._parts, self._binary, self._size = True, [], kind is _BINARY, 0
        elif kind is _CONTINUATION:
            if not self.in_pieces:
                raise picows.WSProtocolError(picows.WSCloseCode.PROTOCOL_ERROR, "a continuation frame without a start")
        else:  # an unsolicited pong: nothing to do (pings are answered by picows)
            return
        self._size += frame.payload_size
        if self._size > MAX_MESSAGE:
            raise picows.WSProtocolError(picows.WSCloseCode.MESSAGE_TOO_BIG, f"a message over {MAX_MESSAGE} bytes")
        self._parts.append(frame.get_payload_as_bytes())
        if frame.fin:
            data, binary = b"".join(self._parts), self._binary
            self.in_pieces, self._parts = False, []
            self.deliver(data, binary)

    # -- the owner's side --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Closing or gone: nothing sent now reaches the server."""
        t = self._transport
        return t is None or self._closing or t.is_close_frame_sent or t.is_disconnected

    def send(self, text: str) -> None:
        """Queue one text message (written at once when the socket can take it; never blocks)."""
        if self._transport is not None:
            self._transport.send(_TEXT, text.encode())

    async def close(self) -> None:
        """Send a close frame, wait (bounded) for the server's, then drop the socket."""
        t = self._transport
        if t is None or t.is_disconnected:
            return
        self.deliver = _drop  # what arrives from now on is not the owner's any more
        self._closed_by_us = True
        if not self._closing:
            self._closing = True
            t.send_close(picows.WSCloseCode.OK)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await t.wait_disconnected()
        except (TimeoutError, Exception):
            pass
        t.disconnect(graceful=False)

    async def ended(self) -> str:
        """Wait until the connection is gone; why it ended (see the module docstring)."""
        t = self._transport
        if t is None:
            raise ConnectionLost("never connected")
        try:
            await t.wait_disconnected()
        except picows.WSError as e:
            raise ConnectionLost(f"websocket error: {e}") from None
        if self._closed_by_us:
            return "closed"
        handshake = t.close_handshake
        if handshake is None:
            return "closed by the exchange (no close frame)"
        if handshake.sent is not None and not handshake.recv_then_sent:  # picows closed it: no pong in time
            raise ConnectionLost(f"websocket closed: {handshake.sent.reason or handshake.sent.code.name}")
        received = handshake.recv
        assert received is not None
        return f"closed by the exchange ({received.code.value}{': ' + received.reason if received.reason else ''})"


async def connect(
    url: str,
    on_message: OnMessage,
    ping_interval: float | None = None,
    timeout: float = CONNECT_TIMEOUT_S,
    ssl_context: ssl.SSLContext | None = None,
    on_open: OnOpen | None = None,
) -> WebSocket:
    """Open a WebSocket (TLS for ``wss://``, with ``ssl_context`` or else the default context: the
    system's CAs, host name checked); `ConnectionLost` if it cannot be. ``on_open`` (if given) is called
    with the socket as soon as it is up, before any message (they can come with the upgrade response)."""

    def listener() -> WebSocket:
        return WebSocket(url, on_message, on_open)

    ping = ping_interval is not None
    try:
        async with asyncio.timeout(timeout):
            _, ws = await picows.ws_connect(
                listener,
                url,
                websocket_handshake_timeout=timeout,
                enable_auto_ping=ping,
                auto_ping_idle_timeout=ping_interval if ping_interval is not None else 10.0,
                auto_ping_reply_timeout=ping_interval / 2 if ping_interval is not None else 10.0,
                max_frame_size=MAX_MESSAGE,
                ssl_context=ssl_context,
            )
    except TimeoutError:
        raise ConnectionLost(f"{url}: no connection within {timeout:g}s") from None
    except (OSError, picows.WSError) as e:
        raise ConnectionLost(f"{url}: {type(e).__name__}: {e}") from None
    assert isinstance(ws, WebSocket)
    return ws
