"""OKX codec: one test per message shape with exact fields, and every malformed shape.

Frames are the examples of OKX's docs as protocols.md section C copies them (there is no OKX
recording in ``../shared/recordings``), trimmed where noted, plus the older shapes it describes
(books without seqIds, trades without count).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Reconnect, Reply, Subscription
from ingest.exchanges.okx.codec import OkxCodec
from ingest.exchanges.okx.spec import SPEC
from ingest.exchanges.okx.symbols import canonical_symbol, native_symbol

TS = 1_700_000_000_123_456_789
MS = 1_000_000
BOOKS_ARG = '"arg":{"channel":"books","instId":"BTC-USDT"}'


@pytest.fixture
def codec() -> OkxCodec:
    return OkxCodec()


def books(action: str, data: str) -> str:
    return f'{{{BOOKS_ARG},"action":"{action}","data":[{data}]}}'


def test_books_snapshot(codec: OkxCodec) -> None:
    """The docs' push example (two levels a side of its eight): its checksum is passed on as sent."""
    frame = books(
        "snapshot",
        '{"asks":[["8476.98","415","0","13"],["8477","7","0","2"]],'
        '"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"]],'
        '"ts":"1597026383085","checksum":-855196043,"prevSeqId":-1,"seqId":123456}',
    )
    assert codec.decode(frame, TS) == [
        BookSnapshot(
            exchange="okx",
            symbol="BTC-USDT",
            native="BTC-USDT",
            bids=(("8476.97", "256"), ("8475.55", "101")),
            asks=(("8476.98", "415"), ("8477", "7")),
            seq=123456,
            ts_exchange=1597026383085 * MS,
            ts_recv=TS,
            checksum=-855196043,
        )
    ]


def test_books_update_with_a_delete_and_no_checksum(codec: OkxCodec) -> None:
    frame = books(
        "update",
        '{"asks":[["8476.98","0","0","0"]],"bids":[["8476.97","300","0","14"]],'
        '"ts":"1597026383185","checksum":0,"prevSeqId":123456,"seqId":123470}',
    )
    assert codec.decode(frame.encode(), TS) == [
        BookDelta(
            exchange="okx",
            symbol="BTC-USDT",
            native="BTC-USDT",
            bids=(("8476.97", "300"),),
            asks=(("8476.98", "0"),),
            first_seq=123456,
            seq=123470,
            ts_exchange=1597026383185 * MS,
            ts_recv=TS,
            checksum=None,  # 0: deprecated, "not provided"
        )
    ]


def test_books_update_with_a_checksum_and_a_delete_spelled_otherwise(codec: OkxCodec) -> None:
    frame = books(
        "update",
        '{"asks":[["1.5","0.000","0","0"]],"bids":[],"ts":"1","checksum":831078360,"prevSeqId":4,"seqId":9}',
    )
    (delta,) = codec.decode(frame, TS)
    assert isinstance(delta, BookDelta)
    assert (delta.asks, delta.bids, delta.checksum) == ((("1.5", "0"),), (), 831078360)


def test_keepalive_and_reset_updates(codec: OkxCodec) -> None:
    keepalive = books("update", '{"asks":[],"bids":[],"ts":"1","checksum":0,"prevSeqId":15,"seqId":15}')
    reset = books("update", '{"asks":[],"bids":[["9","1","0","1"]],"ts":"2","checksum":0,"prevSeqId":15,"seqId":3}')
    assert codec.decode(keepalive, TS) == [BookDelta("okx", "BTC-USDT", "BTC-USDT", (), (), 15, 15, 1 * MS, TS, None)]
    assert codec.decode(reset, TS) == [
        BookDelta("okx", "BTC-USDT", "BTC-USDT", (("9", "1"),), (), 15, 3, 2 * MS, TS, None)
    ]


def test_books_recorded_before_the_seqid_chain(codec: OkxCodec) -> None:
    """2022-era messages have only ts and checksum: no ids, and the checksum is what checks them."""
    snap = books("snapshot", '{"asks":[["2","1","0","1"]],"bids":[["1","1","0","1"]],"ts":"5","checksum":-1}')
    update = books("update", '{"asks":[],"bids":[["1","2","0","1"]],"ts":"6","checksum":7}')
    assert codec.decode(snap, TS) == [
        BookSnapshot("okx", "BTC-USDT", "BTC-USDT", (("1", "1"),), (("2", "1"),), None, 5 * MS, TS, -1)
    ]
    assert codec.decode(update, TS) == [
        BookDelta("okx", "BTC-USDT", "BTC-USDT", (("1", "2"),), (), None, None, 6 * MS, TS, 7)
    ]


