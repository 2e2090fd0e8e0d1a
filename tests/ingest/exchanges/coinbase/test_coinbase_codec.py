"""Coinbase Advanced Trade codec: one test per message shape with exact fields, and the malformed shapes.

Frames are the documented examples protocols.md section D copies (level2 snapshot, market_trades
snapshot, heartbeats, the subscriptions answer), the real hummingbot level2 update it quotes (its
elided offer completed with the same event time), and a real market_trades capture from ccxt issue
#27606 (several trades a message, newest first).
"""

from __future__ import annotations

import orjson
import pytest

from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Reply, Resync
from ingest.exchanges.coinbase.codec import CoinbaseCodec, taker_side
from ingest.exchanges.coinbase.messages import rfc3339_ns
from ingest.exchanges.coinbase.symbols import canonical_symbol, native_symbol

TS = 1_700_000_000_123_456_789
S = 1_000_000_000

DOC_SNAPSHOT = (
    '{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,'
    '"events":[{"type":"snapshot","product_id":"BTC-USD","updates":['
    '{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":"0.06317902"},'
    '{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.3","new_quantity":"0.02"}]}]}'
)
HUMMINGBOT_UPDATE = (
    '{"channel":"l2_data","client_id":"","timestamp":"2024-10-08T09:10:36.120390407Z","sequence_num":14,'
    '"events":[{"type":"update","product_id":"BTC-USD","updates":['
    '{"side":"bid","event_time":"2024-10-08T09:10:35.171517Z","price_level":"62317.89","new_quantity":"0.032355"},'
    '{"side":"offer","event_time":"2024-10-08T09:10:35.171517Z","price_level":"62394.77",'
    '"new_quantity":"0.0170024"}]}]}'
)
DOC_TRADES = (
    '{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z","sequence_num":0,'
    '"events":[{"type":"snapshot","trades":[{"trade_id":"000000000","product_id":"ETH-USD","price":"1260.01",'
    '"size":"0.3","side":"BUY","time":"2019-08-14T20:42:27.265Z"}]}]}'
)
# ccxt issue #27606, sequence_num 1854 (BTC-USD, 2025-12-31): four trades, newest first.
CCXT_TRADES = (
    '{"channel":"market_trades","client_id":"","timestamp":"2025-12-31T06:00:13.715382929Z","sequence_num":1854,'
    '"events":[{"type":"update","trades":['
    '{"product_id":"BTC-USD","trade_id":"929248663","price":"88355.58","size":"0.00003338",'
    '"time":"2025-12-31T06:00:13.654578Z","side":"BUY"},'
    '{"product_id":"BTC-USD","trade_id":"929248662","price":"88355.59","size":"0.00099993",'
    '"time":"2025-12-31T06:00:13.613311Z","side":"SELL"},'
    '{"product_id":"BTC-USD","trade_id":"929248661","price":"88355.59","size":"0.0001",'
    '"time":"2025-12-31T06:00:13.6Z","side":"SELL"},'
    '{"product_id":"BTC-USD","trade_id":"929248660","price":"88355.58","size":"0.0002",'
    '"time":"2025-12-31T06:00:13.5Z","side":"BUY"}]}]}'
)
DOC_HEARTBEAT = (
    '{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:56.121961769Z","sequence_num":0,'
    '"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",'
    '"heartbeat_counter":"3049"}]}'
)
DOC_SUBSCRIPTIONS = (
    '{"channel":"subscriptions","client_id":"","timestamp":"2026-04-07T14:30:00.000000Z","sequence_num":0,'
    '"events":[{"subscriptions":{"level2":["BTC-USD"],"market_trades":["BTC-USD","ETH-USD"]}}]}'
)


def envelope(channel: str, seq: int, events: list[dict[str, object]]) -> str:
    return orjson.dumps(
        {"channel": channel, "client_id": "", "timestamp": "2024-01-01T00:00:00Z", "sequence_num": seq,
         "events": events}
    ).decode()  # fmt: skip


def heartbeat(seq: int, counter: int | str) -> str:
    return envelope("heartbeats", seq, [{"current_time": "x", "heartbeat_counter": counter}])


