"""Kraken v2 codec: one test per message shape with exact fields, the precision rules, and every
malformed shape. Frames are the examples of Kraken's v2 docs (protocols.md section B) unless said."""

from __future__ import annotations

import calendar
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.book.sync import BookSync
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Reply
from ingest.exchanges.kraken.checksum import book_checksum, levels_checksum
from ingest.exchanges.kraken.codec import KrakenCodec, rfc3339_to_ns
from ingest.exchanges.kraken.sequence import KrakenRule

TS = 1_700_000_000_123_456_789
STAMP = "2023-10-06T17:35:55.440295Z"
STAMP_NS = calendar.timegm((2023, 10, 6, 17, 35, 55)) * 1_000_000_000 + 440_295_000
INSTRUMENT = (
    '{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"USD","status":"enabled",'
    '"precision":4,"precision_display":2,"borrowable":true,"collateral_value":1.0,"margin_rate":0.2}],'
    '"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,'
    '"qty_increment":0.00000001,"price_precision":1,"price_increment":0.1,"cost_precision":5,'
    '"marginable":true,"has_index":true,"cost_min":0.5},'
    '{"symbol":"MATIC/USD","base":"MATIC","quote":"USD","status":"online","qty_precision":8,'
    '"price_precision":4},{"symbol":"ODD/USD","status":"maintenance"}]}}'
)


@pytest.fixture
def codec() -> KrakenCodec:
    c = KrakenCodec()
    assert c.decode(INSTRUMENT, TS) == []
    return c


def book(kind: str, symbol: str, bids: str, asks: str, checksum: int, stamp: str | None = STAMP) -> str:
    ts = "" if stamp is None else f',"timestamp":"{stamp}"'
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":[{bids}],"asks":[{asks}],'
        f'"checksum":{checksum}{ts}}}]}}'
    )


def test_instrument_sets_the_precision_of_the_pairs_that_have_one(codec: KrakenCodec) -> None:
    assert codec.precision("BTC/USD") == (1, 8)
    assert codec.precision("MATIC/USD") == (4, 8)
    assert codec.precision("ODD/USD") is None  # no precision given: left out, not an error
    update = (
        '{"channel":"instrument","type":"update","data":{"pairs":[{"symbol":"BTC/USD",'
        '"price_precision":2,"qty_precision":6}]}}'
    )
    assert codec.decode(update, TS) == []
    assert codec.precision("BTC/USD") == (2, 6)


def test_book_snapshot(codec: KrakenCodec) -> None:
    frame = book(
        "snapshot", "BTC/USD",
        '{"price":45283.5,"qty":0.10000000},{"price":45283.4,"qty":1.54582015}',
        '{"price":45285.2,"qty":0.00100000},{"price":45286.4,"qty":1.54571953}', 3310070434,
    )  # fmt: skip
    assert codec.decode(frame, TS) == [
        BookSnapshot(
            exchange="kraken",
            symbol="BTC-USD",
            native="BTC/USD",
            bids=(("45283.5", "0.10000000"), ("45283.4", "1.54582015")),
            asks=(("45285.2", "0.00100000"), ("45286.4", "1.54571953")),
            seq=None,
            ts_exchange=STAMP_NS,
            ts_recv=TS,
            checksum=3310070434,
        )
    ]


def test_book_snapshot_without_timestamp_is_stamped_on_receipt(codec: KrakenCodec) -> None:
    [snap] = codec.decode(book("snapshot", "BTC/USD", "", '{"price":1,"qty":2}', 7, None), TS)
    assert isinstance(snap, BookSnapshot)
    assert (snap.bids, snap.asks, snap.ts_exchange) == ((), (("1.0", "2.00000000"),), TS)


def test_book_update_from_the_docs_is_written_at_the_instrument_precision(codec: KrakenCodec) -> None:
    frame = book("update", "MATIC/USD", '{"price":0.5657,"qty":1098.3947558}', "", 2114181697)
    assert codec.decode(frame, TS) == [
        BookDelta(
            exchange="kraken",
            symbol="MATIC-USD",
            native="MATIC/USD",
            bids=(("0.5657", "1098.39475580"),),  # qty precision 8: the trailing zero is Kraken's
            asks=(),
            first_seq=None,
            seq=None,
            ts_exchange=STAMP_NS,
            ts_recv=TS,
            checksum=2114181697,
        )
    ]