def test_books_l2_tbt_has_the_same_shape(codec: OkxCodec) -> None:
    frame = books("update", '{"asks":[],"bids":[],"ts":"1","checksum":0,"prevSeqId":1,"seqId":1}')
    assert codec.decode(frame.replace('"books"', '"books-l2-tbt"'), TS)[0] == codec.decode(frame, TS)[0]


def test_trades_aggregated_with_count(codec: OkxCodec) -> None:
    """The docs' example: ``count`` 3 means fills 130639472..130639474 of one taker order at one price,
    ``sz`` their total; the event keeps the element's granularity with the last fill's id."""
    frame = (
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474",'
        '"px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3","source":"0","seqId":1234}]}'
    )
    assert codec.decode(frame, TS) == [
        Trade(
            exchange="okx",
            symbol="BTC-USDT",
            native="BTC-USDT",
            trade_id="130639474",
            price="42219.9",
            qty="0.12060306",
            side="buy",  # OKX's side is the taker's
            ts_exchange=1630048897897 * MS,
            ts_recv=TS,
        )
    ]


def test_trades_old_shape_and_several_elements(codec: OkxCodec) -> None:
    """Older sessions lack count, source and seqId; a push may carry more than one element."""
    frame = (
        '{"arg":{"channel":"trades","instId":"ETH-BTC"},"data":['
        '{"instId":"ETH-BTC","tradeId":"11","px":"0.05","sz":"2","side":"sell","ts":"10"},'
        '{"instId":"ETH-BTC","tradeId":"12","px":"0.051","sz":"1.5","side":"buy","ts":"11"}]}'
    )
    assert codec.decode(frame, TS) == [
        Trade("okx", "ETH-BTC", "ETH-BTC", "11", "0.05", "2", "sell", 10 * MS, TS),
        Trade("okx", "ETH-BTC", "ETH-BTC", "12", "0.051", "1.5", "buy", 11 * MS, TS),
    ]


def test_subscribe_and_unsubscribe_acks(codec: OkxCodec) -> None:
    ack = '{"id":"1512","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}'
    assert codec.decode(ack, TS) == [Reply("1512", None)]
    unsub = '{"event":"unsubscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}'
    assert codec.decode(unsub, TS) == [Reply("", None)]


def test_error_event(codec: OkxCodec) -> None:
    err = '{"id":"1512","event":"error","code":"60012","msg":"Invalid request: {\\"op\\"}","connId":"a4d3ae55"}'
    assert codec.decode(err, TS) == [Reply("1512", '60012: Invalid request: {"op"}')]
    assert codec.decode('{"event":"error","code":60018,"msg":"no such channel"}', TS) == [
        Reply("", "60018: no such channel")
    ]


@pytest.mark.parametrize("frame", ["pong", b"pong"])
def test_the_text_pong_is_a_reply_not_json(codec: OkxCodec, frame: str | bytes) -> None:
    assert codec.decode(frame, TS) == [Reply("pong", None)]


def test_notice_64008_asks_to_reconnect(codec: OkxCodec) -> None:
    notice = (
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. '
        'Please reconnect.","connId":"a4d3ae55"}'
    )
    (decoded,) = codec.decode(notice, TS)
    assert isinstance(decoded, Reconnect) and decoded.reason.startswith("okx notice 64008: The connection")
    assert codec.decode('{"event":"notice","code":"64099","msg":"something else"}', TS) == []


def test_channels_we_do_not_normalize_are_ignored(codec: OkxCodec) -> None:
    tickers = '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"9999.99"}]}'
    books5 = '{"arg":{"channel":"books5","instId":"BTC-USDT"},"data":[{"asks":[],"bids":[],"ts":"1"}]}'
    count = '{"event":"channel-conn-count","channel":"orders","connCount":"2","connId":"a4d3ae55"}'
    for frame in (tickers, books5, count):
        assert codec.decode(frame, TS) == []


