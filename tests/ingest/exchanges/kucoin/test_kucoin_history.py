"""KuCoin's recent-trades history: rows decoded exactly; one page covers a range only if it reaches
back to the range's start, else the range is reported (RemoteError), never silently passed."""

from __future__ import annotations

import pytest

from ingest.errors import DecodeError, RemoteError
from ingest.events import Trade
from ingest.exchanges.kucoin.history import HISTORY, decode, next_url, page_url

TS = 1_700_000_000_000_000_000
# KuCoin docs, "Get Trade Histories" (the rows; the answer wraps them as every KuCoin REST answer).
BODY = (
    b'{"code":"200000","data":[{"sequence":"1545896668571","price":"0.07","size":"0.004","side":"buy",'
    b'"time":1545904567062140823},{"sequence":"1545896668578","price":"0.054","size":"0.066","side":"sell",'
    b'"time":1545904581619888405}]}'
)


def trade(tid: int) -> Trade:
    return Trade("kucoin", "BTC-USDT", "BTC-USDT", str(tid), "1", "1", "buy", 1, 1)


def test_rows_decode_exactly() -> None:
    assert decode(BODY, "BTC-USDT", "BTC-USDT", TS) == [
        Trade("kucoin", "BTC-USDT", "BTC-USDT", "1545896668571", "0.07", "0.004", "buy", 1545904567062140823, TS),
        Trade("kucoin", "BTC-USDT", "BTC-USDT", "1545896668578", "0.054", "0.066", "sell", 1545904581619888405, TS),
    ]


def test_one_page_that_reaches_the_start_covers_the_range() -> None:
    assert page_url("http://x/kucoin/", "BTC-USDT", trade(5), trade(50)) == (
        "http://x/kucoin/api/v1/market/histories?symbol=BTC-USDT"
    )
    page = decode(BODY, "BTC-USDT", "BTC-USDT", TS)
    assert next_url("http://x", "BTC-USDT", trade(1545896668571), trade(1545896668600), page) is None
    assert HISTORY.max_pages == 1


def test_a_page_that_does_not_reach_back_far_enough_reports_the_range() -> None:
    page = decode(BODY, "BTC-USDT", "BTC-USDT", TS)
    with pytest.raises(RemoteError, match="no longer reaches back to trade 1545896668570"):
        next_url("http://x", "BTC-USDT", trade(1545896668570), trade(1545896668600), page)
    with pytest.raises(RemoteError):
        next_url("http://x", "BTC-USDT", trade(1), trade(2), [])


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":"400100","msg":"symbol invalid"}',
        b'[{"sequence":"1","price":"1","size":"1","side":"buy","time":1}]',  # not wrapped
        b'{"code":"200000","data":{}}',
        b'{"code":"200000","data":[{"sequence":"1","price":"0","size":"1","side":"buy","time":1}]}',
        b'{"code":"200000","data":[{"sequence":"-1","price":"1","size":"1","side":"buy","time":1}]}',
        b'{"code":"200000","data":[{"sequence":"1","price":"1","size":"1","side":"up","time":1}]}',
        b'{"code":"200000","data":[{"sequence":"1","price":"1","size":"1","side":"buy"}]}',
        b'{"code":"200000","data":[5]}',
    ],
)
def test_bad_bodies_are_decode_errors(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(body, "BTC-USDT", "BTC-USDT", TS)
