"""The session's WebSocket against a real WebSocket server on loopback (picows' server, scripted per
test): whole messages in order, fragments reassembled, pings answered, protocol pings without a pong
ending the connection, both close handshakes, a dropped socket, a bug in the callback, TLS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import picows
import pytest

from ingest.errors import ConnectionLost
from ingest.session.ws import MAX_MESSAGE, WebSocket, connect

T = picows.WSMsgType
Script = Callable[[picows.WSTransport], None]


class Peer(picows.WSListener):
    """The server's side of one connection: runs ``script`` once connected, keeps every frame it
    receives as (type, payload), answers text frames through ``on_text``, pings (where ``pong``) and a
    close frame in kind."""

    def __init__(self, script: Script, on_text: Callable[[picows.WSTransport, bytes], None] | None, pong: bool) -> None:
        super().__init__()
        self.script, self.on_text, self.pong = script, on_text, pong
        self.frames: list[tuple[picows.WSMsgType, bytes]] = []
        self.gone = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.script(transport)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        payload = frame.get_payload_as_bytes()
        self.frames.append((kind, payload))
        if kind is T.TEXT and self.on_text is not None:
            self.on_text(transport, payload)
        elif kind is T.PING and self.pong:
            transport.send_pong(payload)
        elif kind is T.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


@asynccontextmanager
async def serve(
    script: Script = lambda t: None,
    on_text: Callable[[picows.WSTransport, bytes], None] | None = None,
    pong: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[str, list[Peer]]]:
    """A server on a free loopback port: its ws:// (or wss://) URL and its connections' peers."""
    peers: list[Peer] = []

    def listener(request: picows.WSUpgradeRequest) -> Peer:
        peers.append(Peer(script, on_text, pong))
        return peers[-1]

    server = await picows.ws_create_server(listener, "127.0.0.1", 0, enable_auto_pong=False, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield (f"wss://localhost:{port}/ws" if ssl_context else f"ws://127.0.0.1:{port}/ws"), peers
    finally:
        server.close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bool]] = []

    def __call__(self, data: bytes, binary: bool) -> None:
        self.messages.append((data, binary))


def test_messages_arrive_whole_in_order_with_fragments_reassembled_and_pings_answered() -> None:
    def script(t: picows.WSTransport) -> None:
        t.send(T.TEXT, b'{"a":1}')
        t.send(T.BINARY, b"\x00\x01")
        t.send(T.TEXT, b'{"he', fin=False)
        t.send_ping(b"p1")  # a control frame between the fragments of a message
        t.send(T.CONTINUATION, b'llo":', fin=False)
        t.send(T.CONTINUATION, b"2}", fin=True)
        t.send(T.BINARY, b"\x02", fin=False)
        t.send(T.CONTINUATION, b"\x03", fin=True)
        t.send(T.TEXT, b"last")

    async def go() -> tuple[Inbox, Peer]:
        inbox = Inbox()
        async with serve(script) as (url, peers):
            ws = await connect(url, inbox)
            while len(inbox.messages) < 5:
                await asyncio.sleep(0.01)
            await ws.close()
            assert await ws.ended() == "closed"
            return inbox, peers[0]

    inbox, peer = asyncio.run(go())
    assert inbox.messages == [
        (b'{"a":1}', False), (b"\x00\x01", True), (b'{"hello":2}', False), (b"\x02\x03", True), (b"last", False)
    ]  # fmt: skip
    assert (T.PONG, b"p1") in peer.frames
    assert peer.frames[-1] == (T.CLOSE, b"\x03\xe8")  # our close, code 1000


def test_sends_reach_the_server_in_order_and_a_closed_socket_takes_no_more() -> None:
    async def go() -> tuple[Peer, WebSocket]:
        async with serve(on_text=lambda t, data: t.send(T.TEXT, b"echo " + data)) as (url, peers):
            inbox = Inbox()
            ws = await connect(url, inbox)
            ws.send('{"op":"subscribe"}')
            ws.send("ping")
            while len(inbox.messages) < 2:
                await asyncio.sleep(0.01)
            assert inbox.messages == [(b'echo {"op":"subscribe"}', False), (b"echo ping", False)]
            assert not ws.closed
            await ws.close()
            assert ws.closed
            ws.send("late")  # dropped, not raised
            await peers[0].gone
            return peers[0], ws

    peer, _ = asyncio.run(go())
    assert [p for k, p in peer.frames if k is T.TEXT] == [b'{"op":"subscribe"}', b"ping"]