def test_update_touching_one_price_twice_keeps_the_order_and_zero_is_a_delete(codec: KrakenCodec) -> None:
    snap_bids = [("45283.5", "0.10000000"), ("45283.4", "1.54582015")]
    snap_asks = [("45285.2", "0.00100000")]
    snapshot = book(
        "snapshot", "BTC/USD",
        '{"price":45283.5,"qty":0.1},{"price":45283.4,"qty":1.54582015}', '{"price":45285.2,"qty":0.001}',
        levels_checksum(snap_bids, snap_asks),
    )  # fmt: skip
    final_bids = [("45283.5", "0.30000000")]  # 45283.4 deleted, 45283.5 set twice (the last wins)
    final_asks = [("45285.2", "0.00100000"), ("45290.0", "2.00000000")]
    update = book(
        "update", "BTC/USD",
        '{"price":45283.5,"qty":0.2},{"price":45283.4,"qty":0.00000000},{"price":45283.5,"qty":0.3}',
        '{"price":45290.0,"qty":2}', levels_checksum(final_bids, final_asks),
    )  # fmt: skip
    [snap] = codec.decode(snapshot, TS)
    [delta] = codec.decode(update, TS + 1)
    assert isinstance(delta, BookDelta)
    assert delta.bids == (("45283.5", "0.20000000"), ("45283.4", "0"), ("45283.5", "0.30000000"))
    assert delta.asks == (("45290.0", "2.00000000"),)
    sync = BookSync("kraken", "BTC-USD", "BTC/USD", KrakenRule(), checksum=book_checksum, depth=10,
                    stream_snapshots=True)  # fmt: skip
    sync.on_snapshot(snap)  # type: ignore[arg-type]
    assert sync.on_delta(delta) == [delta]
    assert sync.book.depth() == (final_bids, final_asks)
    assert (sync.stats.checksums_verified, sync.stats.checksum_failures) == (2, 0)


def test_trades_one_per_element_side_is_the_takers(codec: KrakenCodec) -> None:
    frame = (
        '{"channel":"trade","type":"update","data":['
        '{"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":6423.46326,"ord_type":"limit",'
        '"trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"},'
        '{"symbol":"MATIC/USD","side":"sell","price":0.5146,"qty":1.0,"ord_type":"market",'
        '"trade_id":4665847,"timestamp":"2023-09-25T07:48:36.925533Z"}]}'
    )
    ns = calendar.timegm((2023, 9, 25, 7, 48, 36)) * 1_000_000_000 + 925_533_000
    assert codec.decode(frame, TS) == [
        Trade("kraken", "MATIC-USD", "MATIC/USD", "4665846", "0.5147", "6423.46326000", "buy", ns, TS),
        Trade("kraken", "MATIC-USD", "MATIC/USD", "4665847", "0.5146", "1.00000000", "sell", ns, TS),
    ]


def test_trade_snapshot_of_an_undescribed_pair_keeps_the_literal_digits() -> None:
    frame = (
        '{"channel":"trade","type":"snapshot","data":[{"symbol":"XDG/EUR","side":"sell","price":0.0700,'
        '"qty":4.8E-7,"ord_type":"limit","trade_id":1,"timestamp":"2023-09-25T07:48:36Z"}]}'
    )
    [trade] = KrakenCodec().decode(frame, TS)
    assert isinstance(trade, Trade)
    # Never str(Decimal): that would write "4.8E-7".
    assert (trade.symbol, trade.price, trade.qty) == ("DOGE-EUR", "0.0700", "0.00000048")


def test_heartbeat_status_and_other_channels_decode_to_nothing(codec: KrakenCodec) -> None:
    assert codec.decode('{"channel":"heartbeat"}', TS) == []
    status = (
        '{"channel":"status","type":"update","data":[{"version":"2.0.0","system":"online",'
        '"api_version":"v2","connection_id":12893948494}]}'
    )
    assert codec.decode(status, TS) == []
    assert codec.decode('{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.5}]}', TS) == []


def test_subscribe_acknowledgements(codec: KrakenCodec) -> None:
    ack = (
        '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"ALGO/USD"},'
        '"success":true,"time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}'
    )
    assert codec.decode(ack, TS) == [Reply("", None)]
    assert codec.book_depth("ALGO/USD") == 10
    trade_ack = (
        '{"method":"subscribe","result":{"channel":"trade","snapshot":false,"symbol":"BTC/USD"},'
        '"success":true,"req_id":3}'
    )
    assert codec.decode(trade_ack, TS) == [Reply("3", None)]
    unsub = (
        '{"method":"unsubscribe","result":{"channel":"book","depth":25,"symbol":"BTC/USD"},'
        '"success":true,"req_id":5}'
    )
    assert codec.decode(unsub, TS) == [Reply("5", None)]
    assert codec.book_depth("BTC/USD") is None  # only a subscription says how deep a book is


