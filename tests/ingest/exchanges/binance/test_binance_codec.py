"""Binance codec: one test per message shape with exact fields, and every malformed shape.

Frames come from the real recording (``../shared/recordings/cryptofeed/BINANCE.ws.1.0``) where it has
the shape, and otherwise from the examples in Binance's docs (protocols.md section A).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Reconnect, Reply, Subscription
from ingest.exchanges.binance.codec import BinanceCodec
from ingest.exchanges.binance.spec import SPEC
from ingest.exchanges.binance.symbols import canonical_symbol, native_symbol

RECORDINGS = Path(__file__).resolve().parents[4].parent / "shared" / "recordings" / "cryptofeed"
TS = 1_700_000_000_123_456_789


def recorded_frame(needle: str) -> str:
    """The payload of the first received frame in the Binance recording that contains ``needle``."""
    for line in (RECORDINGS / "BINANCE.ws.1.0").read_text().splitlines():
        head, _, payload = line.partition(": ")
        if payload and needle in payload and head[0].isdigit():
            return payload
    raise AssertionError(f"no frame with {needle!r} in the recording")


def recorded_snapshot_body(native: str) -> str:
    for line in (RECORDINGS / "BINANCE.http.0.0").read_text().splitlines():
        if f"symbol={native}&" in line:
            return line.partition(": ")[2]
    raise AssertionError(native)


@pytest.fixture
def codec() -> BinanceCodec:
    return BinanceCodec()


def test_depth_update_with_a_delete(codec: BinanceCodec) -> None:
    frame = recorded_frame('"U":499869765')
    assert codec.decode(frame, TS) == [
        BookDelta(
            exchange="binance",
            symbol="NKN-USDT",
            native="NKNUSDT",
            bids=(("0.35120000", "6567.00000000"), ("0.35080000", "8246.00000000")),
            asks=(("0.35340000", "0"),),  # "0.00000000" on the wire: a delete, spelled "0"
            first_seq=499869765,
            seq=499869767,
            ts_exchange=1633998513369 * 1_000_000,
            ts_recv=TS,
        )
    ]


def test_raw_depth_update_from_the_docs_as_bytes(codec: BinanceCodec) -> None:
    frame = (
        b'{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,'
        b'"b":[["0.0024","10"]],"a":[["0.0026","100"]]}'
    )
    assert codec.decode(frame, TS) == [
        BookDelta(
            "binance", "BNB-BTC", "BNBBTC", (("0.0024", "10"),), (("0.0026", "100"),),
            157, 160, 1672515782136_000_000, TS,
        )
    ]  # fmt: skip


def test_agg_trade_taker_bought(codec: BinanceCodec) -> None:
    frame = recorded_frame('"e":"aggTrade","E":1633998523963')
    assert codec.decode(frame, TS) == [
        Trade(
            exchange="binance",
            symbol="NKN-USDT",
            native="NKNUSDT",
            trade_id="15683430",
            price="0.35280000",
            qty="58.00000000",
            side="buy",  # m is false: the buyer was the taker
            ts_exchange=1633998523963 * 1_000_000,
            ts_recv=TS,
        )
    ]


def test_trade_buyer_maker_means_taker_sold(codec: BinanceCodec) -> None:
    frame = (
        '{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,'
        '"p":"0.001","q":"100","T":1672515782135,"m":true,"M":true}}'
    )
    assert codec.decode(frame, TS) == [
        Trade("binance", "BNB-BTC", "BNBBTC", "12345", "0.001", "100", "sell", 1672515782135_000_000, TS)
    ]


def test_server_shutdown_combined_and_raw(codec: BinanceCodec) -> None:
    combined = codec.decode('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}', TS)
    raw = codec.decode('{"e":"serverShutdown","E":1672515782136}', TS)
    for decoded in (combined, raw):
        assert len(decoded) == 1 and isinstance(decoded[0], Reconnect)
        assert "serverShutdown" in decoded[0].reason


def test_subscribe_reply(codec: BinanceCodec) -> None:
    assert codec.decode('{"result":null,"id":1}', TS) == [Reply("1", None)]
    assert codec.decode('{"result":["btcusdt@aggTrade"],"id":"ab-3"}', TS) == [Reply("ab-3", None)]


def test_error_reply_with_and_without_id(codec: BinanceCodec) -> None:
    msg = "Invalid request: unknown variant `SUBSCRIB`"
    assert codec.decode(f'{{"code":2,"msg":"{msg}","id":7}}', TS) == [Reply("7", msg)]
    assert codec.decode('{"code":3,"msg":"Invalid JSON: expected value"}', TS) == [
        Reply("", "Invalid JSON: expected value")
    ]


@pytest.mark.parametrize("needle", ["@bookTicker", "@kline_1m"])
def test_other_recorded_streams_are_ignored(codec: BinanceCodec, needle: str) -> None:
    assert codec.decode(recorded_frame(needle), TS) == []


def test_raw_book_ticker_and_partial_depth_are_ignored(codec: BinanceCodec) -> None:
    ticker = '{"u":400900217,"s":"BNBUSDT","b":"25.35","B":"31.21","a":"25.36","A":"40.66"}'
    partial = '{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}'
    assert codec.decode(ticker, TS) == []
    assert codec.decode(partial, TS) == []
    assert codec.decode('{"stream":"bnbbtc@depth5@100ms","data":' + partial + "}", TS) == []


DEPTH = '"e":"depthUpdate","E":1,"s":"BNBBTC","U":1,"u":2'


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param('{"stream":"x","data":{', id="bad-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param("", id="empty"),
        pytest.param("[1,2]", id="list-not-dict"),
        pytest.param('"depthUpdate"', id="string-not-dict"),
        pytest.param('{"stream":"a@depth","data":[1]}', id="data-not-dict"),
        pytest.param('{"stream":5,"data":{}}', id="stream-not-string"),
        pytest.param('{"e":"depthUpdate","E":1,"s":"BNBBTC","U":1,"b":[],"a":[]}', id="missing-u"),
        pytest.param("{" + DEPTH + ',"b":[]}', id="missing-a"),
        pytest.param('{"e":"depthUpdate","E":1,"s":"BNBBTC","U":"1","u":2,"b":[],"a":[]}', id="U-str"),
        pytest.param('{"e":"depthUpdate","E":true,"s":"BNBBTC","U":1,"u":2,"b":[],"a":[]}', id="E-bool"),
        pytest.param("{" + DEPTH + ',"b":[[0.1,"1"]],"a":[]}', id="price-number"),
        pytest.param("{" + DEPTH + ',"b":[["abc","1"]],"a":[]}', id="price-not-decimal"),
        pytest.param("{" + DEPTH + ',"b":[["1","nan"]],"a":[]}', id="qty-nan"),
        pytest.param("{" + DEPTH + ',"b":[["1"]],"a":[]}', id="level-short"),
        pytest.param("{" + DEPTH + ',"b":{"1":"2"},"a":[]}', id="levels-not-list"),
        pytest.param('{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":"1","q":"1","T":1,"m":"yes"}', id="m-str"),
        pytest.param(
            '{"e":"aggTrade","E":1,"s":"BNBBTC","a":1,"p":"1","q":"1","T":1,"m":true}', id="agg-no-f"
        ),
        pytest.param('{"e":"trade","E":1,"s":"BNBXYZ","t":1,"p":"1","q":"1","T":1,"m":true}', id="bad-quote"),
        pytest.param('{"e":"serverShutdown"}', id="shutdown-no-E"),
        pytest.param('{"e":"mystery","E":1}', id="unknown-event"),
        pytest.param('{"e":5}', id="event-not-string"),
        pytest.param('{"hello":"world"}', id="no-event-type"),
        pytest.param('{"result":null,"id":1.5}', id="id-float"),
        pytest.param('{"code":"2","msg":"x"}', id="code-str"),
    ],
)
def test_malformed_frames_raise_decode_error_only(codec: BinanceCodec, frame: str | bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(frame, TS)


def test_decode_error_carries_an_excerpt(codec: BinanceCodec) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode('{"e":"depthUpdate","E":1,"s":"BNBBTC"}', TS)
    assert "missing field 'U'" in str(info.value)
    assert info.value.excerpt.startswith('{"e":"depthUpdate"')


def test_rest_snapshot_from_the_recording(codec: BinanceCodec) -> None:
    snap = codec.decode_snapshot(recorded_snapshot_body("NKNUSDT"), "NKNUSDT", TS)
    assert isinstance(snap, BookSnapshot)
    assert (snap.exchange, snap.symbol, snap.native) == ("binance", "NKN-USDT", "NKNUSDT")
    assert snap.seq == 499869752
    assert (snap.ts_exchange, snap.ts_recv) == (TS, TS)
    assert snap.bids[:2] == (("0.35210000", "672.00000000"), ("0.35200000", "1144.00000000"))
    assert (len(snap.bids), len(snap.asks)) == (609, 1000)
    assert float(snap.asks[0][0]) > float(snap.bids[0][0])


@pytest.mark.parametrize(
    "body",
    [
        '{"code":-1121,"msg":"Invalid symbol."}',
        '{"lastUpdateId":"1","bids":[],"asks":[]}',
        '{"bids":[],"asks":[]}',
        "[]",
        "<html>502 Bad Gateway</html>",
    ],
)
def test_bad_rest_snapshot_raises_decode_error(codec: BinanceCodec, body: str) -> None:
    with pytest.raises(DecodeError):
        codec.decode_snapshot(body, "BNBBTC", TS)


@pytest.mark.parametrize(
    ("native", "canonical"),
    [
        ("NKNUSDT", "NKN-USDT"),
        ("BLZETH", "BLZ-ETH"),
        ("LRCBTC", "LRC-BTC"),
        ("RUNEEUR", "RUNE-EUR"),
        ("btcusdt", "BTC-USDT"),
        ("ETHFDUSD", "ETH-FDUSD"),
        ("BTCTUSD", "BTC-TUSD"),
        ("USDTTRY", "USDT-TRY"),
        ("BNBBTC", "BNB-BTC"),
    ],
)
def test_symbols(native: str, canonical: str) -> None:
    assert canonical_symbol(native) == canonical
    assert native_symbol(canonical) == native.upper()
    assert SPEC.canonical_symbol(native) == canonical


@pytest.mark.parametrize("bad", ["XYZABC", "USDT", ""])
def test_unknown_quote_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        canonical_symbol(bad)


def test_spec_urls() -> None:
    url = SPEC.connect_url(SPEC.ws_url, Subscription(("BTCUSDT", "ethbtc"), ("book", "trades")))
    assert url == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@depth@100ms/btcusdt@trade/ethbtc@depth@100ms/ethbtc@trade"
    )
    assert SPEC.subscribe_frames(Subscription(("BTCUSDT",), ("book",))) == []
    assert SPEC.snapshot_url(SPEC.rest_url, "btcusdt") == (
        "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"
    )
    assert (SPEC.name, SPEC.snapshot_source, SPEC.max_streams_per_connection) == ("binance", "rest", 1024)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)
KEYS = ["e", "E", "s", "U", "u", "b", "a", "t", "p", "q", "T", "m", "f", "l", "result", "id", "code", "msg"]


@given(
    st.sampled_from(["depthUpdate", "trade", "aggTrade", "serverShutdown", "kline", None]),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=10),
    st.booleans(),
)
def test_only_decode_error_escapes(kind: str | None, fields: dict[str, Any], wrapped: bool) -> None:
    payload = dict(fields)
    if kind is not None:
        payload["e"] = kind
    frame = orjson.dumps({"stream": "bnbbtc@x", "data": payload} if wrapped else payload)
    for data in (frame, frame[: len(frame) // 2]):
        try:
            decoded = BinanceCodec().decode(data, TS)
        except DecodeError:
            continue
        assert isinstance(decoded, list)


# -- the fast path (decoding straight into events) against the typed structs -----------------------

# Values near the edges of what the checks accept: each key gets good and bad ones.
_EDGE_INTS = st.sampled_from([0, 1, 5, 2**63 - 1, 2**63, -1, 9223372036854, 9223372036855, True, 1.0, "5", None])
_EDGE_DECIMALS = st.sampled_from(
    ["1", "0.35130000", "0", "0.000", "00.10", "1." + "0" * 40, "1" * 41, "1.", ".5", "-1", "1e5", "\u0661", 1, None]
)
_EDGE_LEVELS = st.lists(
    st.lists(_EDGE_DECIMALS, min_size=1, max_size=3) | _EDGE_DECIMALS, max_size=3
) | st.sampled_from([None, "x", {}])
_FIELDS = {
    "s": st.sampled_from(["BNBBTC", "BTCUSDT", "NOQUOTE", "", 5, None]),
    "E": _EDGE_INTS, "T": _EDGE_INTS, "U": _EDGE_INTS, "u": _EDGE_INTS, "t": _EDGE_INTS, "a": _EDGE_INTS,
    "f": _EDGE_INTS, "l": _EDGE_INTS, "p": _EDGE_DECIMALS, "q": _EDGE_DECIMALS,
    "b": _EDGE_LEVELS, "a_levels": _EDGE_LEVELS,
    "m": st.sampled_from([True, False, 0, 1, None]),
}  # fmt: skip


def _reference(payload: dict[str, Any]) -> list[Any]:
    """What the typed structs of `messages` make of ``payload`` (the codec before its fast path)."""
    from ingest.book.book import canonical_levels
    from ingest.exchanges.binance import messages as m

    if payload["e"] == "depthUpdate":
        d = m.parse_depth_update(payload)
        sym = canonical_symbol(d.s)
        return [BookDelta("binance", sym, d.s, canonical_levels(d.b), canonical_levels(d.a), d.U, d.u, d.E * 10**6, TS)]
    t = m.parse_trade(payload) if payload["e"] == "trade" else m.parse_agg_trade(payload)
    tid = t.t if isinstance(t, m.Trade) else t.a
    side = "sell" if t.m else "buy"
    return [Trade("binance", canonical_symbol(t.s), t.s, str(tid), t.p, t.q, side, t.T * 10**6, TS)]


_VALID: dict[str, dict[str, Any]] = {
    "depthUpdate": {"e": "depthUpdate", "E": 1, "s": "BNBBTC", "U": 3, "u": 5, "b": [["0.0024", "10"]], "a": []},
    "trade": {"e": "trade", "E": 1, "s": "BNBBTC", "t": 12, "p": "0.001", "q": "100", "T": 2, "m": True},
    "aggTrade": {"e": "aggTrade", "E": 1, "s": "BNBBTC", "a": 12, "p": "0.001", "q": "100", "f": 1, "l": 2, "T": 2,
                 "m": False},
}  # fmt: skip


@given(
    st.sampled_from(sorted(_VALID)),
    st.fixed_dictionaries({}, optional=_FIELDS),
    st.sets(st.sampled_from(sorted(_FIELDS)), max_size=2),
)
def test_fast_path_decodes_exactly_what_the_typed_structs_accept(
    kind: str, changes: dict[str, Any], removed: set[str]
) -> None:
    """A valid payload with some fields replaced by edge values (good and bad) or removed: the codec
    decodes it as the typed structs do, and refuses what they refuse, raw or in a combined stream."""
    payload: dict[str, Any] = dict(_VALID[kind])
    if "a_levels" in changes:  # "a" is a depth update's asks and an aggTrade's id
        changes["a" if kind == "depthUpdate" else "b"] = changes.pop("a_levels")
    payload.update(changes)
    for key in removed:
        payload.pop(key, None)
    try:
        expected: list[Any] | None = _reference(payload)
    except (DecodeError, ValueError):
        expected = None
    # raw, and in a combined stream (the msgspec-typed way first, then the dict's)
    for frame in (payload, {"stream": "bnbbtc@x", "data": payload}):
        try:
            got: list[Any] | None = BinanceCodec().decode(orjson.dumps(frame), TS)
        except DecodeError:
            got = None
        assert got == expected


def test_fast_path_decodes_a_typical_update_and_trade() -> None:
    codec = BinanceCodec({"BTCUSDT": "BTC-USDT"})
    depth = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 7, "u": 9, "b": [["100.5", "0.000"]], "a": [["101", "2"]]}
    trade = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 12, "p": "100.5", "q": "0.1", "T": 2, "m": False, "M": True}
    frame = orjson.dumps({"stream": "btcusdt@depth", "data": depth})
    assert codec.decode(frame, TS) == [
        BookDelta("binance", "BTC-USDT", "BTCUSDT", (("100.5", "0"),), (("101", "2"),), 7, 9, 1_000_000, TS)
    ]
    assert codec.decode(orjson.dumps(trade), TS) == [
        Trade("binance", "BTC-USDT", "BTCUSDT", "12", "100.5", "0.1", "buy", 2_000_000, TS)
    ]
