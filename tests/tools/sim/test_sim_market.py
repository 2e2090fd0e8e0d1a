"""The seeded market model: deterministic, never crossed, continuous ids, changes that add up."""

from __future__ import annotations

import re

import pytest

from tools.sim.market import MarketEvent, SymbolMarket, fmt8

DECIMAL8 = re.compile(r"^(0|[1-9][0-9]*)\.[0-9]{8}$")


def _strip(ev: MarketEvent) -> tuple[object, ...]:
    return (ev.update_id, ev.bids, ev.asks, ev.trade)


def test_fmt8_spells_binance_decimals() -> None:
    assert fmt8(35_130_000) == "0.35130000"
    assert fmt8(4_321_012_000_000) == "43210.12000000"
    assert fmt8(0) == "0.00000000"
    assert fmt8(1) == "0.00000001"


def test_same_seed_same_events_whatever_the_time() -> None:
    a = SymbolMarket("BTC-USDT", 7, 20, 0.3)
    b = SymbolMarket("BTC-USDT", 7, 20, 0.3)
    assert a.book() == b.book() and a.update_id == b.update_id and a.next_trade_id == b.next_trade_id
    # Different timestamps: only the stamp may differ, never the market.
    events_a = [_strip(a.step(i)) for i in range(3000)]
    events_b = [_strip(b.step(10**18 + 7 * i)) for i in range(3000)]
    assert events_a == events_b
    assert a.book() == b.book()


def test_seed_and_symbol_change_the_market() -> None:
    base = SymbolMarket("BTC-USDT", 7, 20, 0.3)
    for other in (SymbolMarket("BTC-USDT", 8, 20, 0.3), SymbolMarket("ETH-USDT", 7, 20, 0.3)):
        assert (other.book(), other.update_id) != (base.book(), base.update_id)


@pytest.mark.parametrize(
    "symbol,levels,ratio", [("BTC-USDT", 20, 0.3), ("NKN-USDT", 3, 0.6), ("X-Y", 1, 0.9)]
)
def test_book_invariants_and_changes_add_up(symbol: str, levels: int, ratio: float) -> None:
    m = SymbolMarket(symbol, 11, levels, ratio)
    bids0, asks0 = m.book()
    # A client's view: the initial book plus every reported change must always equal the model.
    bids = dict(bids0)
    asks = dict(asks0)
    last_update, next_trade = m.update_id, m.next_trade_id
    trades = 0
    for i in range(5000):
        best_bid, best_ask = m.book(1)[0][0], m.book(1)[1][0]
        ev = m.step(i)
        assert ev.update_id == last_update + 1
        last_update = ev.update_id
        assert ev.bids or ev.asks
        for side, changes in ((bids, ev.bids), (asks, ev.asks)):
            assert len({p for p, _ in changes}) == len(changes)
            for p, q in changes:
                assert DECIMAL8.match(p) and DECIMAL8.match(q)
                if q == "0.00000000":
                    side.pop(p, None)
                else:
                    side[p] = q
        if ev.trade is not None:
            trades += 1
            t = ev.trade
            assert t.trade_id == next_trade
            next_trade += 1
            # The taker takes the best opposite level, at most what it holds.
            level = best_ask if t.side == "buy" else best_bid
            assert t.price == level[0]
            assert 0 < int(t.qty.replace(".", "")) <= int(level[1].replace(".", ""))
            assert (ev.asks if t.side == "buy" else ev.bids)[0][0] == t.price
        book_bids, book_asks = m.book()
        assert 1 <= len(book_bids) <= levels and 1 <= len(book_asks) <= levels
        assert float(book_bids[0][0]) < float(book_asks[0][0])
        assert [float(p) for p, _ in book_bids] == sorted((float(p) for p, _ in book_bids), reverse=True)
        assert [float(p) for p, _ in book_asks] == sorted(float(p) for p, _ in book_asks)
    assert m.update_id == last_update and m.last_trade_id == next_trade - 1
    key = lambda lv: float(lv[0])  # noqa: E731
    assert sorted(bids.items(), key=key, reverse=True) == m.book()[0]
    assert sorted(asks.items(), key=key) == m.book()[1]
    assert trades > 5000 * ratio * 0.8


def test_book_limit() -> None:
    m = SymbolMarket("BTC-USDT", 7, 20, 0.3)
    bids, asks = m.book(5)
    assert len(bids) == len(asks) == 5
    assert (bids, asks) == (m.book()[0][:5], m.book()[1][:5])
