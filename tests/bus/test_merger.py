"""The merger against real ZeroMQ sockets and a real Redis: holes repaired from the shards' replay
buffers, what cannot be repaired reported, every event written once and in order; a live subscriber
gets the same events one message each while the merger reads batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bus import wire
from bus.consumer import subscribe
from bus.embedded_redis import EmbeddedRedis
from bus.merger import Merger
from bus.publisher import Publisher
from ingest.events import Trade


def _trade(i: int, symbol: str = "BTC-USDT") -> Trade:
    return Trade("binance", symbol, symbol.replace("-", ""), str(i), "10.5", "1", "buy", i, i)


def _batch(pub: Publisher, events: list[Trade], send: bool = True) -> None:
    """One bus batch of ``events``: sent, or (``send=False``) numbered and kept but lost on the way."""
    for e in events[:-1]:
        pub.add(e)
    if send:
        pub.publish(events[-1])
    else:
        pub.record(events[-1])


def _trades(first: int, count: int, symbol: str = "BTC-USDT") -> list[Trade]:
    return [_trade(i, symbol) for i in range(first, first + count)]


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
        self.subscribed = lambda timeout: self.pub.wait_for_subscriber(timeout, wire.BATCH_TOPIC)  # before start()
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


def _merger(tmp: Path, url: str, shards: int, **kw: object) -> Merger:
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


def test_withheld_batches_are_fetched_from_the_replay_buffer_in_order(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    def withholding(symbol: str) -> Callable[[Publisher], None]:
        def script(pub: Publisher) -> None:
            for b in range(1, 101):  # 100 batches of 5 trades
                _batch(pub, _trades(b * 5 - 4, 5, symbol), send=not (20 <= b <= 25 or b in (60, 100)))
                pub.serve_repairs()

        return script

    merger = _merger(tmp_path, redis_server.url, 2)
    shards = [Shard(tmp_path, 0, withholding("BTC-USDT")), Shard(tmp_path, 1, withholding("ETH-USDT"))]
    _run(merger, shards)
    assert _ids(redis_client, "md:trade:binance:BTC-USDT") == list(range(1, 501))
    assert _ids(redis_client, "md:trade:binance:ETH-USDT") == list(range(1, 501))
    st = merger.stats
    assert (st.holes, st.missing, st.repaired, st.lost, st.gaps) == (6, 2 * 8, 2 * 8, 0, 0)  # in batches
    assert st.written == 1000 and st.duplicates == 0  # in events
    assert st.received == 1000 - 2 * 8 * 5  # events off the bus, not repaired
    checkpoint = redis_client.hgetall("md:checkpoint")
    assert checkpoint == {b"0": f"{shards[0].pub.epoch}:100:end".encode(),
                          b"1": f"{shards[1].pub.epoch}:100:end".encode()}  # fmt: skip
    assert all(merger.sequencer.finished(s) for s in (0, 1))
    assert not redis_client.exists("md:gaps")


def test_batches_no_longer_in_the_replay_buffer_are_a_reported_gap(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    def script(pub: Publisher) -> None:
        for b in range(1, 101):  # 100 batches of 2 trades
            # batches 25..44 withheld; the shard answers the merger only after 10 more batches (20
            # events): a replay buffer of 20 events has rolled past all of them by then
            _batch(pub, _trades(b * 2 - 1, 2), send=not 25 <= b < 45)
            if not 25 <= b < 55:
                pub.serve_repairs()
        pub.seq += 3  # three batches never existed: the end marker says 103

    merger = _merger(tmp_path, redis_server.url, 1)
    shard = Shard(tmp_path, 0, script, replay_buffer=20)
    _run(merger, [shard])
    ids = _ids(redis_client, "md:trade:binance:BTC-USDT")
    assert ids == [*range(1, 49), *range(89, 201)]  # the buffer rolled past trades 49..88 before the merger asked
    st = merger.stats
    assert (st.lost, st.gaps) == (20 + 3, 2) and st.written == len(ids)
    gaps = [{k.decode(): v.decode() for k, v in f.items()} for _, f in redis_client.xrange("md:gaps")]
    assert [(g["first_seq"], g["last_seq"], g["count"], g["events"]) for g in gaps] == [
        ("25", "44", "20", ""), ("101", "103", "3", "")]  # fmt: skip
    assert {g["shard"] for g in gaps} == {"0"} and all(g["reason"] for g in gaps)


def test_merger_without_repair_channel_still_writes_and_counts(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    endpoint = f"ipc://{tmp_path}/bus-0.sock"
    pub = Publisher(endpoint, 0)
    merger = Merger([endpoint], redis.Redis.from_url(redis_server.url), "md", 10_000, 100, 0.005)
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


def test_a_new_run_after_a_clean_end_starts_afresh(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    def script(pub: Publisher) -> None:
        for i in range(1, 51):
            pub.publish(_trade(i))

    for run in (1, 2):  # the second merger reads the first one's checkpoint: every shard had ended
        merger = _merger(tmp_path, redis_server.url, 1)
        _run(merger, [Shard(tmp_path, 0, script)])
        st = merger.stats
        assert (st.restarts_seen, st.unended_epochs, st.lost, st.written) == (0, 0, 0, 50)
        assert _ids(redis_client, "md:trade:binance:BTC-USDT") == list(range(1, 51)) * run


def test_malformed_messages_are_counted_and_skipped_and_what_they_hid_is_repaired(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    """Messages on the merger's topics that are not a batch or a control message: two frames (so the
    next message is read out of step), four frames with a short header, a short header, a body that
    is no batch, an unknown topic. Each is counted and skipped to its end; a valid batch swallowed with
    one comes back by repair. (Frames past a valid third one are not looked for: that costs a
    getsockopt per message, and shards send three.)"""
    bad: list[list[bytes]] = [
        [wire.BATCH_TOPIC, b"\x00" * 18],
        [wire.BATCH_TOPIC, b"\x00" * 17, b'"trade:binance:X",["type","trade"]', b"extra"],
        [wire.CONTROL_TOPIC, b"short", b'["tick","1"]'],
        [wire.BATCH_TOPIC, b"\x00" * 18, b"not a batch"],
        [b"\x00new", b"\x00" * 14, b'["type","trade"]'],
    ]

    def script(pub: Publisher) -> None:
        for i in range(1, 201):
            if i % 40 == 0:
                pub._sock.send_multipart(bad[i // 40 - 1])
            pub.publish(_trade(i))
            pub.serve_repairs()

    merger = _merger(tmp_path, redis_server.url, 1)
    _run(merger, [Shard(tmp_path, 0, script)])
    assert _ids(redis_client, "md:trade:binance:BTC-USDT") == list(range(1, 201))
    assert merger.stats.bad_frames >= 5


def test_a_live_subscriber_gets_each_event_while_the_merger_gets_batches(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    """Both complete, on real sockets: the subscriber one message per event with its topic (its
    prefix filter applied by ZeroMQ) and the header of the batch that carried it; Redis every event."""

    def script(pub: Publisher) -> None:
        deadline = time.monotonic() + 10
        while not pub.live and time.monotonic() < deadline:  # what the shard's upkeep does every 5 ms
            pub.drain_subscriptions()
            time.sleep(0.002)
        assert pub.live
        for b in range(1, 41):  # 40 batches of 10 events, two symbols
            for i in range(b * 10 - 9, b * 10 + 1):
                pub.add(_trade(i, "BTC-USDT" if i % 2 else "ETH-USDT"))
            pub.flush()
            pub.serve_repairs()

    merger = _merger(tmp_path, redis_server.url, 1)
    shard = Shard(tmp_path, 0, script)
    with subscribe(shard.pub.endpoint, "trade.binance.ETH") as sub:
        _run(merger, [shard])
        got = [sub.receive(timeout=5.0) for _ in range(200)]
        assert sub.receive(timeout=0.2) is None
    assert got == [_trade(i, "ETH-USDT") for i in range(2, 401, 2)]
    assert sub.last_header == (0, shard.pub.epoch, 40)  # the last batch carried the last event
    assert _ids(redis_client, "md:trade:binance:ETH-USDT") == list(range(2, 401, 2))
    assert _ids(redis_client, "md:trade:binance:BTC-USDT") == list(range(1, 401, 2))
    assert merger.stats.written == 400 and merger.stats.bad_frames == 0
    assert redis_client.hget("md:checkpoint", "0") == f"{shard.pub.epoch}:40:end".encode()


def test_an_event_after_a_quiet_spell_is_written_at_once_and_a_busy_bus_gathers_one_write_per_interval(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    endpoint = f"ipc://{tmp_path}/bus-0.sock"
    pub = Publisher(endpoint, 0)  # no loop: each publish is a bus batch of one, sent at once
    merger = Merger([endpoint], redis.Redis.from_url(redis_server.url), "md", 10_000, 100, 0.3)
    assert pub.wait_for_subscriber(5.0) and merger.resume()
    key = "md:trade:binance:BTC-USDT"
    pub.publish(_trade(1))
    deadline = time.monotonic() + 5
    while merger.stats.batches == 0 and time.monotonic() < deadline:  # the step that reads it writes it
        merger.step()
    assert _ids(redis_client, key) == [1]
    # Within the interval after that write: what is on the bus, and what comes before the interval is
    # over, goes out in one write.
    pub.publish(_trade(2))
    later = threading.Timer(0.1, pub.publish, args=(_trade(3),))
    later.start()
    assert merger.step() == 2
    later.join()
    assert merger.stats.batches == 2 and merger.stats.written == 3
    assert _ids(redis_client, key) == [1, 2, 3]
    pub.close(1.0)
    merger.outbox.writer.close()
