"""Values an exchange never sends are `DecodeError`s that say what was wrong.

One case per defect the fuzzing (test_fuzz_codecs.py) found: before these checks each of these frames
either crashed the codec with another exception (``ValueError`` from ``int()`` past 4300 digits or of
``"²"``, ``decimal.Overflow``, a lone surrogate that could not be encoded for the bus), hung it
(``1e99999999`` written out in full) or came out as an event no consumer should see (a zero price,
a negative time, a symbol ``A-B-USDT``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ingest.errors import DecodeError
from ingest.exchanges.base import Codec
from ingest.exchanges.binance.codec import BinanceCodec
from ingest.exchanges.kraken.codec import KrakenCodec
from ingest.exchanges.kraken.codec_v1 import KrakenV1Codec
from ingest.exchanges.okx.codec import OkxCodec

TS = 1_700_000_000_000_000_000


def binance_trade(**values: str) -> str:
    fields = {"e": '"trade"', "E": "1672515782136", "s": '"BNBBTC"', "t": "12345", "p": '"0.001"',
              "q": '"100"', "T": "1672515782136", "m": "true"} | values  # fmt: skip
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


def binance_depth(**values: str) -> str:
    fields = {"e": '"depthUpdate"', "E": "1672515782136", "s": '"BNBBTC"', "U": "157", "u": "160",
              "b": '[["0.0024","10"]]', "a": '[["0.0026","100"]]'} | values  # fmt: skip
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


def kraken_trade(**values: str) -> str:
    fields = {"symbol": '"BTC/USD"', "side": '"buy"', "price": "45283.5", "qty": "0.1", "ord_type": '"limit"',
              "trade_id": "1", "timestamp": '"2023-09-25T07:48:36.925533Z"'} | values  # fmt: skip
    element = "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"
    return f'{{"channel":"trade","type":"update","data":[{element}]}}'


def kraken_v1_update(level: str, c: str = '"1"', name: str = "book-10") -> str:
    return f'[1,{{"a":[{level}],"c":{c}}},"{name}","XBT/USD"]'


def okx_trade(**values: str) -> str:
    fields = {"instId": '"BTC-USDT"', "tradeId": '"1"', "px": '"1.5"', "sz": '"2"', "side": '"buy"',
              "ts": '"1630048897897"'} | values  # fmt: skip
    element = "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"
    return f'{{"arg":{{"channel":"trades","instId":"BTC-USDT"}},"data":[{element}]}}'


def okx_books(**values: str) -> str:
    fields = {"asks": '[["2","1","0","1"]]', "bids": '[["1","1","0","1"]]', "ts": '"5"', "checksum": "0",
              "prevSeqId": "1", "seqId": "2"} | values  # fmt: skip
    element = "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"
    return f'{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"update","data":[{element}]}}'


NINES = '"' + "9" * 5000 + '"'
CASES: list[tuple[str, Callable[[], Codec], str, str]] = [
    # Binance
    ("binance-zero-price", BinanceCodec, binance_trade(p='"0.00000000"'), r"field 'p' must not be zero"),
    ("binance-zero-qty", BinanceCodec, binance_trade(q='"0"'), r"field 'q' must not be zero"),
    ("binance-negative-time", BinanceCodec, binance_trade(T="-1"), r"field 'T' is not a millisecond time"),
    ("binance-time-past-2262", BinanceCodec, binance_depth(E="9223372036854775807"), r"field 'E' is not a milli"),
    ("binance-negative-id", BinanceCodec, binance_trade(t="-3"), r"field 't' must be a non-negative 64-bit"),
    ("binance-id-past-int64", BinanceCodec, binance_depth(u="9223372036854775808"), r"field 'u' must be a non-neg"),
    ("binance-U-after-u", BinanceCodec, binance_depth(U="161"), r"first update id 'U' 161 is after the last 'u' 160"),
    ("binance-level-price-zero", BinanceCodec, binance_depth(b='[["0","10"]]'), r"field 'b' holds a level at price"),
    ("binance-huge-decimal", BinanceCodec, binance_trade(p=NINES), r"field 'p' is not a decimal number"),
    ("binance-symbol-with-dash", BinanceCodec, binance_trade(s='"A-BUSDT"'), r"not a Binance symbol"),
    ("binance-symbol-with-nul", BinanceCodec, binance_trade(s='"\\u0000BTCUSDT"'), r"not a Binance symbol"),
    # Kraken v2
    ("kraken-price-1e99999999", KrakenCodec, kraken_trade(price="1e99999999"), r"'price' is not a price or quantity"),
    ("kraken-qty-1e-99999999", KrakenCodec, kraken_trade(qty="1E-99999999"), r"'qty' is not a price or quantity"),
    ("kraken-29-digits", KrakenCodec, kraken_trade(qty="0." + "1" * 29), r"'qty' is not a price or quantity"),
    ("kraken-zero-price", KrakenCodec, kraken_trade(price="0.0"), r"field 'price' must not be zero"),
    ("kraken-negative-id", KrakenCodec, kraken_trade(trade_id="-5"), r"field 'trade_id' must be a non-negative"),
    ("kraken-year-1", KrakenCodec, kraken_trade(timestamp='"0001-01-01T00:00:00Z"'), r"not a time between 1970"),
    ("kraken-lone-surrogate", KrakenCodec, kraken_trade(symbol='"BTC\\ud800/USD"'), r"bad JSON"),
    ("kraken-symbol-with-dash", KrakenCodec, kraken_trade(symbol='"A-B/USD"'), r"Kraken symbol must be BASE/QUOTE"),
    # Kraken v1
    ("kraken-v1-checksum-superscript", KrakenV1Codec, kraken_v1_update('["1.0","1.0","1618678132.1"]', '"\u00b2"'),
     r"field 'c' is not an unsigned 32-bit integer"),
    ("kraken-v1-time-5000-digits", KrakenV1Codec, kraken_v1_update(f'["1.0","1.0",{NINES}]'),
     r"a timestamp in 'a' must be a decimal string"),
    ("kraken-v1-time-past-2262", KrakenV1Codec, kraken_v1_update('["1.0","1.0","99999999999.5"]'),
     r"a timestamp in 'a' is not a time since the epoch"),
    ("kraken-v1-zero-price", KrakenV1Codec, kraken_v1_update('["0.000","1.0","1618678132.1"]'),
     r"a price in 'a' must not be zero"),
    # OKX
    ("okx-ts-5000-digits", OkxCodec, okx_trade(ts=NINES), r"field 'ts' is not a millisecond timestamp"),
    ("okx-ts-past-2262", OkxCodec, okx_trade(ts='"9223372036855"'), r"field 'ts' is not a millisecond timestamp"),
    ("okx-count-5000-digits", OkxCodec, okx_trade(count=NINES), r"field 'count' must be a whole number"),
    ("okx-trade-id-not-digits", OkxCodec, okx_trade(tradeId='"a\\u0000"'), r"field 'tradeId' is not a string of"),
    ("okx-zero-size", OkxCodec, okx_trade(sz='"0.0"'), r"field 'sz' must not be zero"),
    ("okx-checksum-past-int32", OkxCodec, okx_books(checksum="4294967296"), r"field 'checksum' out of range"),
    ("okx-seq-past-int64", OkxCodec, okx_books(seqId="9223372036854775808"), r"field 'seqId' out of range"),
    ("okx-level-price-zero", OkxCodec, okx_books(bids='[["0","1","0","1"]]'), r"field 'bids' holds a level at price"),
    ("okx-symbol-with-nul", OkxCodec, okx_trade(instId='"BTC\\u0000-USDT"'), r"OKX instId must be BASE-QUOTE"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "frame", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_a_precise_message(make: Callable[[], Codec], frame: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as err:
        make().decode(frame, TS)
    assert err.value.excerpt  # the log shows the frame it was about
    assert len(str(err.value)) < 600  # excerpts, not 5000-digit numbers


def test_the_unaltered_frames_decode() -> None:
    """The cases differ from valid frames only in the value they name."""
    for make, frame in [
        (BinanceCodec, binance_trade()),
        (BinanceCodec, binance_depth()),
        (KrakenCodec, kraken_trade()),
        (KrakenV1Codec, kraken_v1_update('["1.0","1.0","1618678132.1"]')),
        (OkxCodec, okx_trade()),
        (OkxCodec, okx_books()),
    ]:
        assert make().decode(frame, TS)