def l2_update(seq: int, product: str = "BTC-USD", price: str = "100.5", qty: str = "1") -> str:
    update = {"side": "bid", "event_time": "2024-01-01T00:00:00.5Z", "price_level": price, "new_quantity": qty}
    return envelope("l2_data", seq, [{"type": "update", "product_id": product, "updates": [update]}])


# -- documented messages -------------------------------------------------------------------------------


def test_level2_snapshot() -> None:
    assert CoinbaseCodec().decode(DOC_SNAPSHOT, TS) == [
        BookSnapshot(
            exchange="coinbase",
            symbol="BTC-USD",
            native="BTC-USD",
            bids=(("21921.73", "0.06317902"), ("21921.3", "0.02")),
            asks=(),
            seq=None,
            ts_exchange=1_675_974_770_714_964_855,
            ts_recv=TS,
        )
    ]


def test_level2_update_bid_and_offer_are_absolute_sizes_without_sequence() -> None:
    assert CoinbaseCodec().decode(HUMMINGBOT_UPDATE, TS) == [
        BookDelta(
            exchange="coinbase",
            symbol="BTC-USD",
            native="BTC-USD",
            bids=(("62317.89", "0.032355"),),
            asks=(("62394.77", "0.0170024"),),
            first_seq=None,
            seq=None,
            ts_exchange=1_728_378_635_171_517_000,  # the updates' event_time, not the envelope's
            ts_recv=TS,
        )
    ]


def test_snapshot_levels_are_sorted_best_first_and_empty_ones_left_out() -> None:
    updates = [
        {"side": s, "event_time": "1970-01-01T00:00:00Z", "price_level": p, "new_quantity": q}
        for s, p, q in [("bid", "9.5", "1"), ("offer", "11", "2"), ("bid", "10", "3"), ("offer", "10.5", "4"),
                        ("bid", "8", "0"), ("offer", "12", "0.000")]
    ]  # fmt: skip
    [snap] = CoinbaseCodec().decode(envelope("l2_data", 0, [{"type": "snapshot", "product_id": "ETH-USD",
                                                             "updates": updates}]), TS)  # fmt: skip
    assert isinstance(snap, BookSnapshot)
    assert snap.bids == (("10", "3"), ("9.5", "1")) and snap.asks == (("10.5", "4"), ("11", "2"))
    assert snap.ts_exchange == 1_704_067_200 * S


def test_zero_quantity_deletes_spelled_zero() -> None:
    [delta] = CoinbaseCodec().decode(l2_update(0, qty="0.00000000"), TS)
    assert isinstance(delta, BookDelta) and delta.bids == (("100.5", "0"),)


def test_several_events_and_products_in_one_message() -> None:
    upd = {"side": "offer", "event_time": "2024-01-01T00:00:01Z", "price_level": "2", "new_quantity": "5"}
    frame = envelope("l2_data", 0, [
        {"type": "update", "product_id": "BTC-USD", "updates": [upd]},
        {"type": "update", "product_id": "ETH-USD", "updates": [upd, upd | {"side": "bid", "price_level": "1"}]},
        {"type": "update", "product_id": "BTC-USD", "updates": []},
    ])  # fmt: skip
    out = CoinbaseCodec().decode(frame, TS)
    assert [(e.symbol, e.bids, e.asks) for e in out if isinstance(e, BookDelta)] == [
        ("BTC-USD", (), (("2", "5"),)),
        ("ETH-USD", (("1", "5"),), (("2", "5"),)),
        ("BTC-USD", (), ()),
    ]
    assert out[2].ts_exchange == 1_704_067_200 * S  # no updates: the envelope's time


def test_market_trades_snapshot() -> None:
    """The docs' example: ``side`` BUY is the maker's, so the taker sold."""
    assert CoinbaseCodec().decode(DOC_TRADES, TS) == [
        Trade(
            exchange="coinbase",
            symbol="ETH-USD",
            native="ETH-USD",
            trade_id="000000000",
            price="1260.01",
            qty="0.3",
            side="sell",
            ts_exchange=1_565_815_347_265_000_000,
            ts_recv=TS,
        )
    ]


