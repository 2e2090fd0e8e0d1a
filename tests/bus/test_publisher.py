"""The shard's publisher on real ZeroMQ sockets: batched sends keep every frame, in order, and the
control messages after them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import zmq

from bus import wire
from bus.publisher import Publisher
from ingest.events import Trade


def _trade(i: int) -> Trade:
    return Trade("binance", "BTC-USDT", "BTCUSDT", str(i), "10.5", "1", "buy", i, i)


def _subscriber(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, pub: Publisher) -> zmq.Socket[bytes]:
    sub = ctx.socket(zmq.SUB)
    sub.connect(endpoint)
    sub.subscribe(b"")
    assert pub.wait_for_subscriber(5)
    return sub


def _received(sub: zmq.Socket[bytes], timeout_ms: int = 200) -> list[list[bytes]]:
    out = []
    while sub.poll(timeout_ms):
        out.append(sub.recv_multipart())
    return out


def test_batched_sends_go_out_once_the_loop_turns_in_order_before_the_end(tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/bus.sock"
    pub = Publisher(endpoint, 3, ctx)
    sub = _subscriber(ctx, endpoint, pub)
    try:

        async def burst() -> tuple[list[list[bytes]], list[list[bytes]]]:
            pub.batch_sends(asyncio.get_running_loop())
            for i in range(1, 6):
                pub.publish(_trade(i))
            assert pub.seq == 5  # numbered (and kept for repairs) at once
            before = _received(sub, 50)  # the loop has not turned: nothing sent yet
            await asyncio.sleep(0)
            return before, _received(sub)

        before, after = asyncio.run(burst())
        assert before == []
        assert [wire.parse_header(m[1]) for m in after] == [(3, pub.epoch, i) for i in range(1, 6)]
        assert [wire.decode(m[2]) for m in after] == [_trade(i) for i in range(1, 6)]
        assert all(m[0] == b"trade.binance.BTC-USDT" for m in after)

        async def then_end() -> None:  # queued frames go out before the end marker that counts them
            pub.batch_sends(asyncio.get_running_loop())
            pub.publish(_trade(6))
            pub.send_end()

        asyncio.run(then_end())
        last = _received(sub)
        assert [m[0] for m in last] == [b"trade.binance.BTC-USDT", wire.CONTROL_TOPIC]
        assert wire.decode(last[0][2]) == _trade(6)
        assert wire.control_kind(last[1][2]) == "end" and wire.parse_header(last[1][1])[2] == 6
    finally:
        sub.close(0)
        pub.close(0)
        ctx.term()


def test_unbatched_publish_sends_at_once(tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/bus.sock"
    pub = Publisher(endpoint, 0, ctx)
    sub = _subscriber(ctx, endpoint, pub)
    try:
        pub.publish(_trade(1))
        pub.tick()
        got = _received(sub)
        assert wire.decode(got[0][2]) == _trade(1)
        assert wire.control_kind(got[1][2]) == "tick"
    finally:
        sub.close(0)
        pub.close(0)
        ctx.term()
