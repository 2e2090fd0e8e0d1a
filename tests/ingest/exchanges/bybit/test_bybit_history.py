"""Bybit's REST recent trades as a `TradeHistory`: the docs' response example decoded field by field,
one page that either reaches back to the last published trade (the range is covered) or does not
(`RemoteError`: the range is reported), and refusals."""

from __future__ import annotations

import pytest

from ingest.errors import DecodeError, RemoteError
from ingest.events import Trade
from ingest.exchanges.bybit.history import HISTORY
from ingest.exchanges.bybit.spec import SPEC

TS = 1_700_000_000_000_000_000
MS = 1_000_000
# docs v5 market/recent-trade, response example, and a second row.
BODY = (
    '{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":['
    '{"execId":"2100000000007764263","symbol":"BTCUSDT","price":"16618.49","size":"0.00012","side":"Buy",'
    '"time":"1672052955758","isBlockTrade":false},'
    '{"execId":"2100000000007764260","symbol":"BTCUSDT","price":"16618.00","size":"1.5","side":"Sell",'
    '"time":"1672052955001","isBlockTrade":false}]},"retExtInfo":{},"time":1672053054358}'
)


def trade(trade_id: str) -> Trade:
    return Trade("bybit", "BTC-USDT", "BTCUSDT", trade_id, "1", "1", "buy", 0, 0)


def test_spec_uses_it() -> None:
    assert SPEC.trade_history is HISTORY and SPEC.trade_ids_contiguous is False
    assert HISTORY.max_pages == 1


def test_page_url() -> None:
    url = HISTORY.page_url("http://h/bybit/", "BTCUSDT", trade("5"), trade("9"))
    assert url == "http://h/bybit/v5/market/recent-trade?category=spot&symbol=BTCUSDT&limit=60"


def test_decode() -> None:
    assert HISTORY.decode(BODY.encode(), "BTCUSDT", "BTC-USDT", TS) == [
        Trade("bybit", "BTC-USDT", "BTCUSDT", "2100000000007764263", "16618.49", "0.00012", "buy", 1672052955758 * MS,
              TS),
        Trade("bybit", "BTC-USDT", "BTCUSDT", "2100000000007764260", "16618.00", "1.5", "sell", 1672052955001 * MS,
              TS),
    ]  # fmt: skip


def test_a_page_reaching_back_covers_the_range() -> None:
    page = HISTORY.decode(BODY.encode(), "BTCUSDT", "BTC-USDT", TS)
    for after in ("2100000000007764260", "2100000000007764262"):
        assert HISTORY.next_url("http://h", "BTCUSDT", trade(after), trade("2100000000007764270"), page) is None


@pytest.mark.parametrize("after", ["2100000000007764259", "2100000000007764200", "abc"])
def test_a_page_not_reaching_back_is_an_unfillable_range(after: str) -> None:
    page = HISTORY.decode(BODY.encode(), "BTCUSDT", "BTC-USDT", TS)
    with pytest.raises(RemoteError, match="no longer reach back"):
        HISTORY.next_url("http://h", "BTCUSDT", trade(after), trade("2100000000007764270"), page)
    with pytest.raises(RemoteError):
        HISTORY.next_url("http://h", "BTCUSDT", trade("1"), trade("2"), [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"retCode":10001,"retMsg":"Not supported symbols","result":{},"time":1}', "refused.*10001"),
        (BODY.replace('"symbol":"BTCUSDT"', '"symbol":"ETHUSDT"', 1), "recent trade of 'ETHUSDT'"),
        (BODY.replace('"time":"1672052955758"', '"time":1672052955758'), "field 'time' must be a string"),
        (BODY.replace('"side":"Buy"', '"side":"buy"'), "must be Buy or Sell"),
        (BODY.replace('"size":"0.00012"', '"size":"0"'), "must not be zero"),
        ('{"retCode":0,"retMsg":"OK","result":{"category":"spot"}}', "missing field 'list'"),
        ("not json", "bad JSON"),
    ],
)
def test_refusals_and_malformed_pages(body: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        HISTORY.decode(body.encode(), "BTCUSDT", "BTC-USDT", TS)
