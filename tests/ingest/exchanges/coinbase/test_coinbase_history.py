"""Coinbase's public market trades as a trade history: decoding a page (the docs' response shape),
and paging backwards by time until the hole's start is reached."""

from __future__ import annotations

import pytest

from ingest.errors import DecodeError, RemoteError
from ingest.events import Trade
from ingest.exchanges.coinbase.history import HISTORY, PAGE

REST = "https://api.coinbase.com"
TS = 1_700_000_000_000_000_000
S = 1_000_000_000
PAGE_BODY = (
    b'{"trades":[{"trade_id":"929248659","product_id":"BTC-USD","price":"88355.58","size":"0.00006677",'
    b'"time":"2025-12-31T06:00:13.45609Z","side":"BUY","exchange":"coinbase"},'
    b'{"trade_id":"929248658","product_id":"BTC-USD","price":"88355.59","size":"0.00022409",'
    b'"time":"2025-12-31T06:00:12.605867Z","side":"SELL"}],"best_bid":"88355.58","best_ask":"88355.59"}'
)


def trade(tid: int, second: int) -> Trade:
    return Trade("coinbase", "BTC-USD", "BTC-USD", str(tid), "1", "1", "buy", second * S, TS)


def test_decode_a_page() -> None:
    assert HISTORY.decode(PAGE_BODY, "BTC-USD", "BTC-USD", TS) == [
        Trade("coinbase", "BTC-USD", "BTC-USD", "929248659", "88355.58", "0.00006677", "sell",
              1_767_160_813_456_090_000, TS),
        Trade("coinbase", "BTC-USD", "BTC-USD", "929248658", "88355.59", "0.00022409", "buy",
              1_767_160_812_605_867_000, TS),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"error":"INVALID_ARGUMENT","message":"limit is required"}', "missing field 'trades'"),
        (PAGE_BODY.replace(b'"BTC-USD","price":"88355.58"', b'"ETH-USD","price":"88355.58"'), "row of 'ETH-USD'"),
        (PAGE_BODY.replace(b'"SELL"', b'"UNKNOWN"'), "'side' must be BUY or SELL"),
        (b"[]", "expected a JSON object"),
    ],
)
def test_bad_pages(body: bytes, error: str) -> None:
    with pytest.raises(DecodeError, match=error):
        HISTORY.decode(body, "BTC-USD", "BTC-USD", TS)


def test_paging_goes_back_by_seconds_until_the_start_of_the_hole() -> None:
    after, before = trade(100, 1000), trade(300, 1010)
    first = HISTORY.page_url(REST, "BTC-USD", after, before)
    assert first == f"{REST}/api/v3/brokerage/market/products/BTC-USD/ticker?limit={PAGE}"
    page = [trade(i, 1005 + (i - 200) // 50) for i in range(200, 300)]
    assert HISTORY.next_url(REST, "BTC-USD", after, before, page) == f"{first}&end=1006"
    assert HISTORY.next_url(REST, "BTC-USD", after, before, [trade(99, 999), trade(150, 1002)]) is None


def test_a_history_that_ends_before_the_hole_or_cannot_page_raises() -> None:
    after, before = trade(100, 1000), trade(300, 1010)
    with pytest.raises(RemoteError, match="ends before trade 100"):
        HISTORY.next_url(REST, "BTC-USD", after, before, [])
    with pytest.raises(RemoteError, match="in one second"):
        HISTORY.next_url(REST, "BTC-USD", after, before, [trade(i, 1005) for i in range(200, 300)])
