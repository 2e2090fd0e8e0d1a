"""OKX's REST trade history (``/api/v5/market/history-trades``): page URLs by tradeId going backwards,
the end of paging (and a history that ends too early, which is not a complete read), exact decoding
of the docs' example body, and every malformed body a `DecodeError`."""

from __future__ import annotations

import orjson
import pytest

from ingest.errors import DecodeError, RemoteError
from ingest.events import Trade
from ingest.exchanges.okx.history import HISTORY, decode, next_url, page_url
from ingest.exchanges.okx.spec import SPEC

REST = "https://www.okx.com/"
# The shape of the example in OKX's v5 docs, "Get trades history"
# (https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-trades-history).
DOCS_BODY = b"""{"code":"0","msg":"","data":[
 {"instId":"BTC-USDT","side":"sell","sz":"0.00001","source":"0","px":"29963.2","tradeId":"242720720","ts":"1654161646974"},
 {"instId":"BTC-USDT","side":"buy","sz":"0.00001","source":"0","px":"29964.1","tradeId":"242720719","ts":"1654161641568"}]}"""


def trade(trade_id: int) -> Trade:
    return Trade("okx", "BTC-USDT", "BTC-USDT", str(trade_id), "1", "1", "buy", 0, 0)


def test_spec_reads_this_history() -> None:
    assert SPEC.trade_history is HISTORY and not SPEC.trade_ids_contiguous


def test_docs_example_decodes_exactly() -> None:
    assert decode(DOCS_BODY, "BTC-USDT", "BTC-USDT", 9) == [
        Trade("okx", "BTC-USDT", "BTC-USDT", "242720720", "29963.2", "0.00001", "sell", 1654161646974000000, 9),
        Trade("okx", "BTC-USDT", "BTC-USDT", "242720719", "29964.1", "0.00001", "buy", 1654161641568000000, 9),
    ]


def test_an_empty_page_is_no_trades() -> None:
    assert decode(b'{"code":"0","msg":"","data":[]}', "BTC-USDT", "BTC-USDT", 0) == []


def test_first_page_is_the_trades_before_the_before_trade() -> None:
    url = page_url(REST, "BTC-USDT", trade(100), trade(250))
    assert url == "https://www.okx.com/api/v5/market/history-trades?instId=BTC-USDT&type=1&after=250&limit=100"


def test_paging_goes_back_until_the_after_trade() -> None:
    after, before = trade(100), trade(250)
    page = [trade(i) for i in range(249, 149, -1)]
    url = next_url(REST, "BTC-USDT", after, before, page)
    assert url == "https://www.okx.com/api/v5/market/history-trades?instId=BTC-USDT&type=1&after=150&limit=100"
    assert next_url(REST, "BTC-USDT", after, before, [trade(i) for i in range(149, 49, -1)]) is None  # reached
    assert next_url(REST, "BTC-USDT", after, before, [trade(180), trade(100)]) is None  # the after trade itself
    assert next_url(REST, "BTC-USDT", after, before, [trade(90)]) is None  # ids skip: nothing between


def test_a_history_that_ends_before_the_after_trade_is_not_a_complete_read() -> None:
    with pytest.raises(RemoteError, match="ends before trade 100"):
        next_url(REST, "BTC-USDT", trade(100), trade(250), [])


GOOD = {"instId": "BTC-USDT", "side": "buy", "sz": "0.5", "px": "100.1", "tradeId": "7", "ts": "1654161646974"}


def _body(row: object) -> bytes:
    return orjson.dumps({"code": "0", "msg": "", "data": [row]})


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"code":"51001","msg":"Instrument ID doesn\'t exist.","data":[]}',
        b'{"code":"50011","msg":"Too Many Requests"}',
        b'{"code":0,"msg":"","data":[]}',  # code as a number
        b'{"msg":"","data":[]}',
        b'{"code":"0","msg":""}',
        b'{"code":"0","msg":"","data":{}}',
        _body("row"),
        _body(GOOD | {"instId": "ETH-USDT"}),  # another instrument's trade
        _body(GOOD | {"side": "BUY"}),
        _body({k: v for k, v in GOOD.items() if k != "tradeId"}),
        _body(GOOD | {"tradeId": 7}),
        _body(GOOD | {"tradeId": "-7"}),
        _body(GOOD | {"px": "0"}),
        _body(GOOD | {"sz": 0.5}),
        _body(GOOD | {"ts": 1654161646974}),
        _body(GOOD | {"ts": "soon"}),
    ],
)
def test_malformed_bodies_are_decode_errors(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(body, "BTC-USDT", "BTC-USDT", 0)


def test_the_good_row_of_the_negative_cases_decodes() -> None:
    (t,) = decode(_body(GOOD), "BTC-USDT", "BTC-USDT", 0)
    assert (t.trade_id, t.price, t.qty, t.side, t.ts_exchange) == ("7", "100.1", "0.5", "buy", 1654161646974000000)
