"""Bus subscriptions against a real shard publisher over real ZeroMQ sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bus import wire
from bus.consumer import asubscribe, endpoints, subscribe
from bus.publisher import Publisher
from ingest.events import BookStatus, Event, Trade

A = Trade("binance", "BTC-USDT", "BTCUSDT", "1", "100.5", "0.2", "buy", 10, 11)
B = Trade("okx", "BTC-USDT", "BTC-USDT", "7", "99", "1", "sell", 12, 13)
S = BookStatus("binance", "BTC-USDT", "BTCUSDT", "valid", "snapshot", None, None, 14)


def _publish_all(pub: Publisher) -> None:
    for ev in (A, S, B):
        pub.publish(ev)
    pub.tick()  # a control frame: never handed out
    pub._sock.send_multipart([b"trade.binance.X", wire.header(0, 1, 99), b"not json"])  # undecodable
    pub.publish(A)


def test_subscribe_yields_the_events_of_the_prefixes_in_order(tmp_path: Path) -> None:
    pub = Publisher(f"ipc://{tmp_path}/bus-0.sock", 0)
    try:
        with subscribe(pub.endpoint, "trade.binance.", "book.") as sub:
            assert pub.wait_for_subscriber(5.0)
            _publish_all(pub)
            got: list[Event | None] = [sub.receive(timeout=5.0) for _ in range(3)]
            assert got == [A, S, A]
            assert sub.receive(timeout=0.2) is None
            assert sub.undecodable == 1 and sub.received == 3
            assert sub.last_header == (0, pub.epoch, 4)  # the shard, its epoch, its 4th event
    finally:
        pub.close(0)


def test_asubscribe_is_an_async_iterator(tmp_path: Path) -> None:
    pub = Publisher(f"ipc://{tmp_path}/bus-0.sock", 0)

    async def main() -> list[Event]:
        out: list[Event] = []
        async with asubscribe([pub.endpoint], "trade.") as sub:
            assert await asyncio.get_running_loop().run_in_executor(None, pub.wait_for_subscriber, 5.0)
            _publish_all(pub)
            async for ev in sub:
                out.append(ev)
                if len(out) == 3:
                    break
            assert await sub.receive(timeout=0.2) is None
        return out

    try:
        assert asyncio.run(main()) == [A, B, A]
    finally:
        pub.close(0)


def test_endpoints_come_from_the_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[cluster]\nshards = 2\nvar_dir = "v"\n')
    assert endpoints(path) == [f"ipc://{tmp_path}/v/bus-0.sock", f"ipc://{tmp_path}/v/bus-1.sock"]