def test_market_trades_come_out_in_id_order_with_the_taker_side() -> None:
    """Real capture: trades at the ask (88355.59) are labelled SELL (the resting seller), at the bid BUY;
    the takers bought at the ask and sold at the bid."""
    out = CoinbaseCodec().decode(CCXT_TRADES, TS)
    assert [(t.trade_id, t.price, t.qty, t.side) for t in out if isinstance(t, Trade)] == [
        ("929248660", "88355.58", "0.0002", "sell"),
        ("929248661", "88355.59", "0.0001", "buy"),
        ("929248662", "88355.59", "0.00099993", "buy"),
        ("929248663", "88355.58", "0.00003338", "sell"),
    ]
    assert out[0].ts_exchange == 1_767_160_813_500_000_000


def test_taker_side_is_the_other_side_of_the_makers() -> None:
    assert (taker_side("BUY"), taker_side("SELL")) == ("sell", "buy")


def test_uuid_trade_ids_are_accepted_and_ordered_by_time() -> None:
    trade = {"product_id": "BTC-USD", "price": "1", "size": "1", "side": "SELL"}
    frame = envelope("market_trades", 0, [{"type": "update", "trades": [
        trade | {"trade_id": "34b080bf-fcfd-445a-832b-46b5ddc65601", "time": "2021-05-31T09:59:59.5Z"},
        trade | {"trade_id": "7", "time": "2021-05-31T09:59:58Z"},
    ]}])  # fmt: skip
    assert [t.trade_id for t in CoinbaseCodec().decode(frame, TS) if isinstance(t, Trade)] == [
        "7", "34b080bf-fcfd-445a-832b-46b5ddc65601"
    ]  # fmt: skip


def test_heartbeats_decode_to_nothing_and_their_counter_is_checked() -> None:
    codec = CoinbaseCodec()
    assert codec.decode(DOC_HEARTBEAT, TS) == []
    assert codec.decode(heartbeat(1, 3050), TS) == []  # an integer counter, as nautilus reads it
    assert codec.decode(heartbeat(2, "3051"), TS) == []
    assert codec.stats.heartbeat_gaps == 0
    assert codec.decode(heartbeat(3, "3060"), TS) == []
    assert codec.stats.heartbeat_gaps == 1 and codec.stats.holes == 0


def test_subscriptions_answer_and_error() -> None:
    assert CoinbaseCodec().decode(DOC_SUBSCRIPTIONS, TS) == [Reply("subscriptions", None)]
    error = '{"type":"error","message":"Failed to subscribe","reason":"No channels provided"}'
    assert CoinbaseCodec().decode(error, TS) == [Reply("error", "Failed to subscribe: No channels provided")]
    assert CoinbaseCodec().decode('{"type":"error","message":"bad"}', TS) == [Reply("error", "bad")]


def test_other_channels_decode_to_nothing() -> None:
    frame = envelope("ticker", 0, [{"type": "snapshot", "tickers": [{"product_id": "BTC-USD", "price": "1"}]}])
    assert CoinbaseCodec().decode(frame, TS) == []


# -- sequence_num ------------------------------------------------------------------------------------------


def test_a_hole_on_the_connection_resyncs_every_book_before_the_messages_own_events() -> None:
    codec = CoinbaseCodec()
    assert codec.decode(DOC_SNAPSHOT, TS)  # 0: any first value
    assert codec.decode(heartbeat(1, 1), TS) == []
    out = codec.decode(l2_update(4), TS)
    assert out[0] == Resync("sequence_num 2..3 missing on the connection")
    assert isinstance(out[1], BookDelta) and len(out) == 2
    assert (codec.stats.holes, codec.stats.resyncs) == (1, 1)


def test_a_hole_in_any_channel_resyncs_under_the_connection_scope() -> None:
    codec = CoinbaseCodec(scope="connection")
    codec.decode(heartbeat(7, 1), TS)
    assert codec.decode(heartbeat(9, 2), TS) == [Resync("sequence_num 8..8 missing on the connection")]