UPDATE = '"asks":[],"bids":[],"ts":"1","checksum":0,"prevSeqId":1,"seqId":2'
TRADE = '"instId":"BTC-USDT","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"'


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("{", id="bad-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param("", id="empty"),
        pytest.param("ping", id="ping-text"),
        pytest.param("[1]", id="list-not-dict"),
        pytest.param('{"hello":"world"}', id="neither-event-nor-push"),
        pytest.param('{"event":5}', id="event-not-string"),
        pytest.param('{"event":"mystery"}', id="unknown-event"),
        pytest.param('{"event":"error","msg":"x"}', id="error-no-code"),
        pytest.param('{"event":"notice","code":"64008"}', id="notice-no-msg"),
        pytest.param('{"event":"subscribe","arg":"books"}', id="ack-arg-not-object"),
        pytest.param('{"event":"subscribe","id":15}', id="ack-id-int"),
        pytest.param('{"arg":"books","data":[]}', id="arg-not-object"),
        pytest.param('{"arg":{"instId":"BTC-USDT"},"data":[]}', id="arg-no-channel"),
        pytest.param('{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[]}', id="books-no-action"),
        pytest.param(books("partial", "{" + UPDATE + "}"), id="books-bad-action"),
        pytest.param(f'{{{BOOKS_ARG},"action":"update","data":{{}}}}', id="books-data-not-list"),
        pytest.param(books("update", "5"), id="books-element-not-object"),
        pytest.param(books("update", '{"asks":[],"bids":[],"ts":"1"}').replace("BTC-USDT", "BTC-USDT-SWAP"), id="swap"),
        pytest.param(books("update", '{"bids":[],"ts":"1"}'), id="books-no-asks"),
        pytest.param(books("update", '{"asks":[],"bids":[]}'), id="books-no-ts"),
        pytest.param(books("update", '{"asks":[],"bids":[],"ts":1}'), id="ts-number"),
        pytest.param(books("update", '{"asks":[],"bids":[],"ts":"1.5"}'), id="ts-not-digits"),
        pytest.param(books("update", '{"asks":[],"bids":[],"ts":"1","seqId":"2","prevSeqId":1}'), id="seqid-str"),
        pytest.param(books("update", '{"asks":[],"bids":[],"ts":"1","checksum":"5"}'), id="checksum-str"),
        pytest.param(books("update", '{"asks":[],"bids":[],"ts":"1","seqId":true,"prevSeqId":1}'), id="seqid-bool"),
        pytest.param(books("update", '{"asks":[["1"]],"bids":[],"ts":"1"}'), id="level-short"),
        pytest.param(books("update", '{"asks":[[1,"1","0","1"]],"bids":[],"ts":"1"}'), id="px-number"),
        pytest.param(books("update", '{"asks":[["1","-1","0","1"]],"bids":[],"ts":"1"}'), id="sz-negative"),
        pytest.param(books("update", '{"asks":[["1","nan","0","1"]],"bids":[],"ts":"1"}'), id="sz-nan"),
        pytest.param(books("update", '{"asks":{"1":"2"},"bids":[],"ts":"1"}'), id="levels-not-list"),
        pytest.param('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1"}]}', id="trade-short"),
        pytest.param(
            '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{' + TRADE.replace("buy", "BUY") + "}]}",
            id="side-upper",
        ),
        pytest.param(
            '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{' + TRADE + ',"count":"0"}]}', id="count-zero"
        ),
        pytest.param(
            '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{' + TRADE + ',"count":3}]}', id="count-int"
        ),
        pytest.param(
            '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{' + TRADE.replace('"1","px"', '"","px"') + "}]}",
            id="trade-id-empty",
        ),
    ],
)
def test_malformed_frames_raise_decode_error_only(codec: OkxCodec, frame: str | bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(frame, TS)


def test_decode_error_carries_an_excerpt(codec: OkxCodec) -> None:
    frame = books("update", '{"asks":[],"bids":[]}')
    with pytest.raises(DecodeError) as info:
        codec.decode(frame, TS)
    assert "missing field 'ts'" in str(info.value)
    assert info.value.excerpt.startswith('{"arg":{"channel":"books"')


def test_rest_books_snapshot(codec: OkxCodec) -> None:
    body = (
        '{"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"]],'
        '"bids":[["41006.3","0.30178218","0","2"]],"ts":"1629966436396","seqId":3097021}]}'
    )
    assert codec.decode_snapshot(body, "btc-usdt", TS) == BookSnapshot(
        "okx", "BTC-USDT", "BTC-USDT", (("41006.3", "0.30178218"),), (("41006.8", "0.60038921"),),
        3097021, 1629966436396 * MS, TS, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        '{"code":"51001","msg":"Instrument ID does not exist","data":[]}',
        '{"code":"0","msg":"","data":[]}',
        '{"code":"0","msg":"","data":[{"asks":[],"bids":[]}]}',
        "[]",
        "<html>502 Bad Gateway</html>",
    ],
)
def test_bad_rest_books_raise_decode_error(codec: OkxCodec, body: str) -> None:
    with pytest.raises(DecodeError):
        codec.decode_snapshot(body, "BTC-USDT", TS)


