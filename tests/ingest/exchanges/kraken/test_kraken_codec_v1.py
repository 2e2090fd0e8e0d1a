"""Kraken v1 codec (recorded sessions): one test per message shape with exact fields, from the real
recordings ``../shared/recordings/cryptofeed/KRAKEN.ws.{48,49,50}.0`` where they have the shape."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Trade
from ingest.exchanges.base import Reply
from ingest.exchanges.kraken.codec_v1 import KrakenV1Codec, seconds_to_ns

RECORDINGS = Path(__file__).resolve().parents[4].parent / "shared" / "recordings" / "cryptofeed"
TS = 1_700_000_000_123_456_789


def recorded(name: str, needle: str) -> str:
    """The payload of the first received frame in a Kraken recording that contains ``needle``."""
    for line in (RECORDINGS / name).read_text().splitlines():
        head, _, payload = line.partition(": ")
        if payload and needle in payload and head[0].isdigit():
            return payload
    raise AssertionError(f"no frame with {needle!r} in {name}")


@pytest.fixture
def codec() -> KrakenV1Codec:
    return KrakenV1Codec()


def test_events_status_heartbeat_subscription(codec: KrakenV1Codec) -> None:
    assert codec.decode(recorded("KRAKEN.ws.50.0", '"event":"systemStatus"'), TS) == []
    assert codec.decode(recorded("KRAKEN.ws.50.0", '"event":"heartbeat"'), TS) == []
    status = recorded("KRAKEN.ws.50.0", '"channelID":992,')
    assert codec.decode(status, TS) == [Reply("", None)]
    assert codec.channels == {992: ("book-1000", "XMR/USD")}
    assert codec.book_depth("XMR/USD") == 1000
    assert codec.book_depth("WAVES/EUR") is None


def test_refused_subscription_pong_and_error(codec: KrakenV1Codec) -> None:
    refused = (
        '{"errorMessage":"Currency pair not supported","event":"subscriptionStatus","pair":"XBT/USDD",'
        '"status":"error","subscription":{"name":"book"},"reqid":7}'
    )
    assert codec.decode(refused, TS) == [Reply("7", "Currency pair not supported")]
    assert codec.decode('{"event":"pong","reqid":42}', TS) == [Reply("42", None)]
    assert codec.decode('{"event":"error","errorMessage":"Malformed request"}', TS) == [Reply("", "Malformed request")]


def test_book_snapshot(codec: KrakenV1Codec) -> None:
    frame = recorded("KRAKEN.ws.50.0", '[1360,{"as":')
    raw = json.loads(frame)[1]
    [snap] = codec.decode(frame, TS)
    assert isinstance(snap, BookSnapshot)
    assert (snap.exchange, snap.symbol, snap.native, snap.seq, snap.checksum) == (
        "kraken", "ADA-BTC", "ADA/XBT", None, None,
    )  # fmt: skip
    assert snap.asks[:2] == (("0.000022900", "13355.87450757"), ("0.000022910", "15283.79025460"))
    assert snap.bids == tuple((p, q) for p, q, _ in raw["bs"])
    assert snap.asks == tuple((p, q) for p, q, _ in raw["as"])
    assert (len(snap.bids), len(snap.asks)) == (707, 841)
    newest = max(Decimal(t) for _, _, t in raw["as"] + raw["bs"])
    assert (snap.ts_exchange, snap.ts_recv) == (int(newest * 10**9), TS)
    assert codec.book_depth("ADA/XBT") == 1000  # from the channel name, even without the status


def test_book_update_with_a_delete_and_its_checksum(codec: KrakenV1Codec) -> None:
    frame = recorded("KRAKEN.ws.50.0", '"c":"1822697057"')
    assert codec.decode(frame, TS) == [
        BookDelta(
            exchange="kraken",
            symbol="XMR-USD",
            native="XMR/USD",
            bids=(("354.12000000", "0"),),  # "0.00000000" on the wire: a delete, spelled "0"
            asks=(),
            first_seq=None,
            seq=None,
            ts_exchange=1618678133_366461000,
            ts_recv=TS,
            checksum=1822697057,
        )
    ]


def test_book_update_in_two_dicts(codec: KrakenV1Codec) -> None:
    frame = recorded("KRAKEN.ws.50.0", '"c":"4105471083"')
    assert codec.decode(frame, TS) == [
        BookDelta(
            "kraken", "SC-EUR", "SC/EUR",
            bids=(("0.042990", "0"),), asks=(("0.042990", "364630.28272081"),),
            first_seq=None, seq=None, ts_exchange=1618678145_920708000, ts_recv=TS, checksum=4105471083,
        )
    ]  # fmt: skip


def test_republished_level_and_one_dict_with_both_sides(codec: KrakenV1Codec) -> None:
    frame = (
        '[1234,{"a":[["5541.30000","2.50700000","1534614248.456738","r"]],'
        '"b":[["5541.20000","1.52900000","1534614248.765567"],["5541.20000","0.00000000","1534614248.9"]],'
        '"c":"974942666"},"book-10","XBT/USD"]'
    )
    assert codec.decode(frame, TS) == [
        BookDelta(
            "kraken", "BTC-USD", "XBT/USD",
            bids=(("5541.20000", "1.52900000"), ("5541.20000", "0")),  # in order: set, then deleted
            asks=(("5541.30000", "2.50700000"),),
            first_seq=None, seq=None, ts_exchange=1534614248_900000000, ts_recv=TS, checksum=974942666,
        )
    ]  # fmt: skip
    assert codec.book_depth("XBT/USD") == 10


def test_trades(codec: KrakenV1Codec) -> None:
    frame = recorded("KRAKEN.ws.48.0", '"354.55000000"')
    assert codec.decode(frame, TS) == [
        Trade("kraken", "XMR-USD", "XMR/USD", "1618678145.715785-0", "354.55000000", "1.25690315", "buy",
              1618678145_715785000, TS)
    ]  # fmt: skip
    two = '[1,[["1.0","2.0","1618678145.1","s","l",""],["1.1","3.0","1618678145.1","b","m",""]],"trade","XDG/EUR"]'
    assert [(t.symbol, t.trade_id, t.side) for t in codec.decode(two, TS)] == [  # type: ignore[union-attr]
        ("DOGE-EUR", "1618678145.1-0", "sell"),
        ("DOGE-EUR", "1618678145.1-1", "buy"),
    ]


@pytest.mark.parametrize(
    ("text", "ns"), [("1618678142.557535", 1618678142_557535000), ("1", 10**9), ("0.0000000019", 1)]
)
def test_seconds_to_ns_is_exact(text: str, ns: int) -> None:
    assert seconds_to_ns(text) == ns


def test_ticker_is_ignored(codec: KrakenV1Codec) -> None:
    assert codec.decode(recorded("KRAKEN.ws.49.0", '"ticker","XMR/USD"]'), TS) == []


def test_the_recordings_decode_without_errors() -> None:
    codec = KrakenV1Codec()
    for name in ("KRAKEN.ws.48.0", "KRAKEN.ws.49.0", "KRAKEN.ws.50.0"):
        for line in (RECORDINGS / name).read_text().splitlines():
            head, _, payload = line.partition(": ")
            if payload and head[0].isdigit():
                assert isinstance(codec.decode(payload, TS), list)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("[1,{", id="bad-json"),
        pytest.param("5", id="not-object-or-array"),
        pytest.param('{"event":"mystery"}', id="unknown-event"),
        pytest.param('{"status":"online"}', id="no-event"),
        pytest.param('{"event":"subscriptionStatus","status":"subscribed","pair":"XBT/USD"}', id="status-no-channel"),
        pytest.param('[1,"book-10","XBT/USD"]', id="too-short"),
        pytest.param('["1",{"a":[]},"book-10","XBT/USD"]', id="channel-id-str"),
        pytest.param('[1,{"x":[]},"book-10","XBT/USD"]', id="update-without-sides"),
        pytest.param('[1,{"a":[["1.0","2.0"]]},"book-10","XBT/USD"]', id="level-short"),
        pytest.param('[1,{"a":[["1.0","2.0","3.0","x"]]},"book-10","XBT/USD"]', id="level-flag"),
        pytest.param('[1,{"a":[[1.0,"2.0","3.0"]]},"book-10","XBT/USD"]', id="price-number"),
        pytest.param('[1,{"a":[["1e5","2.0","3.0"]]},"book-10","XBT/USD"]', id="price-exponent"),
        pytest.param('[1,{"a":[],"c":"-5"},"book-10","XBT/USD"]', id="checksum-negative"),
        pytest.param('[1,{"a":[],"c":5},"book-10","XBT/USD"]', id="checksum-unquoted"),
        pytest.param('[1,{"as":[],"bs":[]},{"a":[]},"book-10","XBT/USD"]', id="snapshot-two-dicts"),
        pytest.param('[1,[["1.0","2.0","3.0","x","l",""]],"trade","XBT/USD"]', id="trade-side"),
        pytest.param('[1,[["1.0","2.0","3.0","b"]],"trade","XBT/USD"]', id="trade-short"),
        pytest.param('[1,{"a":[]},"trade","XBT/USD"]', id="trade-not-list"),
        pytest.param('[1,{"a":[]},"mystery","XBT/USD"]', id="unknown-channel"),
        pytest.param('[1,{"a":[]},"book-10","XBTUSD"]', id="pair-no-slash"),
    ],
)
def test_malformed_frames_raise_decode_error_only(codec: KrakenV1Codec, frame: str) -> None:
    with pytest.raises(DecodeError):
        codec.decode(frame, TS)