def test_equal_or_lower_values_are_ignored_and_counted() -> None:
    codec = CoinbaseCodec()
    assert codec.decode(l2_update(5), TS)
    assert codec.decode(l2_update(5, price="1"), TS) == []
    assert codec.decode(l2_update(3, price="2"), TS) == []
    assert codec.decode(heartbeat(6, 1), TS) == []
    assert [type(e) for e in codec.decode(l2_update(7), TS)] == [BookDelta]
    assert (codec.stats.duplicates, codec.stats.holes) == (2, 0)


def test_an_undecodable_message_does_not_advance_the_counter() -> None:
    """A frame that could not be used is a lost frame: the next one shows the hole."""
    codec = CoinbaseCodec()
    codec.decode(l2_update(0), TS)
    with pytest.raises(DecodeError):
        codec.decode(l2_update(1, price="0"), TS)
    assert isinstance(codec.decode(l2_update(2), TS)[0], Resync)


def test_channel_scope_counts_each_channel_on_its_own() -> None:
    codec = CoinbaseCodec(scope="channel")
    assert codec.scope == "channel"
    codec.decode(l2_update(10), TS)
    codec.decode(heartbeat(0, 1), TS)
    assert [type(e) for e in codec.decode(l2_update(11), TS)] == [BookDelta]  # interleaved: no hole
    assert codec.decode(heartbeat(5, 2), TS) == []  # a hole in heartbeats touches no book
    trade = {"product_id": "BTC-USD", "trade_id": "1", "price": "1", "size": "1", "side": "BUY",
             "time": "2024-01-01T00:00:00Z"}  # fmt: skip
    codec.decode(envelope("market_trades", 0, [{"type": "update", "trades": [trade]}]), TS)
    out = codec.decode(envelope("market_trades", 3, [{"type": "update", "trades": [trade | {"trade_id": "2"}]}]), TS)
    assert [type(e) for e in out] == [Trade]  # trades are checked by their ids instead
    out = codec.decode(l2_update(13), TS)
    assert out[0] == Resync("sequence_num 12..12 missing in l2_data") and isinstance(out[1], BookDelta)
    assert codec.decode(l2_update(13), TS) == []
    assert (codec.stats.holes, codec.stats.resyncs, codec.stats.duplicates) == (3, 1, 1)


def test_an_unknown_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="scope"):
        CoinbaseCodec(scope="product")  # type: ignore[arg-type]


# -- malformed ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", "bad JSON"),
        ("[1]", "expected a JSON object"),
        ('{"channel":"l2_data"}', "missing field 'timestamp'"),
        (DOC_SNAPSHOT.replace('"sequence_num":0', '"sequence_num":-1'), "'sequence_num' must be a non-negative"),
        (DOC_SNAPSHOT.replace('"sequence_num":0', '"sequence_num":"0"'), "'sequence_num' must be an integer"),
        (DOC_SNAPSHOT.replace('"sequence_num":0', '"sequence_num":true'), "'sequence_num' must be an integer"),
        (DOC_SNAPSHOT.replace('"side":"bid"', '"side":"ask"', 1), "'side' must be bid or offer"),
        (DOC_SNAPSHOT.replace('"21921.73"', '"0.00"'), "'price_level' is not a positive decimal"),
        (DOC_SNAPSHOT.replace('"21921.73"', '"-1"'), "'price_level' is not a positive decimal"),
        (DOC_SNAPSHOT.replace('"0.02"', '"1e-3"'), "'new_quantity' is not a decimal"),
        (DOC_SNAPSHOT.replace('"0.02"', "0.02"), "'new_quantity' must be a string"),
        (DOC_SNAPSHOT.replace('"type":"snapshot"', '"type":"delta"'), "'type' must be snapshot or update"),
        (DOC_SNAPSHOT.replace('"BTC-USD"', '"BTC-USD-PERP"'), "must be BASE-QUOTE"),
        (DOC_SNAPSHOT.replace("2023-02-09T20", "2023-02-30T20"), "not a calendar date"),
        (DOC_SNAPSHOT.replace("2023-02-09T20", "2263-02-09T20"), "out of range"),
        (DOC_SNAPSHOT.replace("1970-01-01T00:00:00Z", "1970-01-01T00:00:00+02:00", 1), "not an RFC 3339 UTC"),
        (DOC_SNAPSHOT.replace('"updates":[', '"updates":[1,'), "'updates' must hold objects"),
        (DOC_SNAPSHOT.replace('"events":[', '"events":{"a":').replace("]}]}", "]}}}"), "'events' must be a list"),
        (DOC_TRADES.replace('"BUY"', '"buy"'), "'side' must be BUY or SELL"),
        (DOC_TRADES.replace('"0.3"', '"0"'), "'size' must not be zero"),
        (DOC_TRADES.replace('"000000000"', '"12 34"'), "neither digits nor a UUID"),
        (DOC_TRADES.replace('"000000000"', '"1' + "0" * 19 + '"'), "neither digits nor a UUID"),
        (DOC_HEARTBEAT.replace('"3049"', '"-3049"'), "'heartbeat_counter' is not a string of digits"),
        (DOC_HEARTBEAT.replace('"3049"', "-3"), "'heartbeat_counter' must be a non-negative"),
        (DOC_HEARTBEAT.replace('"3049"', "3.0"), "'heartbeat_counter' must be an integer"),
        ('{"type":"error"}', "missing field 'message'"),
    ],
)
def test_malformed_frames_are_decode_errors(frame: str, error: str) -> None:
    with pytest.raises(DecodeError, match=error.replace("(", r"\(")):
        CoinbaseCodec().decode(frame, TS)


