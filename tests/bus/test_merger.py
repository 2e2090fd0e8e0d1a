"""The merger against real ZeroMQ sockets and a real Redis: holes repaired from the shards' replay
buffers, what cannot be repaired reported, every frame written once and in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bus.merger import Merger
from bus.publisher import Publisher
from ingest.events import Trade


def _trade(i: int, symbol: str = "BTC-USDT") -> Trade:
    return Trade("binance", symbol, symbol.replace("-", ""), str(i), "10.5", "1", "buy", i, i)


def _ids(client: redis.Redis, key: str) -> list[int]:
    return [int(f[b"trade_id"]) for _, f in client.xrange(key)]


class Shard(threading.Thread):
    """A shard stand-in: one thread owns a Publisher (as the shard's event loop does), runs
    ``script(publisher)`` between repair services, sends the end marker and serves repairs until the
    merger acknowledges it."""

    def __init__(self, tmp: Path, shard: int, script: Callable[[Publisher], None], **kw: int) -> None:
        super().__init__(daemon=True)
        self.pub = Publisher(f"ipc://{tmp}/bus-{shard}.sock", shard, repair_endpoint=f"ipc://{tmp}/rep-{shard}.sock",
                             **kw)  # fmt: skip
        self.script = script
        self.subscribed = self.pub.wait_for_subscriber  # called by the test before start()
        self.done = threading.Event()

    def run(self) -> None:
        self.script(self.pub)
        self.pub.send_end()
        deadline = time.monotonic() + 20
        while not self.pub.end_acked and time.monotonic() < deadline:
            self.pub.serve_repairs()
            time.sleep(0.002)
        self.pub.close(2.0)
        self.done.set()


def _merger(tmp: Path, client: redis.Redis, shards: int, **kw: object) -> Merger:
    url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    return Merger([f"ipc://{tmp}/bus-{i}.sock" for i in range(shards)], redis.Redis.from_url(url), "md", 100_000,
                  100, 0.005, repair_endpoints=[f"ipc://{tmp}/rep-{i}.sock" for i in range(shards)],
                  **kw)  # type: ignore[arg-type]  # fmt: skip


def _run(merger: Merger, shards: list[Shard]) -> None:
    thread = threading.Thread(target=merger.run, args=(15.0,), daemon=True)
    thread.start()
    assert all(s.subscribed(10.0) for s in shards)
    for s in shards:
        s.start()
    for s in shards:
        assert s.done.wait(30)
    merger.request_stop()
    thread.join(30)
    assert not thread.is_alive()


def test_withheld_frames_are_fetched_from_the_replay_buffer_in_order(tmp_path: Path, redis_client: redis.Redis) -> None:
    def withholding(symbol: str) -> Callable[[Publisher], None]:
        def script(pub: Publisher) -> None:
            for i in range(1, 501):
                if 100 <= i < 130 or 300 <= i < 302 or i > 495:
                    pub.record(_trade(i, symbol))  # numbered and kept, never sent: lost on the way
                else:
                    pub.publish(_trade(i, symbol))
                pub.serve_repairs()

        return script

    merger = _merger(tmp_path, redis_client, 2)
    shards = [Shard(tmp_path, 0, withholding("BTC-USDT")), Shard(tmp_path, 1, withholding("ETH-USDT"))]
    _run(merger, shards)
    assert _ids(redis_client, "md:trade:binance:BTC-USDT") == list(range(1, 501))
    assert _ids(redis_client, "md:trade:binance:ETH-USDT") == list(range(1, 501))
    st = merger.stats
    assert (st.holes, st.missing, st.repaired, st.lost, st.gaps) == (6, 2 * 37, 2 * 37, 0, 0)
    assert st.written == 1000 and st.duplicates == 0
    checkpoint = redis_client.hgetall("md:checkpoint")
    assert checkpoint == {b"0": f"{shards[0].pub.epoch}:500:end".encode(),
                          b"1": f"{shards[1].pub.epoch}:500:end".encode()}  # fmt: skip
    assert all(merger.sequencer.finished(s) for s in (0, 1))
    assert not redis_client.exists("md:gaps")


def test_frames_no_longer_in_the_replay_buffer_are_a_reported_gap(tmp_path: Path, redis_client: redis.Redis) -> None:
    def script(pub: Publisher) -> None:
        for i in range(1, 201):
            if 50 <= i < 90:  # 40 frames withheld; the shard answers the merger only after 20 more:
                pub.record(_trade(i))  # a 20-frame buffer has rolled past all of them by then
            else:
                pub.publish(_trade(i))
            if not 50 <= i < 110:
                pub.serve_repairs()
        pub.seq += 3  # three frames never existed: the end marker says 203

    merger = _merger(tmp_path, redis_client, 1)
    shard = Shard(tmp_path, 0, script, replay_buffer=20)
    _run(merger, [shard])
    ids = _ids(redis_client, "md:trade:binance:BTC-USDT")
    assert ids == [*range(1, 50), *range(90, 201)]  # the buffer rolled past 50..89 before the merger asked
    st = merger.stats
    assert (st.lost, st.gaps) == (40 + 3, 2) and st.written == len(ids)
    gaps = [{k.decode(): v.decode() for k, v in f.items()} for _, f in redis_client.xrange("md:gaps")]
    assert [(g["first_seq"], g["last_seq"], g["count"]) for g in gaps] == [("50", "89", "40"), ("201", "203", "3")]
    assert {g["shard"] for g in gaps} == {"0"} and all(g["reason"] for g in gaps)


def test_merger_without_repair_channel_still_writes_and_counts(tmp_path: Path, redis_client: redis.Redis) -> None:
    endpoint = f"ipc://{tmp_path}/bus-0.sock"
    pub = Publisher(endpoint, 0)
    url = f"redis://127.0.0.1:{redis_client.connection_pool.connection_kwargs['port']}/0"
    merger = Merger([endpoint], redis.Redis.from_url(url), "md", 10_000, 100, 0.005)
    thread = threading.Thread(target=merger.run, args=(10.0,))
    thread.start()
    assert pub.wait_for_subscriber(5.0)
    for i in range(1, 11):
        pub.publish(_trade(i))
        if i == 5:
            pub.seq += 2
    pub.close(5.0)
    merger.request_stop()
    thread.join(15)
    assert _ids(redis_client, "md:trade:binance:BTC-USDT") == list(range(1, 11))
    assert (merger.stats.holes, merger.stats.missing, merger.stats.lost) == (1, 2, 2)
    assert redis_client.hgetall("md:checkpoint") == {b"0": f"{pub.epoch}:12:end".encode()}


def test_a_new_run_after_a_clean_end_starts_afresh(tmp_path: Path, redis_client: redis.Redis) -> None:
    def script(pub: Publisher) -> None:
        for i in range(1, 51):
            pub.publish(_trade(i))

    for run in (1, 2):  # the second merger reads the first one's checkpoint: every shard had ended
        merger = _merger(tmp_path, redis_client, 1)
        _run(merger, [Shard(tmp_path, 0, script)])
        st = merger.stats
        assert (st.restarts_seen, st.unended_epochs, st.lost, st.written) == (0, 0, 0, 50)
        assert _ids(redis_client, "md:trade:binance:BTC-USDT") == list(range(1, 51)) * run


def test_malformed_messages_are_counted_and_skipped_and_what_they_hid_is_repaired(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """Messages that are not (topic, header, JSON list) on a shard's socket: two frames (so the next
    message is read out of step), four frames with a short header, a short header, a body that is no
    list. Each is counted and skipped to its end; a valid frame swallowed with one comes back by
    repair. (Frames past a valid third one are not looked for: that costs a getsockopt per message,
    and shards send three.)"""
    bad: list[list[bytes]] = [
        [b"trade.binance.BTC-USDT", b"\x00" * 14],
        [b"trade.binance.BTC-USDT", b"\x00" * 13, b'["type","trade"]', b"extra"],
        [b"trade.binance.BTC-USDT", b"short", b'["type","trade"]'],
        [b"trade.binance.BTC-USDT", b"\x00" * 14, b"not a list"],
    ]

    def script(pub: Publisher) -> None:
        for i in range(1, 201):
            if i % 50 == 0:
                pub._sock.send_multipart(bad[i // 50 - 1])
            pub.publish(_trade(i))
            pub.serve_repairs()

    merger = _merger(tmp_path, redis_client, 1)
    _run(merger, [Shard(tmp_path, 0, script)])
    assert _ids(redis_client, "md:trade:binance:BTC-USDT") == list(range(1, 201))
    assert merger.stats.bad_frames >= 4
