"""Kraken's REST trade history (``/0/public/Trades``): page URLs by time, paging, exact decoding of the
docs' example body, and every malformed body a `DecodeError`."""

from __future__ import annotations

import orjson
import pytest

from ingest.errors import DecodeError
from ingest.events import Trade
from ingest.exchanges.kraken.history import HISTORY, decode, next_url, page_url, rest_pair
from ingest.exchanges.kraken.spec import SPEC

REST = "https://api.kraken.com/"
# The example of Kraken's "Get Recent Trades" docs (https://docs.kraken.com/api/docs/rest-api/get-recent-trades/).
DOCS_BODY = b"""{"error":[],"result":{"XXBTZUSD":[
 ["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952],
 ["30243.30000","0.00376960",1688669598.2804112,"s","l","",61044953],
 ["30243.30000","0.01235716",1688669602.698379,"s","m","",61044956]],
 "last":"1688671969993150842"}}"""


def trade(trade_id: int, ts: int) -> Trade:
    return Trade("kraken", "BTC-USD", "BTC/USD", str(trade_id), "1.0", "1.0", "buy", ts, 0)


def test_spec_reads_this_history() -> None:
    assert SPEC.trade_history is HISTORY and SPEC.trade_ids_contiguous


def test_docs_example_decodes_exactly() -> None:
    trades = decode(DOCS_BODY, "BTC/USD", "BTC-USD", 7)
    assert trades == [
        Trade("kraken", "BTC-USD", "BTC/USD", "61044952", "30243.40000", "0.34507674", "buy", 1688669597827736900, 7),
        Trade("kraken", "BTC-USD", "BTC/USD", "61044953", "30243.30000", "0.00376960", "sell", 1688669598280411200, 7),
        Trade("kraken", "BTC-USD", "BTC/USD", "61044956", "30243.30000", "0.01235716", "sell", 1688669602698379000, 7),
    ]
    assert all(t.origin == "live" for t in trades)  # the runner marks them as backfill


def test_times_are_exact_and_whole_seconds_accepted() -> None:
    rows = b'[["1.5","2",1795244995.013257,"b","m","",1],["1.5","2",1700000000,"s","l","",2]]'
    body = b'{"error":[],"result":{"XBTUSD":' + rows + b',"last":"0"}}'
    assert [t.ts_exchange for t in decode(body, "BTC/USD", "BTC-USD", 0)] == [1795244995013257000, 1700000000000000000]


def test_an_empty_page_is_no_trades() -> None:
    assert decode(b'{"error":[],"result":{"XXBTZUSD":[],"last":"5"}}', "BTC/USD", "BTC-USD", 0) == []


def test_rest_pair_is_the_altname() -> None:
    assert rest_pair("BTC/USD") == "XBTUSD"
    assert rest_pair("DOGE/USD") == "XDGUSD"
    assert rest_pair("ETH/USDT") == "ETHUSDT"
    assert rest_pair("eth/btc") == "ETHXBT"


def test_first_page_starts_just_before_the_after_trade() -> None:
    """``since`` is exclusive: one ns before the ``after`` trade, so trades sharing its time are read."""
    url = page_url(REST, "BTC/USD", trade(10, 1_000_000_000), trade(20, 2_000_000_000))
    assert url == "https://api.kraken.com/0/public/Trades?pair=XBTUSD&since=999999999&count=1000"


def test_next_page_and_the_end_of_paging() -> None:
    after, before = trade(10, 1_000), trade(20, 9_000)
    assert next_url(REST, "BTC/USD", after, before, []) is None  # the history has nothing more
    assert next_url(REST, "BTC/USD", after, before, [trade(11, 1_500), trade(19, 8_000)]) is None  # reached
    url = next_url(REST, "BTC/USD", after, before, [trade(11, 1_500), trade(14, 3_000), trade(13, 3_000)])
    assert url == "https://api.kraken.com/0/public/Trades?pair=XBTUSD&since=2999&count=1000"  # re-reads time 3000
    # A page all at one time: move past it, or paging would never advance.
    url = next_url(REST, "BTC/USD", after, before, [trade(11, 3_000), trade(12, 3_000)])
    assert url == "https://api.kraken.com/0/public/Trades?pair=XBTUSD&since=3000&count=1000"


def _body(row: object) -> bytes:
    return orjson.dumps({"error": [], "result": {"XBTUSD": [row], "last": "1"}})


GOOD = ["1.5", "2.0", 1700000000.5, "b", "m", "", 7]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"error":["EQuery:Unknown asset pair"]}',
        b'{"error":["EGeneral:Too many requests"],"result":{}}',
        b'{"result":{"XBTUSD":[],"last":"1"}}',  # no error list
        b'{"error":"","result":{"XBTUSD":[],"last":"1"}}',
        b'{"error":[]}',
        b'{"error":[],"result":[]}',
        b'{"error":[],"result":{"last":"1"}}',  # no pair
        b'{"error":[],"result":{"XBTUSD":[],"XETHZUSD":[],"last":"1"}}',  # two pairs
        b'{"error":[],"result":{"XBTUSD":{},"last":"1"}}',
        b'{"error":[],"result":{"XBTUSD":[["1.5","2.0",NaN,"b","m","",7]],"last":"1"}}',
        _body("row"),
        _body(GOOD[:6]),  # no trade_id (bodies from before Kraken added it)
        _body([1.5, *GOOD[1:]]),  # price as a number
        _body(["0.000", *GOOD[1:]]),  # zero price
        _body(["-1.5", *GOOD[1:]]),
        _body([*GOOD[:1], "1e3", *GOOD[2:]]),
        _body([*GOOD[:2], "1700000000.5", *GOOD[3:]]),  # time as a string
        _body([*GOOD[:2], -1.0, *GOOD[3:]]),
        _body([*GOOD[:2], True, *GOOD[3:]]),
        _body([*GOOD[:3], "buy", *GOOD[4:]]),
        _body([*GOOD[:4], "x", *GOOD[5:]]),
        _body([*GOOD[:6], 7.0]),
        _body([*GOOD[:6], "7"]),
        _body([*GOOD[:6], -7]),
        _body([*GOOD[:6], True]),
        _body([*GOOD[:6], 2**63]),
        b'{"error":[],"result":{"XBTUSD":[["1.5","2.0",1e999999999,"b","m","",7]],"last":"1"}}',
        b'{"error":[],"result":{"XBTUSD":[["1.5","2.0",1e10,"b","m","",7]],"last":"1"}}',  # past 2262
    ],
)
def test_malformed_bodies_are_decode_errors(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(body, "BTC/USD", "BTC-USD", 0)


def test_the_good_row_of_the_negative_cases_decodes() -> None:
    (t,) = decode(_body(GOOD), "BTC/USD", "BTC-USD", 0)
    assert (t.trade_id, t.price, t.qty, t.side, t.ts_exchange) == ("7", "1.5", "2.0", "buy", 1700000000500000000)