def test_settings_names_are_used_and_others_derived() -> None:
    codec = OkxCodec({"BTC-USDT": "BTC-USDT"})
    frame = books("update", '{"asks":[],"bids":[],"ts":"1"}').replace("BTC-USDT", "sol-usdc")
    (delta,) = codec.decode(frame, TS)
    assert isinstance(delta, BookDelta) and (delta.symbol, delta.native) == ("SOL-USDC", "sol-usdc")


@pytest.mark.parametrize("name", ["BTC-USDT", "ETH-BTC", "OKB-USDC"])
def test_symbols(name: str) -> None:
    assert canonical_symbol(name) == native_symbol(name) == name
    assert native_symbol(name.lower()) == name
    assert SPEC.native_symbol(name) == SPEC.canonical_symbol(name) == name


@pytest.mark.parametrize("bad", ["BTCUSDT", "BTC-USDT-SWAP", "-USDT", "BTC-", ""])
def test_non_spot_names_are_value_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        canonical_symbol(bad)
    with pytest.raises(ValueError):
        native_symbol(bad)


def test_spec() -> None:
    sub = Subscription(("BTC-USDT", "ETH-USDT"), ("book", "trades"))
    assert SPEC.connect_url(SPEC.ws_url, sub) == "wss://ws.okx.com:8443/ws/v5/public"
    assert [orjson.loads(f) for f in SPEC.subscribe_frames(sub)] == [
        {
            "id": "sub1",
            "op": "subscribe",
            "args": [
                {"channel": "books", "instId": "BTC-USDT"},
                {"channel": "trades", "instId": "BTC-USDT"},
                {"channel": "books", "instId": "ETH-USDT"},
                {"channel": "trades", "instId": "ETH-USDT"},
            ],
        }
    ]
    assert SPEC.resubscribe_frames is not None
    assert [orjson.loads(f) for f in SPEC.resubscribe_frames("ETH-USDT", sub)] == [
        {"id": "unsubETHUSDT", "op": "unsubscribe", "args": [{"channel": "books", "instId": "ETH-USDT"}]},
        {"id": "resubETHUSDT", "op": "subscribe", "args": [{"channel": "books", "instId": "ETH-USDT"}]},
    ]
    assert SPEC.snapshot_url(SPEC.rest_url, "BTC-USDT") == (
        "https://www.okx.com/api/v5/market/books?instId=BTC-USDT&sz=400"
    )
    assert (SPEC.name, SPEC.snapshot_source, SPEC.default_depth, SPEC.truncate_to_depth) == (
        "okx", "stream", 400, False,
    )  # fmt: skip
    assert (SPEC.ws_ping, SPEC.app_ping, SPEC.liveness_timeout) == (False, "ping", 30.0)
    assert SPEC.app_ping_interval < 30
    assert SPEC.max_streams_per_connection // 2 < 30 and SPEC.max_streams_per_connection < 30


def test_many_symbols_are_one_request_until_64_kb() -> None:
    few = Subscription(tuple(f"C{i}-USDT" for i in range(100)), ("book", "trades"))
    assert len(SPEC.subscribe_frames(few)) == 1
    many = Subscription(tuple(f"COIN{i}-USDT" for i in range(2000)), ("book", "trades"))
    frames = SPEC.subscribe_frames(many)
    assert len(frames) > 1 and all(len(orjson.dumps(orjson.loads(f)["args"])) < 64_000 for f in frames)
    args = [a for f in frames for a in orjson.loads(f)["args"]]
    assert len(args) == 4000 and len({orjson.loads(f)["id"] for f in frames}) == len(frames)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)
ELEMENT_KEYS = [
    "asks",
    "bids",
    "ts",
    "checksum",
    "prevSeqId",
    "seqId",
    "instId",
    "tradeId",
    "px",
    "sz",
    "side",
    "count",
]


@given(
    st.sampled_from(["books", "trades", "tickers", None]),
    st.sampled_from(["snapshot", "update", None]),
    st.dictionaries(st.sampled_from(ELEMENT_KEYS), json_values, max_size=10),
    st.dictionaries(st.sampled_from(["event", "code", "msg", "id", "arg"]), json_values, max_size=4),
)
def test_only_decode_error_escapes(
    channel: str | None, action: str | None, element: dict[str, Any], event: dict[str, Any]
) -> None:
    push: dict[str, Any] = {"arg": {"channel": channel, "instId": "BTC-USDT"}, "data": [element]}
    if action is not None:
        push["action"] = action
    for frame in (orjson.dumps(push), orjson.dumps(event)):
        for data in (frame, frame[: len(frame) // 2]):
            try:
                decoded = OkxCodec().decode(data, TS)
            except DecodeError:
                continue
            assert isinstance(decoded, list)