def test_rfc3339() -> None:
    assert rfc3339_ns("1970-01-01T00:00:00Z") == 0
    assert rfc3339_ns("2024-10-08T09:10:35.171517Z") == 1_728_378_635_171_517_000
    assert rfc3339_ns("2023-02-09T20:32:50.714964855Z") == 1_675_974_770_714_964_855
    assert rfc3339_ns("2000-02-29T23:59:59.1+00:00") == 951_868_799_100_000_000
    for bad in ("2024-10-08 09:10:35.1234567890Z", "2024-10-08T24:00:00Z", "1969-12-31T23:59:59Z", "2024-1-8T1:1:1Z"):
        with pytest.raises(DecodeError):
            rfc3339_ns(bad)


# -- REST product book and symbols ----------------------------------------------------------------------


def test_rest_product_book_snapshot() -> None:
    body = (
        '{"pricebook":{"product_id":"BTC-USD","bids":[{"price":"100","size":"1"},{"price":"101","size":"2"}],'
        '"asks":[{"price":"102","size":"3"}],"time":"2024-01-01T00:00:00Z"},"last":"101.5"}'
    )
    assert CoinbaseCodec().decode_snapshot(body, "btc-usd", TS) == BookSnapshot(
        exchange="coinbase", symbol="BTC-USD", native="BTC-USD", bids=(("101", "2"), ("100", "1")),
        asks=(("102", "3"),), seq=None, ts_exchange=1_704_067_200 * S, ts_recv=TS,
    )  # fmt: skip
    with pytest.raises(DecodeError, match="a product book of 'BTC-USD', asked for 'ETH-USD'"):
        CoinbaseCodec().decode_snapshot(body, "ETH-USD", TS)
    with pytest.raises(DecodeError, match="'pricebook' must be an object"):
        CoinbaseCodec().decode_snapshot('{"error":"NOT_FOUND"}', "BTC-USD", TS)


def test_symbols() -> None:
    assert canonical_symbol("BTC-USD") == "BTC-USD" and native_symbol("eth-usdc") == "ETH-USDC"
    for bad in ("BTCUSD", "BTC-USD-PERP", "-USD", "BTC/USD"):
        with pytest.raises(ValueError):
            native_symbol(bad)


def test_a_reordered_pair_resyncs_and_the_late_one_is_dropped() -> None:
    """Message 2 before message 1: 1 looks missing (every book resyncs), and when 1 comes late it is
    below the last value and dropped, never applied over the resync."""
    codec = CoinbaseCodec()
    codec.decode(DOC_SNAPSHOT, TS)  # 0
    out = codec.decode(l2_update(2, price="2"), TS)
    assert out[0] == Resync("sequence_num 1..1 missing on the connection") and isinstance(out[1], BookDelta)
    assert codec.decode(l2_update(1, price="1"), TS) == []
    assert (codec.stats.holes, codec.stats.duplicates) == (1, 1)