def test_refused_request_and_pong(codec: KrakenCodec) -> None:
    error = (
        '{"error":"Currency pair not supported XBT/USDD","method":"subscribe","req_id":2,"success":false,'
        '"symbol":"XBT/USDD","time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}'
    )
    assert codec.decode(error, TS) == [Reply("2", "Currency pair not supported XBT/USDD")]
    pong = (
        '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",'
        '"time_out":"2023-09-24T14:10:23.799703Z"}'
    )
    assert codec.decode(pong, TS) == [Reply("101", None)]
    assert codec.decode(b'{"method":"subscribe","success":false}', TS) == [Reply("", "request failed (no error text)")]


def test_inferred_precision_is_kept_for_updates_and_widened_by_more_digits() -> None:
    codec = KrakenCodec()
    codec.decode(book("snapshot", "ETH/EUR", '{"price":1500.10,"qty":0.50}', '{"price":1500.25,"qty":1.5}', 1), TS)
    assert codec.precision("ETH/EUR") == (2, 2)
    [delta] = codec.decode(book("update", "ETH/EUR", '{"price":1500.1,"qty":2}', '{"price":1500.3,"qty":0.125}', 2), TS)
    assert isinstance(delta, BookDelta)
    assert (delta.bids, delta.asks) == ((("1500.10", "2.00"),), (("1500.30", "0.125"),))
    assert codec.precision("ETH/EUR") == (2, 3)


def test_more_decimals_than_the_instrument_precision_is_a_decode_error(codec: KrakenCodec) -> None:
    with pytest.raises(DecodeError, match="precision"):
        codec.decode(book("update", "BTC/USD", '{"price":45283.55,"qty":1}', "", 1), TS)
    # Trailing zeros beyond the precision are the same number and fine.
    [delta] = codec.decode(book("update", "BTC/USD", '{"price":45283.50,"qty":1.000000000}', "", 1), TS)
    assert isinstance(delta, BookDelta) and delta.bids == (("45283.5", "1.00000000"),)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        (STAMP, STAMP_NS),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000000001Z", 1),
        ("1970-01-01T00:00:00.1234567899Z", 123_456_789),  # beyond ns: truncated
        ("2023-10-06T19:35:55.440295+02:00", STAMP_NS),
        ("2024-02-29T00:00:00z", calendar.timegm((2024, 2, 29, 0, 0, 0)) * 1_000_000_000),
    ],
)
def test_rfc3339_to_integer_ns(text: str, ns: int) -> None:
    assert rfc3339_to_ns(text) == ns


@pytest.mark.parametrize(
    "text",
    ["2023-02-29T00:00:00Z", "2023-10-06T24:00:00Z", "2023-10-06 17:35:55Z", "2023-10-06T17:35:55", "", "1696613755"],
)
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(DecodeError):
        rfc3339_to_ns(text)


class Raw(str):
    """JSON text put into a frame as it is (e.g. ``NaN`` or a number literal)."""


def element(**fields: Any) -> str:
    """A book update element with ``fields`` replaced (``None`` drops a field)."""
    base: dict[str, Any] = {"symbol": "BTC/USD", "bids": [], "asks": [], "checksum": 1, "timestamp": STAMP}
    return ",".join(f'"{k}":{v if isinstance(v, Raw) else orjson.dumps(v).decode()}'
                    for k, v in (base | fields).items() if v is not None).join("{}")  # fmt: skip


def update(**fields: Any) -> str:
    return f'{{"channel":"book","type":"update","data":[{element(**fields)}]}}'


def trade(**fields: Any) -> str:
    base: dict[str, Any] = {"symbol": "BTC/USD", "side": "buy", "price": 1, "qty": 1, "ord_type": "limit",
                            "trade_id": 1, "timestamp": STAMP}  # fmt: skip
    return f'{{"channel":"trade","type":"update","data":[{orjson.dumps(base | fields).decode()}]}}'