def test_the_servers_close_is_answered_and_its_code_and_reason_reported() -> None:
    def on_text(t: picows.WSTransport, data: bytes) -> None:
        t.send_close(picows.WSCloseCode.GOING_AWAY, b"maintenance")

    async def go() -> tuple[str, Peer]:
        async with serve(on_text=on_text) as (url, peers):
            ws = await connect(url, Inbox())
            ws.send("bye?")
            reason = await ws.ended()
            await peers[0].gone
            return reason, peers[0]

    reason, peer = asyncio.run(go())
    assert reason == "closed by the exchange (1001: maintenance)"
    assert peer.frames[-1] == (T.CLOSE, b"\x03\xe9")  # answered with the same code


def test_a_dropped_connection_ends_without_a_close_frame() -> None:
    async def go() -> str:
        async with serve(on_text=lambda t, data: t.disconnect()) as (url, _):
            ws = await connect(url, Inbox())
            ws.send("drop me")
            return await ws.ended()

    assert asyncio.run(go()) == "closed by the exchange (no close frame)"


def test_protocol_pings_without_a_pong_end_the_connection() -> None:
    async def go() -> None:
        async with serve(pong=False) as (url, peers):
            ws = await connect(url, Inbox(), ping_interval=0.2)
            with pytest.raises(ConnectionLost, match="replied to ping"):
                await ws.ended()
            assert any(k is T.PING for k, _ in peers[0].frames)

    asyncio.run(go())


def test_protocol_pings_answered_keep_the_connection() -> None:
    async def go() -> None:
        async with serve() as (url, peers):
            ws = await connect(url, Inbox(), ping_interval=0.1)
            await asyncio.sleep(0.6)
            assert not ws.closed
            assert sum(k is T.PING for k, _ in peers[0].frames) >= 2
            await ws.close()

    asyncio.run(go())


def test_an_error_in_the_callback_ends_the_connection_and_is_raised_by_ended() -> None:
    def on_message(data: bytes, binary: bool) -> None:
        raise RuntimeError(f"bug on {data!r}")

    async def go() -> None:
        async with serve(lambda t: t.send(T.TEXT, b"x")) as (url, _):
            ws = await connect(url, on_message)
            with pytest.raises(RuntimeError, match="bug on b'x'"):
                await ws.ended()

    asyncio.run(go())


def test_a_message_over_the_limit_ends_the_connection() -> None:
    chunk = b"x" * 2**20

    def script(t: picows.WSTransport) -> None:
        t.send(T.TEXT, chunk, fin=False)
        for _ in range(MAX_MESSAGE // len(chunk)):
            t.send(T.CONTINUATION, chunk, fin=False)
        t.send(T.CONTINUATION, b"}", fin=True)

    async def go() -> Inbox:
        inbox = Inbox()
        async with serve(script) as (url, _):
            ws = await connect(url, inbox)
            with pytest.raises(ConnectionLost, match="over 16777216 bytes"):
                await ws.ended()
        return inbox

    assert asyncio.run(go()).messages == []


def test_an_unreachable_endpoint_is_a_connection_lost() -> None:
    async def go() -> None:
        async with serve() as (url, _):
            pass  # the port is closed again
        with pytest.raises(ConnectionLost, match="ConnectionRefusedError"):
            await connect(url, Inbox())

    asyncio.run(go())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a certificate")
def test_wss_verifies_the_certificate_and_carries_messages(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def go() -> Inbox:
        inbox = Inbox()
        async with serve(on_text=lambda t, data: t.send(T.TEXT, data[::-1]), ssl_context=server_ctx) as (url, _):
            assert url.startswith("wss://")
            with pytest.raises(ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):  # the default context checks
                await connect(url, Inbox())
            ws = await connect(url, inbox, ssl_context=ssl.create_default_context(cafile=str(cert)))
            ws.send("olleh")
            while not inbox.messages:
                await asyncio.sleep(0.01)
            await ws.close()
        return inbox

    assert asyncio.run(go()).messages == [(b"hello", False)]


def test_on_open_comes_before_the_messages_that_came_with_the_upgrade() -> None:
    seen: list[object] = []

    async def go() -> None:
        async with serve(lambda t: t.send(T.TEXT, b"welcome")) as (url, _):
            ws = await connect(url, lambda data, binary: seen.append(data), on_open=seen.append)
            while len(seen) < 2:
                await asyncio.sleep(0.01)
            assert seen == [ws, b"welcome"]
            await ws.close()

    asyncio.run(go())
