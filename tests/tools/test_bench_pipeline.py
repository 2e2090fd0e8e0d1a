"""The pipeline harness: the simulator's frames go through the shard's per-event code, whole."""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import orjson
import uvloop

from bus import wire
from ingest.events import BookDelta, BookSnapshot, BookStatus, Event, Trade
from ingest.exchanges import get_spec
from tools.bench import bench_symbols
from tools.bench_pipeline import Pipeline, ShardPath, evictor, main, make_frames
from tools.sim.exchanges.binance import native


def test_every_frame_reaches_the_publisher_in_order() -> None:
    symbols = bench_symbols("binance", 3)
    natives = {native(s): s for s in symbols}
    bodies, frames = make_frames(symbols, rate=100, seconds=0.5, seed=7, levels=20, trade_ratio=0.3)
    pipe = Pipeline(get_spec("binance"), natives)
    pipe.start(bodies, 1)
    pipe.run(frames, 1)
    kinds = [type(e) for e in pipe.published]
    assert kinds[:6] == [BookSnapshot, BookStatus] * 3
    assert {e.state for e in pipe.published if isinstance(e, BookStatus)} == {"valid"}
    trades = [e for e in pipe.published if isinstance(e, Trade)]
    deltas = [e for e in pipe.published if isinstance(e, BookDelta)]
    assert len(trades) == sum('"e":"trade"' in f for f in frames) > 0
    assert len(deltas) == sum('"e":"depthUpdate"' in f for f in frames) > 0
    for n in natives:  # every trade once, in id order; every update applied, none skipped
        ids = [int(t.trade_id) for t in trades if t.native == n]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        mine = [d for d in deltas if d.native == n]
        assert all(b.first_seq == (a.seq or 0) + 1 for a, b in pairwise(mine))
        assert pipe.syncs[n].state == "live" and pipe.syncs[n].last_seq == mine[-1].seq


def test_main_prints_one_json_object() -> None:
    out: list[str] = []
    assert main(["--symbols", "2", "--seconds", "0.2", "--repeat", "1"], out=out.append) == 0
    result = orjson.loads(out[0])
    assert result["frames"] > 0 and result["published"] >= result["frames"]
    assert result["cpu_us_per_frame"] == result["runs_us_per_frame"][0] > 0
    assert result["shard_us_per_frame"] == result["shard_runs_us_per_frame"][0] > 0
    assert result["shard_published"] == result["published"]


def test_main_times_the_shard_path_with_and_without_the_caches_when_asked() -> None:
    out: list[str] = []
    assert main(["--symbols", "2", "--seconds", "0.2", "--repeat", "1", "--cold", "3"], out=out.append) == 0
    cold = orjson.loads(out[0])["cold"]
    assert cold["every"] == 3 and cold["us_per_frame"] > 0 and cold["warm_us_per_frame"] > 0
    out.clear()
    assert main(["--symbols", "2", "--seconds", "0.2", "--repeat", "1"], out=out.append) == 0
    assert orjson.loads(out[0])["cold"] is None


def test_a_pass_with_the_caches_evicted_publishes_what_one_without_does() -> None:
    symbols = bench_symbols("binance", 3)
    natives = {native(s): s for s in symbols}
    bodies, frames = make_frames(symbols, rate=100, seconds=0.3, seed=7, levels=20, trade_ratio=0.3)
    raw = [f.encode() for f in frames]

    async def published(evicted: bool) -> list[Event]:
        path = ShardPath(get_spec("binance"), natives, batch=5)
        path.start(bodies, 1)
        path.run(raw, evictor() if evicted else None)
        batches, _ = path.publisher.frames(1, path.publisher.seq, 1 << 30)
        path.close()
        return [dataclasses.replace(e, ts_recv=0) for _, body, _ in batches for _, e in wire.decode_batch(body)]

    one_pass = uvloop.run(published(False))
    assert uvloop.run(published(True)) == one_pass and len(one_pass) > len(raw)


def test_the_shard_path_publishes_what_the_pipeline_does() -> None:
    """The session, feed, bars and publisher send the same events, in the same order, as the spelled-out glue."""
    symbols = bench_symbols("binance", 3)
    natives = {native(s): s for s in symbols}
    bodies, frames = make_frames(symbols, rate=100, seconds=0.5, seed=7, levels=20, trade_ratio=0.3)

    async def shard() -> list[Event]:
        path = ShardPath(get_spec("binance"), natives, batch=4)
        path.start(bodies, 1)
        path.run([f.encode() for f in frames])
        batches, cut = path.publisher.frames(1, path.publisher.seq, 1 << 30)
        path.close()
        assert not cut and [seq for seq, _, _ in batches] == list(range(1, path.publisher.seq + 1))
        return [e for _, body, _ in batches for _, e in wire.decode_batch(body)]

    got = uvloop.run(shard())
    pipe = Pipeline(get_spec("binance"), natives)
    pipe.start(bodies, 1)
    pipe.run(frames, 1)
    assert len(got) == len(pipe.published) > len(frames)
    assert [dataclasses.replace(e, ts_recv=0) for e in got] == [
        dataclasses.replace(e, ts_recv=0) for e in pipe.published
    ]
