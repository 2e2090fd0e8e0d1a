"""The Coinbase spec: one subscribe per channel, the level2 resubscribe, keepalive and sync settings,
the sequence rule that applies every update, and the scope setting."""

from __future__ import annotations

import orjson

from ingest.events import BookDelta
from ingest.exchanges import get_spec
from ingest.exchanges.base import Resync, Subscription
from ingest.exchanges.coinbase import sequence
from ingest.exchanges.coinbase.codec import CoinbaseCodec
from ingest.exchanges.coinbase.sequence import CoinbaseRule
from ingest.exchanges.coinbase.spec import SPEC, spec_for

SUB = Subscription(("BTC-USD", "ETH-USD"), ("trades", "book"))


def test_spec_is_discovered_with_coinbase_facts() -> None:
    assert get_spec("coinbase") is SPEC
    assert SPEC.ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert SPEC.rest_url == "https://api.coinbase.com"
    assert SPEC.snapshot_source == "stream" and SPEC.resubscribe_frames is not None
    assert SPEC.ws_ping is False and SPEC.app_ping is None and SPEC.liveness_timeout == 5.0
    assert SPEC.trade_ids_contiguous and SPEC.trade_history is not None
    assert SPEC.checksum is None and SPEC.default_depth == 0 and not SPEC.truncate_to_depth
    assert SPEC.connect_url(SPEC.ws_url, SUB) == SPEC.ws_url


def test_one_subscribe_message_per_channel_heartbeats_first() -> None:
    assert [orjson.loads(f) for f in SPEC.subscribe_frames(SUB)] == [
        {"type": "subscribe", "channel": "heartbeats"},
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "market_trades"},
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "level2"},
    ]
    books_only = Subscription(("BTC-USD",), ("book",))
    assert [orjson.loads(f)["channel"] for f in SPEC.subscribe_frames(books_only)] == ["heartbeats", "level2"]


def test_resubscribe_is_unsubscribe_then_subscribe_of_one_products_level2() -> None:
    assert SPEC.resubscribe_frames is not None
    assert [orjson.loads(f) for f in SPEC.resubscribe_frames("ETH-USD", SUB)] == [
        {"type": "unsubscribe", "product_ids": ["ETH-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["ETH-USD"], "channel": "level2"},
    ]


def test_snapshot_url_is_the_public_product_book() -> None:
    assert SPEC.snapshot_url("https://api.coinbase.com/", "BTC-USD") == (
        "https://api.coinbase.com/api/v3/brokerage/market/product_book?product_id=BTC-USD"
    )


def test_the_rule_applies_every_update() -> None:
    rule = CoinbaseRule()
    delta = BookDelta("coinbase", "BTC-USD", "BTC-USD", (), (), None, None, 0, 0)
    assert (rule.first(5, delta), rule.next(5, delta), rule.missing(5, delta)) == ("apply", "apply", None)
    assert SPEC.sequence_rule.next(0, delta) == "apply"


def test_the_scope_is_a_setting_defaulting_to_per_connection() -> None:
    assert sequence.SEQUENCE_SCOPE == "connection"
    codec = SPEC.new_codec({})
    assert isinstance(codec, CoinbaseCodec) and codec.scope == "connection"
    per_channel = spec_for("channel").new_codec({"BTC-USD": "BTC-USD"})
    assert isinstance(per_channel, CoinbaseCodec) and per_channel.scope == "channel"
    # The same stream under each scope: l2_data 0, heartbeats 1, l2_data 2 is in order per connection
    # and a hole per channel.
    l2 = '{"channel":"l2_data","timestamp":"2024-01-01T00:00:00Z","sequence_num":SEQ,"events":[]}'
    frames = [l2.replace("SEQ", str(n)) for n in (0, 2)]
    heartbeat = ('{"channel":"heartbeats","timestamp":"2024-01-01T00:00:00Z","sequence_num":1,'
                 '"events":[{"current_time":"t","heartbeat_counter":1}]}')  # fmt: skip
    for scope, expected in (("connection", []), ("channel", [Resync("sequence_num 1..1 missing in l2_data")])):
        c = spec_for(scope).new_codec({})  # type: ignore[arg-type]
        c.decode(frames[0], 0)
        c.decode(heartbeat, 0)
        assert c.decode(frames[1], 0) == expected, scope
