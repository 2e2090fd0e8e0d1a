"""Kraken's spec (subscription frames, resubscription, depth, keepalive, replay codec by URL), its
continuity rule (apply everything: the checksum is the integrity check) and its symbol names."""

from __future__ import annotations

import orjson
import pytest

from ingest.book.sync import sync_for
from ingest.events import BookDelta
from ingest.exchanges import SPECS
from ingest.exchanges.base import Subscription
from ingest.exchanges.kraken.checksum import book_checksum
from ingest.exchanges.kraken.codec import KrakenCodec
from ingest.exchanges.kraken.codec_v1 import KrakenV1Codec
from ingest.exchanges.kraken.sequence import KrakenRule
from ingest.exchanges.kraken.spec import SPEC
from ingest.exchanges.kraken.symbols import canonical_symbol, native_symbol


def frames(texts: list[str]) -> list[dict[str, object]]:
    return [orjson.loads(t) for t in texts]


def test_spec_is_discovered_with_kraken_facts() -> None:
    assert SPECS["kraken"] is SPEC
    assert (SPEC.name, SPEC.ws_url, SPEC.rest_url) == ("kraken", "wss://ws.kraken.com/v2", "https://api.kraken.com")
    assert (SPEC.snapshot_source, SPEC.default_depth, SPEC.truncate_to_depth) == ("stream", 10, True)
    assert (SPEC.ws_ping, SPEC.app_ping, SPEC.liveness_timeout) == (False, None, 5.0)
    assert SPEC.checksum is book_checksum
    assert SPEC.max_streams_per_connection == 400  # 200 symbols with book and trades
    sub = Subscription(("BTC/USD",), ("book",), 10)
    assert SPEC.connect_url(SPEC.ws_url, sub) == "wss://ws.kraken.com/v2"
    assert SPEC.connect_url("ws://127.0.0.1:9/kraken", sub) == "ws://127.0.0.1:9/kraken"
    with pytest.raises(ValueError, match="stream"):
        SPEC.snapshot_url(SPEC.rest_url, "BTC/USD")


def test_subscribe_frames_instrument_first_then_book_trade_heartbeat() -> None:
    sub = Subscription(("BTC/USD", "ETH/EUR"), ("trades", "book"), 25)
    assert frames(SPEC.subscribe_frames(sub)) == [
        {"method": "subscribe", "params": {"channel": "instrument", "snapshot": True}, "req_id": 1},
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/EUR"], "depth": 25,
                                           "snapshot": True}, "req_id": 2},
        {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/EUR"], "snapshot": False},
         "req_id": 3},
        {"method": "subscribe", "params": {"channel": "heartbeat"}, "req_id": 4},
    ]  # fmt: skip
    only_trades = frames(SPEC.subscribe_frames(Subscription(("BTC/USD",), ("trades",))))
    assert [f["params"]["channel"] for f in only_trades] == ["instrument", "trade", "heartbeat"]  # type: ignore[index]
    default_depth = frames(SPEC.subscribe_frames(Subscription(("BTC/USD",), ("book",))))
    assert default_depth[1]["params"]["depth"] == 10  # type: ignore[index]


def test_resubscribe_one_symbols_book() -> None:
    sub = Subscription(("BTC/USD", "ETH/EUR"), ("trades", "book"), 100)
    assert SPEC.resubscribe_frames is not None
    assert frames(SPEC.resubscribe_frames("ETH/EUR", sub)) == [
        {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["ETH/EUR"], "depth": 100}, "req_id": 5},
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["ETH/EUR"], "depth": 100, "snapshot": True},
         "req_id": 6},
    ]  # fmt: skip


@pytest.mark.parametrize("depth", [5, 20, 2000])
def test_depth_kraken_does_not_offer_is_refused(depth: int) -> None:
    with pytest.raises(ValueError, match="10, 25, 100, 500, 1000"):
        SPEC.subscribe_frames(Subscription(("BTC/USD",), ("book",), depth))


def test_sync_for_kraken_verifies_checksums_and_truncates() -> None:
    sync = sync_for(SPEC, "BTC-USD", "BTC/USD")
    assert (sync.checksum, sync.depth, sync.stream_snapshots) == (book_checksum, 10, True)
    assert sync_for(SPEC, "BTC-USD", "BTC/USD", 1000).depth == 1000


def test_replay_codec_by_url() -> None:
    assert SPEC.replay_codec is not None
    assert isinstance(SPEC.replay_codec("wss://ws.kraken.com"), KrakenV1Codec)
    assert isinstance(SPEC.replay_codec("wss://ws.kraken.com/"), KrakenV1Codec)
    assert isinstance(SPEC.replay_codec("wss://beta-ws.kraken.com"), KrakenV1Codec)
    assert isinstance(SPEC.replay_codec("wss://ws.kraken.com/v2"), KrakenCodec)
    assert isinstance(SPEC.replay_codec("ws://127.0.0.1:8000/kraken"), KrakenCodec)
    assert isinstance(SPEC.new_codec({"BTC/USD": "BTC-USD"}), KrakenCodec)


def test_rule_applies_everything() -> None:
    delta = BookDelta("kraken", "BTC-USD", "BTC/USD", (), (), None, None, 0, 0, 1)
    rule = KrakenRule()
    assert (rule.first(5, delta), rule.next(5, delta)) == ("apply", "apply")
    assert SPEC.sequence_rule.next(0, delta) == "apply"


@pytest.mark.parametrize(
    ("native", "canonical", "v2"),
    [
        ("BTC/USD", "BTC-USD", "BTC/USD"),
        ("XBT/USD", "BTC-USD", "BTC/USD"),
        ("ADA/XBT", "ADA-BTC", "ADA/BTC"),
        ("XDG/EUR", "DOGE-EUR", "DOGE/EUR"),
        ("matic/usd", "MATIC-USD", "MATIC/USD"),
        ("USDT/USD", "USDT-USD", "USDT/USD"),
    ],
)
def test_symbols(native: str, canonical: str, v2: str) -> None:
    assert canonical_symbol(native) == SPEC.canonical_symbol(native) == canonical
    assert native_symbol(canonical) == SPEC.native_symbol(canonical) == v2
    assert native_symbol("XBT-USD") == "BTC/USD"


@pytest.mark.parametrize("bad", ["BTCUSD", "BTC/", "/USD", "A/B/C", ""])
def test_bad_symbols(bad: str) -> None:
    with pytest.raises(ValueError):
        canonical_symbol(bad)
    with pytest.raises(ValueError):
        native_symbol(bad.replace("/", "-"))
