from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ROOT

from ingest.errors import SettingsError
from ingest.settings import Settings, auto_shards, dump, from_dict, load, reference, usable_cpus

FEED = '[[feeds]]\nexchange = "binance"\nsymbols = ["BTC-USDT"]\n'


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "settings.toml"
    p.write_text(text)
    return p


def test_project_settings_file_is_valid() -> None:
    s = load(ROOT / "settings.toml")
    assert s.redis.url == "embedded"
    assert len(s.feeds[0].symbols) >= 20


def test_defaults_and_types(tmp_path: Path) -> None:
    s = load(_write(tmp_path, "[cluster]\nshards = 2\n[redis]\nbatch_interval = 1\n" + FEED))
    assert s.shard_count() == 2
    assert s.redis.batch_interval == 1.0 and isinstance(s.redis.batch_interval, float)
    assert s.feeds[0].channels == ("trades", "book")
    assert s.var_path == (tmp_path / "var").resolve()
    assert s.bus_endpoints() == [f"ipc://{tmp_path.resolve()}/var/bus-{i}.sock" for i in range(2)]


@pytest.mark.parametrize(("cpus", "shards"), [(1, 1), (2, 1), (3, 2), (8, 7), (64, 63)])
def test_auto_is_a_shard_per_core_less_one_for_the_merger_and_redis(cpus: int, shards: int) -> None:
    assert auto_shards(cpus) == shards


def test_auto_counts_the_cpus_this_process_may_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load(_write(tmp_path, FEED))
    assert s.cluster.shards == "auto"
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)  # a 4-CPU cpuset
    assert usable_cpus() == 4
    assert s.shard_count() == 3
    assert s.bus_endpoints() == [f"ipc://{tmp_path.resolve()}/var/bus-{i}.sock" for i in range(3)]
    assert s.shards_summary() == "3 shards (auto: 4 CPUs, one left for the merger and Redis)"
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert s.shards_summary() == "1 shard (auto: 2 CPUs, one left for the merger and Redis)"
    assert load(_write(tmp_path, "[cluster]\nshards = 1\n" + FEED)).shards_summary() == "1 shard"
    assert load(_write(tmp_path, "[cluster]\nshards = 3\n" + FEED)).shards_summary() == "3 shards"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[cluster]\nshardz = 2\n", "cluster.shardz", "did you mean 'shards'"),
        ("[cluster]\nshards = 0\n", "cluster.shards", '"auto" or a whole number'),
        ("[cluster]\nshards = \"many\"\n", "cluster.shards", '"auto" or a whole number'),
        ("[redis]\nmaxlen = \"big\"\n", "redis.maxlen", "must be a whole number"),
        ("[redis]\nurl = \"http://x\"\n", "redis.url", "embedded"),
        ("[log]\nlevel = \"loud\"\n", "log.level", "must be one of"),
        ("[cluster]\nbus_endpoint = \"ipc://x.sock\"\n", "cluster.bus_endpoint", "{shard}"),
        ("[simulator]\ntrade_ratio = 2\n", "simulator.trade_ratio", "0..1"),
        ("[[feeds]]\nexchange = \"nope\"\nsymbols = [\"BTC-USDT\"]\n", "feeds[0].exchange", "unknown exchange"),
        ("[[feeds]]\nexchange = \"binance\"\n", "feeds[0].symbols", "is required"),
        ("[[feeds]]\nexchange = \"binance\"\nsymbols = [\"btcusdt\"]\n", "feeds[0].symbols", "canonical symbol"),
        ("[[feeds]]\nexchange = \"binance\"\nsymbols = [\"BTC-USDT\"]\nchannels = [\"l3\"]\n",
         "feeds[0].channels", "must be one of"),
        ("[[feeds]]\nexchange = \"binance\"\nsymbols = [\"BTC-USDT\", \"BTC-USDT\"]\n", "feeds[0].symbols", "twice"),
        ("shards = 2\n", "shards", "unknown key"),
        ("[[feeds]]\nexchange = \"kraken\"\nsymbols = [\"BTC-USD\"]\nbook_depth = 20\n", "feeds[0].book_depth",
         "kraken offers 10, 25, 100, 500, 1000"),
    ],
)
def test_bad_settings_name_the_file_and_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load(path)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        load(tmp_path / "absent.toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load(_write(tmp_path, "[cluster\n"))


def test_settings_are_frozen_and_dump_round_trips(tmp_path: Path) -> None:
    s = load(ROOT / "settings.toml")
    with pytest.raises(AttributeError):
        s.redis.url = "x"  # type: ignore[misc]
    again = load(_write(tmp_path, dump(s)))
    assert again.feeds == s.feeds and again.cluster == s.cluster and again.redis == s.redis


def test_reference_documents_every_key() -> None:
    ref = reference()
    for section in ("cluster", "redis", "simulator", "log"):
        assert f"[{section}]" in ref
    assert "[[feeds]]" in ref
    for key in ("shards", "bus_endpoint", "maxlen", "batch_size", "rate", "symbols", "ws_url"):
        assert f"`{key}`" in ref


def test_from_dict_defaults() -> None:
    assert from_dict({}) == Settings(source="<dict>")


def test_readme_reference_is_current() -> None:
    assert reference().strip() in (ROOT / "README.md").read_text(), "run: ingest check-config --reference"


def test_stream_count_follows_the_subscriptions_and_bars() -> None:
    feeds = [{"exchange": "binance", "symbols": ["BTC-USDT", "ETH-USDT"]},
             {"exchange": "okx", "symbols": ["BTC-USDT"], "channels": ["book"]}]  # fmt: skip
    # binance: book, trades and bars per symbol; okx: its book; a conn stream per exchange; the gaps
    assert from_dict({"feeds": feeds}).stream_count() == 2 * 3 + 1 + 2 + 1
    assert from_dict({"feeds": feeds, "bars": {"enabled": False}}).stream_count() == 2 * 2 + 1 + 2 + 1
    assert from_dict({}).redis.maxlen == 100_000
