"""The shard's publisher on real ZeroMQ sockets: one batch message per loop turn for the merger, one
message per event for live subscribers while there are any, control messages after them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from bus import wire
from bus.publisher import Publisher
from ingest.events import Trade

SUFFIX = "trade:binance:BTC-USDT"


def _trade(i: int) -> Trade:
    return Trade("binance", "BTC-USDT", "BTCUSDT", str(i), "10.5", "1", "buy", i, i)


def _subscriber(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, topic: bytes = b"") -> zmq.Socket[bytes]:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(endpoint)
    sub.subscribe(topic)
    return sub


def _received(sub: zmq.Socket[bytes], timeout_ms: int = 200) -> list[list[bytes]]:
    out = []
    while sub.poll(timeout_ms):
        out.append(sub.recv_multipart())
    return out


def _until(pub: Publisher, cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Read the subscriptions (as the shard's upkeep does) until ``cond`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.drain_subscriptions()
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_a_loop_turn_is_one_batch_and_each_event_one_message_for_a_live_subscriber(tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/bus.sock"
    pub = Publisher(endpoint, 3, ctx)
    sub = _subscriber(ctx, endpoint)  # everything: the batches too
    try:
        assert pub.wait_for_subscriber(5) and pub.live

        async def burst() -> tuple[list[list[bytes]], list[list[bytes]]]:
            pub.batch_sends(asyncio.get_running_loop())
            for i in range(1, 6):
                pub.publish(_trade(i))
            assert pub.seq == 0 and pub.published == 5  # the batch is numbered when the turn ends
            before = _received(sub, 50)  # the loop has not turned: nothing sent yet
            await asyncio.sleep(0)
            return before, _received(sub)

        before, after = asyncio.run(burst())
        assert before == [] and pub.seq == 1
        batch, *events = after
        assert batch[0] == wire.BATCH_TOPIC and wire.parse_batch_header(batch[1]) == (3, pub.epoch, 1, 5)
        assert wire.decode_batch(batch[2]) == [(SUFFIX, _trade(i)) for i in range(1, 6)]
        assert [m[0] for m in events] == [b"trade.binance.BTC-USDT"] * 5
        assert [wire.parse_header(m[1]) for m in events] == [(3, pub.epoch, 1)] * 5  # the batch's seq
        assert [wire.decode(m[2]) for m in events] == [_trade(i) for i in range(1, 6)]

        async def then_end() -> None:  # queued events go out before the end marker that counts them
            pub.batch_sends(asyncio.get_running_loop())
            pub.publish(_trade(6))
            pub.send_end()

        asyncio.run(then_end())
        last = _received(sub)
        assert [m[0] for m in last] == [wire.BATCH_TOPIC, b"trade.binance.BTC-USDT", wire.CONTROL_TOPIC]
        assert wire.decode_batch(last[0][2]) == [(SUFFIX, _trade(6))] and wire.decode(last[1][2]) == _trade(6)
        assert wire.control_kind(last[2][2]) == "end" and wire.parse_header(last[2][1])[2] == 2
    finally:
        sub.close(0)
        pub.close(0)
        ctx.term()


def test_unbatched_publish_sends_a_batch_of_one_at_once(tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/bus.sock"
    pub = Publisher(endpoint, 0, ctx)
    sub = _subscriber(ctx, endpoint, wire.INTERNAL)  # as the merger does
    try:
        assert pub.wait_for_subscriber(5, wire.BATCH_TOPIC) and not pub.live
        pub.publish(_trade(1))
        pub.tick()
        got = _received(sub)
        assert [m[0] for m in got] == [wire.BATCH_TOPIC, wire.CONTROL_TOPIC]
        assert wire.decode_batch(got[0][2]) == [(SUFFIX, _trade(1))]
        assert wire.control_kind(got[1][2]) == "tick" and wire.parse_header(got[1][1]) == (0, pub.epoch, 1)
    finally:
        sub.close(0)
        pub.close(0)
        ctx.term()


def test_a_batch_closes_at_its_cap_and_the_replay_buffer_holds_whole_batches_up_to_its_events(
    tmp_path: Path,
) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/bus.sock"
    pub = Publisher(endpoint, 0, ctx, replay_buffer=2_000)
    sub = _subscriber(ctx, endpoint, wire.INTERNAL)
    try:
        assert pub.wait_for_subscriber(5, wire.BATCH_TOPIC)
        total = 2 * wire.BATCH_MAX_EVENTS + 500
        for i in range(1, total + 1):
            pub.add(_trade(i))
        pub.flush()
        got = _received(sub)
        heads = [wire.parse_batch_header(m[1]) for m in got]
        assert heads == [(0, pub.epoch, 1, 1000), (0, pub.epoch, 2, 1000), (0, pub.epoch, 3, 500)]
        assert [e for m in got for _, e in wire.decode_batch(m[2])] == [_trade(i) for i in range(1, total + 1)]
        # 2,500 events > 2,000: the oldest batch left whole; a repair reply holds whole batches
        assert pub.replay_depth == 1_500
        found, cut = pub.frames(1, 3, 1_200)
        assert [(seq, n) for seq, _, n in found] == [(2, 1000)] and cut
        assert found[0][1] == got[1][2]
        found, cut = pub.frames(1, 3, 10)  # at least one batch, however small the limit
        assert [seq for seq, _, _ in found] == [2] and cut
        found, cut = pub.frames(3, 3, 10)
        assert [seq for seq, _, _ in found] == [3] and not cut
    finally:
        sub.close(0)
        pub.close(0)
        ctx.term()


def test_per_event_messages_follow_live_subscriptions_as_xpub_reports_them(tmp_path: Path) -> None:
    """Non-verbose XPUB reports a topic's first subscribe and its last unsubscribe, and unsubscribes a
    subscriber that disconnects: per-event sends stop once the last live subscriber is gone."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/bus.sock"
    pub = Publisher(endpoint, 0, ctx)
    merger = _subscriber(ctx, endpoint, wire.INTERNAL)
    try:
        assert pub.wait_for_subscriber(5, wire.BATCH_TOPIC) and not pub.live
        a = _subscriber(ctx, endpoint, b"trade.")
        assert _until(pub, lambda: pub.live)
        b = _subscriber(ctx, endpoint, b"trade.")
        time.sleep(0.2)
        a.close(0)  # not the last subscriber of "trade.": no unsubscribe notice
        assert not _until(pub, lambda: not pub.live, timeout=0.5)
        pub.publish(_trade(1))
        assert [m[0] for m in _received(b)] == [b"trade.binance.BTC-USDT"]
        b.close(0)  # the last one: gone, and the publisher hears of it
        assert _until(pub, lambda: not pub.live)
        c = _subscriber(ctx, endpoint, b"book.")  # any live subscription turns them on again
        assert _until(pub, lambda: pub.live)
        c.close(0)
        assert _until(pub, lambda: not pub.live)
        pub.publish(_trade(2))
        got = _received(merger)
        assert [m[0] for m in got] == [wire.BATCH_TOPIC, wire.BATCH_TOPIC]
        assert [wire.decode_batch(m[2]) for m in got] == [[(SUFFIX, _trade(1))], [(SUFFIX, _trade(2))]]
    finally:
        merger.close(0)
        pub.close(0)
        ctx.term()
