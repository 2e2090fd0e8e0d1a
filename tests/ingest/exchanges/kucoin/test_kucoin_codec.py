"""KuCoin codec: one test per message shape with exact fields, and every malformed shape.

Frames are the documented examples protocols.md section E' copies (level2, the bullet answer, the
subscribe/ack pair, welcome, ping/pong) and KuCoin's docs examples of the fields it lists (the match
message, the level2_100 snapshot, the trade history). There is no KuCoin recording in
``../shared/recordings``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Greeting, Reply, Subscription
from ingest.exchanges.kucoin.codec import KucoinCodec
from ingest.exchanges.kucoin.spec import SPEC, topics
from ingest.exchanges.kucoin.symbols import canonical_symbol, native_symbol

TS = 1_700_000_000_123_456_789
MS = 1_000_000

# protocols.md E', "level2 message".
LEVEL2 = (
    '{"type":"message","topic":"/market/level2:BTC-USDT","subject":"trade.l2update",'
    '"data":{"changes":{"asks":[["18906","0.00331","14103845"]],"bids":[["18891.9","0.15688","14103847"]]},'
    '"sequenceStart":14103844,"sequenceEnd":14103847,"symbol":"BTC-USDT","time":1663747970273}}'
)
# KuCoin docs, "Match Execution Data" (the fields protocols.md E' lists).
MATCH = (
    '{"type":"message","topic":"/market/match:BTC-USDT","subject":"trade.l3match",'
    '"data":{"sequence":"1545896669145","type":"match","symbol":"BTC-USDT","side":"buy",'
    '"price":"0.08200000000000000000","size":"0.01022222000000000000","tradeId":"5c24c5da03aa673885cd67aa",'
    '"takerOrderId":"5c24c5d903aa6772d55b371e","makerOrderId":"5c2187d003aa677bd09d5c93",'
    '"time":"1545913818099033203"}}'
)
# KuCoin docs, "Get Part Order Book (aggregated)".
SNAPSHOT = (
    '{"code":"200000","data":{"sequence":"3262786978","time":1550653727731,'
    '"bids":[["6500.12","0.45054140"],["6500.11","0.45054140"]],'
    '"asks":[["6500.16","0.57753524"],["6500.15","0.57753524"]]}}'
)


@pytest.fixture
def codec() -> KucoinCodec:
    return KucoinCodec()


def level2(changes: dict[str, Any], start: int = 10, end: int = 12, **data: Any) -> str:
    body = {"changes": changes, "sequenceStart": start, "sequenceEnd": end, "symbol": "BTC-USDT", "time": 1} | data
    return orjson.dumps(
        {"type": "message", "topic": "/market/level2:BTC-USDT", "subject": "trade.l2update", "data": body}
    ).decode()


# -- level2 -----------------------------------------------------------------------------------------


def test_level2_update(codec: KucoinCodec) -> None:
    assert codec.decode(LEVEL2, TS) == [
        BookDelta(
            exchange="kucoin",
            symbol="BTC-USDT",
            native="BTC-USDT",
            bids=(("18891.9", "0.15688"),),
            asks=(("18906", "0.00331"),),
            first_seq=14103844,
            seq=14103847,
            ts_exchange=1663747970273 * MS,
            ts_recv=TS,
        )
    ]


def test_level2_price_zero_is_left_out_and_size_zero_deletes(codec: KucoinCodec) -> None:
    frame = level2({"asks": [["0", "0", "11"], ["18906", "0", "12"]], "bids": [["0", "0", "10"]]})
    [delta] = codec.decode(frame, TS)
    assert isinstance(delta, BookDelta)
    assert delta.asks == (("18906", "0"),)
    assert delta.bids == ()
    assert (delta.first_seq, delta.seq) == (10, 12)  # the no-ops' sequences are still covered


def test_level2_of_no_ops_only_is_still_a_delta(codec: KucoinCodec) -> None:
    """It advances the sequence: dropping it would look like a gap to the next update."""
    [delta] = codec.decode(level2({"asks": [["0", "0", "7"]], "bids": []}, start=7, end=7), TS)
    assert isinstance(delta, BookDelta)
    assert (delta.bids, delta.asks, delta.first_seq, delta.seq) == ((), (), 7, 7)


def test_level2_changes_apply_in_their_sequence_order(codec: KucoinCodec) -> None:
    frame = level2({"asks": [], "bids": [["100", "2", "12"], ["100", "1", "11"], ["99", "0.50", "10"]]})
    [delta] = codec.decode(frame, TS)
    assert isinstance(delta, BookDelta)
    assert delta.bids == (("99", "0.50"), ("100", "1"), ("100", "2"))


def test_level2_zero_spelled_with_decimals_is_a_delete_and_a_no_op(codec: KucoinCodec) -> None:
    frame = level2({"asks": [["0.000", "1", "10"], ["5.1", "0.00000000", "11"]], "bids": []})
    [delta] = codec.decode(frame, TS)
    assert isinstance(delta, BookDelta)
    assert delta.asks == (("5.1", "0"),)


def test_level2_without_time_is_stamped_with_the_receive_time(codec: KucoinCodec) -> None:
    frame = level2({"asks": [], "bids": [["1", "1", "10"]]}, time=None)
    [delta] = codec.decode(frame, TS)
    assert isinstance(delta, BookDelta) and delta.ts_exchange == TS


def test_level2_sequences_as_strings_are_read(codec: KucoinCodec) -> None:
    [delta] = codec.decode(level2({"asks": [], "bids": []}, start="5", end="9"), TS)  # type: ignore[arg-type]
    assert isinstance(delta, BookDelta) and (delta.first_seq, delta.seq) == (5, 9)


# -- match ------------------------------------------------------------------------------------------


def test_match(codec: KucoinCodec) -> None:
    assert codec.decode(MATCH, TS) == [
        Trade(
            exchange="kucoin",
            symbol="BTC-USDT",
            native="BTC-USDT",
            trade_id="1545896669145",
            price="0.08200000000000000000",
            qty="0.01022222000000000000",
            side="buy",
            ts_exchange=1545913818099033203,
            ts_recv=TS,
        )
    ]


def test_match_time_as_an_integer_and_without_order_ids(codec: KucoinCodec) -> None:
    msg = orjson.loads(MATCH)
    msg["data"]["time"] = 1545913818099033203
    del msg["data"]["takerOrderId"], msg["data"]["makerOrderId"]
    msg["data"]["side"] = "sell"
    [trade] = codec.decode(orjson.dumps(msg), TS)
    assert isinstance(trade, Trade)
    assert (trade.ts_exchange, trade.side, trade.trade_id) == (1545913818099033203, "sell", "1545896669145")


# -- control messages -------------------------------------------------------------------------------


def test_welcome_is_a_greeting(codec: KucoinCodec) -> None:
    assert codec.decode('{"id":"hQvf8jkno","type":"welcome"}', TS) == [Greeting()]


def test_pong_decodes_to_nothing(codec: KucoinCodec) -> None:
    assert codec.decode('{"id":"1545910590801","type":"pong"}', TS) == []


def test_ack_is_a_reply(codec: KucoinCodec) -> None:
    assert codec.decode('{"id":"1545910660739","type":"ack"}', TS) == [Reply("1545910660739", None)]


def test_error_is_a_reply_with_the_error(codec: KucoinCodec) -> None:
    frame = '{"id":"2","type":"error","code":404,"data":"topic /market/level2:NOPE-USDT is not found"}'
    assert codec.decode(frame, TS) == [Reply("2", "404: topic /market/level2:NOPE-USDT is not found")]
    assert codec.decode('{"type":"error","code":"401","data":"token is invalid"}', TS) == [
        Reply("", "401: token is invalid")
    ]


def test_other_topics_decode_to_nothing(codec: KucoinCodec) -> None:
    frame = (
        '{"type":"message","topic":"/market/ticker:BTC-USDT","subject":"trade.ticker",'
        '"data":{"sequence":"1545896668986","price":"0.08","size":"0.011","bestAsk":"0.08","bestAskSize":"0.18",'
        '"bestBid":"0.049","bestBidSize":"0.036"}}'
    )
    assert codec.decode(frame, TS) == []


# -- REST snapshot ----------------------------------------------------------------------------------


def test_level2_100_snapshot(codec: KucoinCodec) -> None:
    assert codec.decode_snapshot(SNAPSHOT, "btc-usdt", TS) == BookSnapshot(
        exchange="kucoin",
        symbol="BTC-USDT",
        native="BTC-USDT",
        bids=(("6500.12", "0.45054140"), ("6500.11", "0.45054140")),
        asks=(("6500.16", "0.57753524"), ("6500.15", "0.57753524")),
        seq=3262786978,
        ts_exchange=1550653727731 * MS,
        ts_recv=TS,
    )


@pytest.mark.parametrize(
    "body",
    [
        '{"code":"400100","msg":"symbol invalid"}',
        '{"code":"200000","data":null}',
        '{"code":"200000","data":{"sequence":"x1","time":1,"bids":[],"asks":[]}}',
        '{"code":"200000","data":{"sequence":"1","time":1,"bids":[["0","1"]],"asks":[]}}',
        '{"code":"200000","data":{"sequence":"1","time":1,"bids":[["1"]],"asks":[]}}',
        '{"code":"200000","data":{"sequence":"1","bids":[],"asks":[]}}',
        '[]',
        "not json",
    ],
)
def test_bad_snapshots_are_decode_errors(codec: KucoinCodec, body: str) -> None:
    with pytest.raises(DecodeError):
        codec.decode_snapshot(body, "BTC-USDT", TS)


# -- malformed frames -------------------------------------------------------------------------------


def _mutated(frame: str, path: tuple[str, ...], value: Any) -> str:
    msg = orjson.loads(frame)
    target = msg
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return orjson.dumps(msg).decode()


_DELETE = object()


@pytest.mark.parametrize(
    ("frame", "path", "value"),
    [
        (LEVEL2, ("data", "sequenceStart"), _DELETE),
        (LEVEL2, ("data", "sequenceStart"), 14103848),  # after sequenceEnd
        (LEVEL2, ("data", "sequenceEnd"), -1),
        (LEVEL2, ("data", "sequenceEnd"), 2**63),
        (LEVEL2, ("data", "sequenceEnd"), 1.5),
        (LEVEL2, ("data", "sequenceEnd"), True),
        (LEVEL2, ("data", "changes"), _DELETE),
        (LEVEL2, ("data", "changes", "asks"), [["18906", "0.00331"]]),  # no sequence
        (LEVEL2, ("data", "changes", "asks"), [["-1", "1", "1"]]),
        (LEVEL2, ("data", "changes", "asks"), [["1e3", "1", "1"]]),
        (LEVEL2, ("data", "changes", "asks"), [[18906, "1", "1"]]),
        (LEVEL2, ("data", "changes", "bids"), {"18891.9": "1"}),
        (LEVEL2, ("data", "symbol"), "BTCUSDT"),
        (LEVEL2, ("data", "time"), 2**62),
        (LEVEL2, ("subject",), "trade.l3match"),
        (LEVEL2, ("data",), []),
        (MATCH, ("data", "price"), "0"),
        (MATCH, ("data", "size"), "0.000"),
        (MATCH, ("data", "side"), "BUY"),
        (MATCH, ("data", "sequence"), "abc"),
        (MATCH, ("data", "sequence"), _DELETE),
        (MATCH, ("data", "time"), "-5"),
        (MATCH, ("data", "tradeId"), 5),
        (MATCH, ("subject",), "trade.l2update"),
        (MATCH, ("type",), "notice"),
        (MATCH, ("type",), 1),
        (MATCH, ("topic",), None),
    ],
)
def test_malformed_frames_are_decode_errors(codec: KucoinCodec, frame: str, path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(DecodeError):
        codec.decode(_mutated(frame, path, value), TS)


@pytest.mark.parametrize(
    "frame",
    ["", "[]", "null", '{"id":"1"}', '{"type":"welcome","id":{}}', '{"type":"error","id":"1"}', b"\xff\xfe"],
)
def test_other_garbage_is_a_decode_error(codec: KucoinCodec, frame: str | bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(frame, TS)


# -- symbols and subscriptions ----------------------------------------------------------------------


def test_symbols_are_the_canonical_names() -> None:
    assert canonical_symbol("BTC-USDT") == native_symbol("btc-usdt") == "BTC-USDT"
    for bad in ("BTCUSDT", "XBTUSDTM", "A-B-C", "-USDT"):
        with pytest.raises(ValueError):
            canonical_symbol(bad)


def test_subscribe_frames_batch_100_symbols_per_topic() -> None:
    natives = tuple(f"A{i}-USDT" for i in range(150))
    frames = [orjson.loads(f) for f in SPEC.subscribe_frames(Subscription(natives, ("book", "trades")))]
    assert [f["id"] for f in frames] == ["1", "2", "3", "4"]
    assert {(f["type"], f["privateChannel"], f["response"]) for f in frames} == {("subscribe", False, True)}
    assert frames[0]["topic"] == "/market/level2:" + ",".join(natives[:100])
    assert frames[1]["topic"] == "/market/level2:" + ",".join(natives[100:])
    assert frames[2]["topic"] == "/market/match:" + ",".join(natives[:100])
    assert topics(("BTC-USDT", "ETH-USDT"), ("book",)) == ["/market/level2:BTC-USDT,ETH-USDT"]


def test_the_documented_subscribe_shape() -> None:
    """protocols.md E': ``{"id":..,"type":"subscribe","topic":"/market/level2:BTC-USDT",
    "privateChannel":false,"response":true}``."""
    [frame] = SPEC.subscribe_frames(Subscription(("BTC-USDT",), ("book",)))
    assert orjson.loads(frame) == {
        "id": "1", "type": "subscribe", "topic": "/market/level2:BTC-USDT", "privateChannel": False, "response": True
    }  # fmt: skip
    assert SPEC.snapshot_url("https://api.kucoin.com/", "BTC-USDT") == (
        "https://api.kucoin.com/api/v1/market/orderbook/level2_100?symbol=BTC-USDT"
    )


def test_resubscribe_frames_unsubscribe_then_subscribe_one_level2_topic() -> None:
    assert SPEC.resubscribe_frames is not None
    sub = Subscription(("BTC-USDT", "ETH-USDT"), ("book",))
    frames = [orjson.loads(f) for f in SPEC.resubscribe_frames("ETH-USDT", sub)]
    assert frames == [
        {"id": "unsub-ETH-USDT", "type": "unsubscribe", "topic": "/market/level2:ETH-USDT", "privateChannel": False,
         "response": True},
        {"id": "resub-ETH-USDT", "type": "subscribe", "topic": "/market/level2:ETH-USDT", "privateChannel": False,
         "response": True},
    ]  # fmt: skip
