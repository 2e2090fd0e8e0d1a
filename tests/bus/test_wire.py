from __future__ import annotations

import dataclasses

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus import wire
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, BookStatus, ConnectionStatus, Trade

EVENTS = [
    Trade(
        "binance",
        "BTC-USDT",
        "BTCUSDT",
        "12345",
        "43210.12000000",
        "0.00100000",
        "sell",
        1_700_000_000_000_000_000,
        1_700_000_000_001_000_000,
    ),
    BookSnapshot("binance", "BTC-USDT", "BTCUSDT", (("1.0", "2"), ("0.9", "3")), (("1.1", "4"),), 77, 5, 6),
    BookDelta("binance", "ETH-BTC", "ETHBTC", (("0.05", "0"),), (), 78, 80, 7, 8),
    BookDelta("binance", "ETH-BTC", "ETHBTC", (), (), None, None, 7, 8),
    BookStatus("binance", "ETH-BTC", "ETHBTC", "gap", "update ids missing", 81, 90, 9),
    ConnectionStatus("binance", "*", "*", "binance-s0-c0", "connected", "subscribed", ("BTC-USDT", "ETH-BTC"), 10),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip(event: object) -> None:
    topic, body = wire.encode(event)  # type: ignore[arg-type]
    assert wire.decode(body) == event
    assert topic == f"{event.channel}.{event.exchange}.{event.symbol}".encode()  # type: ignore[attr-defined]


def test_body_is_the_redis_field_list() -> None:
    _, body = wire.encode(EVENTS[2])

    assert orjson.loads(body) == [
        "type", "delta", "exchange", "binance", "symbol", "ETH-BTC", "native", "ETHBTC",
        "bids", '[["0.05","0"]]', "asks", "[]", "first_seq", "78", "seq", "80",
        "ts_exchange", "7", "ts_recv", "8", "checksum", "",
    ]  # fmt: skip


def test_key_suffix_keeps_dots_in_symbols() -> None:
    assert wire.key_suffix(b"book.binance.BTC-USDT") == b'"book:binance:BTC-USDT"'
    assert wire.key_suffix(b"trade.kraken.ETH.W-USD") == b'"trade:kraken:ETH.W-USD"'


def test_header_round_trip_and_bad_header() -> None:
    assert wire.parse_header(wire.header(3, 2**32 - 1, 2**40)) == (3, 2**32 - 1, 2**40)
    with pytest.raises(DecodeError):
        wire.parse_header(b"short")


@pytest.mark.parametrize(
    "body", [b"not json", b'{"type":"trade"}', b'["type"]', b'["type","nope"]', b'["type","trade"]']
)
def test_bad_bodies_raise_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        wire.decode(body)


UNROLLED = [
    *EVENTS[:4],
    Trade("okx", "BTC-USDT", "BTC-USDT", "9", "1.5", "2", "buy", 3, 4, origin="backfill"),
    BookDelta("okx", "BTC-USDT", "BTC-USDT", (("1", "2"), ("3", "0")), (("4", "5"),), 10, 11, 12, 13, checksum=-99),
]


@pytest.mark.parametrize("event", UNROLLED, ids=lambda e: type(e).__name__)
def test_unrolled_encoders_match_the_field_list(event: object) -> None:
    """Trades and deltas are encoded by hand-unrolled functions: the same list as the general way."""
    assert wire.encode_fields(event) == wire.fields_of(event)  # type: ignore[arg-type]
    assert wire.decode(wire.encode(event)[1]) == event  # type: ignore[arg-type]


def test_topics_are_cached_per_channel_exchange_symbol() -> None:
    trade, delta = EVENTS[0], EVENTS[2]
    assert wire.topic(trade) == b"trade.binance.BTC-USDT"
    assert wire.topic(trade) is wire.topic(trade)
    assert wire.topic(delta) == b"book.binance.ETH-BTC"


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_trades = st.builds(
    Trade, st.sampled_from(["binance", "okx"]), st.sampled_from(["BTC-USDT", "ETH.X-USD", 'Q"UOTE']), _text,
    _text, _text, _text, st.sampled_from(["buy", "sell"]), st.integers(0, 2**63), st.integers(0, 2**63),
)  # fmt: skip
_deltas = st.builds(
    BookDelta, st.just("bybit"), st.sampled_from(["BTC-USDT", "SOL-USDC"]), _text,
    st.lists(st.tuples(_text, _text), max_size=3).map(tuple), st.lists(st.tuples(_text, _text), max_size=3).map(tuple),
    st.none() | st.integers(0, 2**40), st.none() | st.integers(0, 2**40), st.integers(0, 2**63), st.integers(0, 2**63),
)  # fmt: skip


@given(st.lists(_trades | _deltas, min_size=1, max_size=20))
def test_batch_round_trip(events: list[Trade | BookDelta]) -> None:
    """A batch body carries each event's key suffix and body in order; parsed as the script's argument
    (brackets around it) it is the suffix, field list pairs; the header carries the count."""
    encoded = [wire.encode(e) for e in events]
    body = wire.batch_body(encoded)
    assert wire.decode_batch(body) == [(f"{e.channel}:{e.exchange}:{e.symbol}", e) for e in events]
    flat = orjson.loads(b"[" + body + b"]")
    assert flat[1::2] == [orjson.loads(b) for _, b in encoded]
    assert wire.parse_batch_header(wire.batch_header(7, 2**32 - 1, 2**50, len(events))) == (7, 2**32 - 1, 2**50,
                                                                                            len(events))  # fmt: skip


@given(_trades | _deltas, st.none() | st.integers(-(2**31), 2**32))
def test_encode_is_the_topic_and_the_general_field_list(event: Trade | BookDelta, checksum: int | None) -> None:
    """`encode`'s inline paths give the bytes of `topic` and `fields_of`, whatever the strings hold."""
    if isinstance(event, BookDelta):
        event = dataclasses.replace(event, checksum=checksum)
    assert wire.encode(event) == (wire.topic(event), orjson.dumps(wire.fields_of(event)))


def test_internal_topics_are_no_events_and_bad_batches_raise() -> None:
    assert wire.is_internal(wire.BATCH_TOPIC) and wire.is_internal(wire.CONTROL_TOPIC)
    assert not wire.is_internal(b"trade.binance.BTC-USDT") and not wire.is_internal(b"")
    for bad in (b"not json", b'"trade:binance:X"', b'"k",{"type":"trade"}', b'1,["type","trade"]', b'"k",["type"]'):
        with pytest.raises(DecodeError):
            wire.decode_batch(bad)
    with pytest.raises(DecodeError):
        wire.parse_batch_header(wire.header(1, 2, 3))
