"""Bybit codec: one test per message shape with exact fields, and the malformed shapes.

Frames are the examples of Bybit's v5 docs as protocols.md section E copies them (websocket/public
orderbook and trade, ws/connect for the acks and the pong; market/orderbook for REST), trimmed to a
few levels where noted; there is no Bybit recording in ``../shared/recordings``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Reply
from ingest.exchanges.bybit.codec import BybitCodec
from ingest.exchanges.bybit.symbols import canonical_symbol, native_symbol

TS = 1_700_000_000_123_456_789
MS = 1_000_000

# protocols.md E / docs websocket/public/orderbook (spot: ``ts`` before ``type``), two levels a side.
SNAPSHOT = (
    '{"topic":"orderbook.50.BTCUSDT","ts":1672304484978,"type":"snapshot","data":{"s":"BTCUSDT",'
    '"b":[["16493.50","0.006"],["16493.00","0.100"]],"a":[["16611.00","0.029"],["16612.00","0.213"]],'
    '"u":18521288,"seq":7961638724},"cts":1672304484976}'
)
# The zh docs' delta example (orderbook.50.BTCUSDT, asks only), and a delete.
DELTA = (
    '{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1671179923046,"data":{"s":"BTCUSDT","b":[],'
    '"a":[["17440.50","78.857"],["17442.00","1.510"]],"u":13079593,"seq":22520573260},"cts":1671179923040}'
)
TRADES = (
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":['
    '{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick",'
    '"i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617},'
    '{"T":1672304486866,"s":"BTCUSDT","S":"Sell","v":"0.250","p":"16578.00","i":"2290000000061666327",'
    '"BT":false,"seq":1783284617}]}'
)


@pytest.fixture
def codec() -> BybitCodec:
    return BybitCodec({"BTCUSDT": "BTC-USDT"})


def test_snapshot(codec: BybitCodec) -> None:
    assert codec.decode(SNAPSHOT, TS) == [
        BookSnapshot(
            exchange="bybit", symbol="BTC-USDT", native="BTCUSDT",
            bids=(("16493.50", "0.006"), ("16493.00", "0.100")),
            asks=(("16611.00", "0.029"), ("16612.00", "0.213")),
            seq=18521288, ts_exchange=1672304484978 * MS, ts_recv=TS, checksum=None,
        )
    ]  # fmt: skip
    assert codec.book_depth("btcusdt") == 50


def test_key_order_is_not_relied_on(codec: BybitCodec) -> None:
    """Spot puts ``ts`` before ``type``, futures after; any order decodes the same."""
    msg = orjson.loads(SNAPSHOT)
    reordered = {k: msg[k] for k in reversed(list(msg))}
    reordered["data"] = {k: msg["data"][k] for k in reversed(list(msg["data"]))}
    assert codec.decode(orjson.dumps(reordered), TS) == codec.decode(SNAPSHOT, TS)


def test_delta(codec: BybitCodec) -> None:
    assert codec.decode(DELTA.encode(), TS) == [
        BookDelta(
            exchange="bybit", symbol="BTC-USDT", native="BTCUSDT", bids=(),
            asks=(("17440.50", "78.857"), ("17442.00", "1.510")),
            first_seq=13079593, seq=13079593, ts_exchange=1671179923046 * MS, ts_recv=TS, checksum=None,
        )
    ]  # fmt: skip


def test_delta_zero_sizes_are_deletes(codec: BybitCodec) -> None:
    frame = DELTA.replace('"78.857"', '"0"').replace('"1.510"', '"0.000"')
    (delta,) = codec.decode(frame, TS)
    assert isinstance(delta, BookDelta)
    assert delta.asks == (("17440.50", "0"), ("17442.00", "0"))


def test_u_one_is_a_restart_whatever_the_type(codec: BybitCodec) -> None:
    """``u = 1``: the service restarted and the message is the whole book: a snapshot (overwrite),
    also when it comes typed ``delta``."""
    for kind in ("snapshot", "delta"):
        frame = DELTA.replace('"u":13079593', '"u":1').replace('"type":"delta"', f'"type":"{kind}"')
        assert codec.decode(frame, TS) == [
            BookSnapshot(
                "bybit", "BTC-USDT", "BTCUSDT", (), (("17440.50", "78.857"), ("17442.00", "1.510")), 1,
                1671179923046 * MS, TS,
            )
        ]  # fmt: skip


def test_other_depths_are_remembered_per_symbol() -> None:
    codec = BybitCodec()
    codec.decode(SNAPSHOT.replace("orderbook.50.", "orderbook.1000."), TS)
    codec.decode(
        SNAPSHOT.replace("orderbook.50.BTCUSDT", "orderbook.1.ETHBTC").replace('"s":"BTCUSDT"', '"s":"ETHBTC"'), TS
    )
    assert (codec.book_depth("BTCUSDT"), codec.book_depth("ETHBTC"), codec.book_depth("SOLUSDT")) == (1000, 1, None)


def test_trades_several_per_message(codec: BybitCodec) -> None:
    assert codec.decode(TRADES, TS) == [
        Trade(
            exchange="bybit", symbol="BTC-USDT", native="BTCUSDT", trade_id="20f43950-d8dd-5b31-9112-a178eb6023af",
            price="16578.50", qty="0.001", side="buy", ts_exchange=1672304486865 * MS, ts_recv=TS,
        ),
        Trade(
            exchange="bybit", symbol="BTC-USDT", native="BTCUSDT", trade_id="2290000000061666327",
            price="16578.00", qty="0.250", side="sell", ts_exchange=1672304486866 * MS, ts_recv=TS,
        ),
    ]  # fmt: skip


def test_symbols_not_in_the_settings_are_derived() -> None:
    frame = TRADES.replace("BTCUSDT", "ETHBTC")
    trades = BybitCodec().decode(frame, TS)
    assert {(t.symbol, t.native) for t in trades if isinstance(t, Trade)} == {("ETH-BTC", "ETHBTC")}


@pytest.mark.parametrize(
    ("frame", "reply"),
    [
        # ws/connect: the public spot subscribe ack.
        (
            '{"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b",'
            '"req_id":"10001","op":"subscribe"}',
            Reply("10001", None),
        ),
        (
            '{"success":true,"ret_msg":"","conn_id":"cejreassvfrsfvb9v1a0-2m","op":"unsubscribe","req_id":"unsub-BTCUSDT"}',
            Reply("unsub-BTCUSDT", None),
        ),
        # A refusal: its reason is the error.
        (
            '{"success":false,"ret_msg":"error:handler not found,topic:orderbook.40.BTCUSDT",'
            '"conn_id":"d4b6","req_id":"sub1","op":"subscribe"}',
            Reply("sub1", "error:handler not found,topic:orderbook.40.BTCUSDT"),
        ),
        # ws/connect: the spot pong (no req_id), the same with one, and the private streams' shape.
        (
            '{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}',
            Reply("pong", None),
        ),
        ('{"success":true,"ret_msg":"pong","conn_id":"0970e817","req_id":"ping","op":"ping"}', Reply("ping", None)),
        (
            '{"req_id":"test","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}',
            Reply("test", None),
        ),
    ],
)  # fmt: skip
def test_replies(codec: BybitCodec, frame: str, reply: Reply) -> None:
    assert codec.decode(frame, TS) == [reply]


def test_topics_we_do_not_normalize(codec: BybitCodec) -> None:
    frame = (
        '{"topic":"tickers.BTCUSDT","ts":1673853746003,"type":"snapshot","cs":2588407389,"data":{"symbol":"BTCUSDT"}}'
    )
    assert codec.decode(frame, TS) == []


def _mutate(frame: str, path: list[Any], value: Any) -> bytes:
    msg = orjson.loads(frame)
    target = msg
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return orjson.dumps(msg)


@pytest.mark.parametrize(
    ("frame", "path", "value", "message"),
    [
        (SNAPSHOT, ["type"], "partial", "field 'type' must be snapshot or delta"),
        (SNAPSHOT, ["type"], KeyError, "missing field 'type'"),
        (SNAPSHOT, ["ts"], "1672304484978", "field 'ts' must be an integer"),
        (SNAPSHOT, ["ts"], -1, "not a millisecond time"),
        (SNAPSHOT, ["data"], [], "field 'data' must be an object"),
        (SNAPSHOT, ["data", "u"], 0, "field 'u' must be 1 or more"),
        (SNAPSHOT, ["data", "u"], "18521288", "field 'u' must be an integer"),
        (SNAPSHOT, ["data", "u"], KeyError, "missing field 'u'"),
        (SNAPSHOT, ["data", "seq"], -5, "non-negative 64-bit integer"),
        (SNAPSHOT, ["data", "b", 0], ["16493.50", "0.006", "1"], "not [price, size]"),
        (SNAPSHOT, ["data", "b", 0], [16493.5, "0.006"], "price or size is not a string"),
        (SNAPSHOT, ["data", "a", 0], ["1e5", "0.029"], "not decimal"),
        (SNAPSHOT, ["data", "a", 0], ["-16611.00", "0.029"], "not decimal"),
        (SNAPSHOT, ["data", "a", 0], ["0.00", "0.029"], "at price zero"),
        (SNAPSHOT, ["data", "s"], "ETHUSDT", "is not orderbook.<depth>.ETHUSDT"),
        (SNAPSHOT, ["topic"], "orderbook.BTCUSDT", "is not orderbook.<depth>.BTCUSDT"),
        (SNAPSHOT, ["topic"], 7, "field 'topic' must be a string"),
        (SNAPSHOT, ["topic"], "orderbook.\u00b250.BTCUSDT", "is not orderbook.<depth>.BTCUSDT"),  # found by fuzzing
        (SNAPSHOT, ["topic"], "orderbook.050.BTCUSDT", "is not orderbook.<depth>.BTCUSDT"),
        (TRADES.replace("BTCUSDT", "BTCXYZ"), ["type"], "snapshot", "known quote asset"),
        (TRADES, ["data", 0, "S"], "buy", "must be Buy or Sell"),
        (TRADES, ["data", 0, "i"], "", "is not a trade id"),
        (TRADES, ["data", 0, "i"], "12 34", "is not a trade id"),
        (TRADES, ["data", 0, "p"], "0", "must not be zero"),
        (TRADES, ["data", 0, "v"], "0.000", "must not be zero"),
        (TRADES, ["data", 0, "T"], 10**17, "not a millisecond time"),
        (TRADES, ["data", 0, "BT"], "false", "must be a boolean"),
        (TRADES, ["data", 1, "s"], "ETHUSDT", "a trade of 'ETHUSDT' in 'publicTrade.BTCUSDT'"),
        (TRADES, ["data"], {}, "field 'data' must be a list"),
        ('{"success":true,"op":"ping"}', ["op"], "order", "unknown op 'order'"),
        ('{"success":true,"op":"subscribe"}', ["success"], "true", "must be a boolean"),
    ],
)
def test_malformed_frames_are_decode_errors(
    codec: BybitCodec, frame: str, path: list[Any], value: Any, message: str
) -> None:
    with pytest.raises(DecodeError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        codec.decode(_mutate(frame, path, value), TS)


@pytest.mark.parametrize("frame", ["", "[]", "null", '{"topic"', b"\xff\x00", '{"data":{}}', "pong"])
def test_not_a_message(codec: BybitCodec, frame: str | bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(frame, TS)


REST_BOOK = (
    '{"retCode":0,"retMsg":"OK","result":{"s":"BTCUSDT","a":[["65557.7","16.606555"]],'
    '"b":[["65485.47","47.081829"],["65485.46","0.1"]],"ts":1716863719031,"u":230704,"seq":1432604333,'
    '"cts":1716863718905},"retExtInfo":{},"time":1716863719382}'
)


def test_rest_orderbook(codec: BybitCodec) -> None:
    """docs v5 market/orderbook's response example (a level added to the bids)."""
    assert codec.decode_snapshot(REST_BOOK, "BTCUSDT", TS) == BookSnapshot(
        "bybit", "BTC-USDT", "BTCUSDT", (("65485.47", "47.081829"), ("65485.46", "0.1")),
        (("65557.7", "16.606555"),), 230704, 1716863719031 * MS, TS,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"retCode":10001,"retMsg":"Illegal category","result":{},"time":1}', "refused: 10001: Illegal category"),
        (REST_BOOK.replace('"s":"BTCUSDT"', '"s":"ETHUSDT"'), "the orderbook of 'ETHUSDT'"),
        (REST_BOOK.replace('"ts":1716863719031,', ""), "missing field 'ts'"),
        ("[]", "expected a JSON object"),
    ],
)
def test_rest_orderbook_refused_or_malformed(codec: BybitCodec, body: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        codec.decode_snapshot(body, "BTCUSDT", TS)


def test_symbols() -> None:
    assert [canonical_symbol(n) for n in ("BTCUSDT", "ethbtc", "SOLUSDC", "MNTUSDE", "BTCEUR")] == [
        "BTC-USDT", "ETH-BTC", "SOL-USDC", "MNT-USDE", "BTC-EUR",
    ]  # fmt: skip
    assert native_symbol("btc-usdt") == "BTCUSDT"
    for bad in ("BTCXYZ", "USDT", "BT-CUSDT"):
        with pytest.raises(ValueError):
            canonical_symbol(bad)
    for bad in ("BTCUSDT", "A-B-C", "-USDT"):
        with pytest.raises(ValueError):
            native_symbol(bad)