def test_the_malformed_frame_builders_build_good_frames_by_default(codec: KrakenCodec) -> None:
    [delta] = codec.decode(update(bids=Raw('[{"price":1.5,"qty":1}]')), TS)
    assert isinstance(delta, BookDelta) and delta.bids == (("1.5", "1.00000000"),)
    [t] = codec.decode(trade(), TS)
    assert isinstance(t, Trade) and (t.trade_id, t.price, t.side) == ("1", "1.0", "buy")


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param('{"channel":"book"', id="bad-json"),
        pytest.param(b"\xff\xfe\xfd", id="not-utf8"),
        pytest.param("", id="empty"),
        pytest.param("[1,2]", id="list-not-dict"),
        pytest.param('{"hello":1}', id="neither-channel-nor-method"),
        pytest.param('{"channel":5}', id="channel-not-string"),
        pytest.param('{"channel":"mystery","data":[]}', id="unknown-channel"),
        pytest.param('{"channel":"book","type":"partial","data":[]}', id="unknown-book-type"),
        pytest.param('{"channel":"book","type":"update","data":{}}', id="data-not-list"),
        pytest.param(update(asks=Raw('[{"price":1}]')), id="entry-no-qty"),
        pytest.param(update(asks=None), id="missing-asks"),
        pytest.param(update(bids=Raw('[{"price":"1.0","qty":1}]')), id="price-string"),
        pytest.param(update(bids=Raw('[{"price":-1.0,"qty":1}]')), id="price-negative"),
        pytest.param(update(bids=Raw('[{"price":NaN,"qty":1}]')), id="price-nan"),
        pytest.param(update(bids=Raw('[{"price":1.0,"qty":true}]')), id="qty-bool"),
        pytest.param(update(bids=Raw("[[1.0,1]]")), id="entry-list"),
        pytest.param(update(checksum=-1), id="checksum-negative"),
        pytest.param(update(checksum=2**32), id="checksum-too-big"),
        pytest.param(update(checksum="1"), id="checksum-string"),
        pytest.param(update(timestamp=None), id="update-no-timestamp"),
        pytest.param(update(symbol="BTCUSD"), id="symbol-no-slash"),
        pytest.param(trade(side="bid"), id="trade-side"),
        pytest.param(trade(trade_id="1"), id="trade-id-str"),
        pytest.param(trade(timestamp="yesterday"), id="trade-timestamp"),
        pytest.param(trade(ord_type=None), id="trade-ord-type-null"),
        pytest.param('{"channel":"instrument","type":"snapshot","data":[]}', id="instrument-data-list"),
        pytest.param('{"channel":"instrument","data":{"pairs":[{"price_precision":1}]}}', id="pair-no-symbol"),
        pytest.param('{"method":"subscribe","success":"yes"}', id="success-str"),
        pytest.param('{"method":"subscribe","success":true,"req_id":1.5}', id="req-id-float"),
        pytest.param('{"method":"subscribe"}', id="no-success"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deeply-nested"),
    ],
)
def test_malformed_frames_raise_decode_error_only(codec: KrakenCodec, frame: str | bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(frame, TS)


def test_decode_error_carries_an_excerpt(codec: KrakenCodec) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD"}]}', TS)
    assert "missing field 'checksum'" in str(info.value)
    assert info.value.excerpt.startswith('{"channel":"book"')


def test_rest_snapshots_do_not_exist(codec: KrakenCodec) -> None:
    with pytest.raises(DecodeError):
        codec.decode_snapshot(b"{}", "BTC/USD", TS)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)
ELEMENT_KEYS = ["symbol", "bids", "asks", "checksum", "timestamp", "side", "price", "qty", "ord_type", "trade_id"]
entries = st.lists(st.fixed_dictionaries({"price": json_values, "qty": json_values}), max_size=3)


@settings(deadline=None)  # a loaded CI machine must not turn slowness into a failure
@given(
    st.sampled_from(["book", "trade", "instrument", "heartbeat", "status", "mystery", None]),
    st.sampled_from(["snapshot", "update", None]),
    st.lists(st.dictionaries(st.sampled_from(ELEMENT_KEYS), json_values | entries, max_size=8), max_size=2),
    st.dictionaries(st.sampled_from(["method", "success", "result", "error", "req_id"]), json_values, max_size=5),
)
def test_only_decode_error_escapes(
    channel: str | None, kind: str | None, data: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    msg: dict[str, Any] = dict(extra)
    if channel is not None:
        msg |= {"channel": channel, "type": kind, "data": data}
    frame = orjson.dumps(msg)
    for raw in (frame, frame[: len(frame) // 2]):
        try:
            decoded = KrakenCodec().decode(raw, TS)
        except DecodeError:
            continue
        assert isinstance(decoded, list)
