"""The pure bar builder: exact bars, closing by a later trade or the watermark, revisions, restore."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.bars import MINUTE_NS, PARTIAL_END, BarBuilder, TradeIds, bar_of, content, scaled
from ingest.events import Bar, Trade, TradeGap

T0 = 1_700_000_040_000_000_000  # a minute's first nanosecond
S = 1_000_000_000
GRACE = 2 * S
KEEP = 600 * S


def trade(tid: int, price: str, qty: str, at: int, origin: str = "live") -> Trade:
    return Trade("binance", "BTC-USDT", "BTCUSDT", str(tid), price, qty, "buy", at, at + 5, origin)  # type: ignore[arg-type]


def bar(start: int, o: str, h: str, low: str, c: str, vol: str, notional: str, vwap: str, n: int, first: int,
        last: int, *, backfilled: int = 0, missing: int = 0, partial: int = 0, revision: int = 0,
        ts_recv: int = 0) -> Bar:  # fmt: skip
    return Bar("binance", "BTC-USDT", "BTCUSDT", start, o, h, low, c, vol, notional, vwap, n, str(first), str(last),
               backfilled, missing, partial, revision, ts_recv)  # fmt: skip


def test_a_later_minute_trade_closes_the_bar_with_exact_fields() -> None:
    b = BarBuilder(GRACE, KEEP)
    assert b.on_event(trade(1, "100.5", "0.2", T0 + 1 * S)) == []
    assert b.on_event(trade(2, "101.25", "0.1", T0 + 20 * S)) == []
    assert b.on_event(trade(3, "99.0", "0.3", T0 + 59 * S)) == []
    out = b.on_event(trade(4, "100", "1", T0 + MINUTE_NS))
    # notional = 20.1 + 10.125 + 29.70 = 59.925; volume 0.6; vwap 99.875 to 2 + 4 places
    assert out == [bar(T0, "100.5", "101.25", "99.0", "99.0", "0.6", "59.925", "99.875000", 3, 1, 3, partial=1,
                       ts_recv=T0 + MINUTE_NS + 5)]  # fmt: skip


def test_the_watermark_closes_a_quiet_bar_after_the_grace() -> None:
    b = BarBuilder(GRACE, KEEP)
    b.on_event(trade(7, "3", "2", T0 + 30 * S))
    assert b.advance("binance", T0 + MINUTE_NS + GRACE - 1, now=1) == []
    assert b.advance("kraken", T0 + 5 * MINUTE_NS, now=2) == []  # another exchange's clock
    assert b.advance("binance", T0 + MINUTE_NS + GRACE, now=3) == [
        bar(T0, "3", "3", "3", "3", "2", "6", "3.0000", 1, 7, 7, partial=1, ts_recv=3)
    ]
    assert b.advance("binance", T0 + 2 * MINUTE_NS, now=4) == []  # published once


def test_minutes_without_trades_have_no_bar() -> None:
    b = BarBuilder(GRACE, KEEP)
    b.on_event(trade(1, "10", "1", T0))
    out = b.on_event(trade(2, "11", "1", T0 + 3 * MINUTE_NS))
    assert [x.start for x in out] == [T0]
    out = b.advance("binance", T0 + 10 * MINUTE_NS, now=0)
    assert [(x.start, x.open, x.partial) for x in out] == [(T0 + 3 * MINUTE_NS, "11", 0)]


def test_a_backfilled_trade_revises_a_closed_bar_and_duplicates_change_nothing() -> None:
    b = BarBuilder(GRACE, KEEP)
    b.on_event(trade(1, "10", "1", T0 + 1 * S))
    b.on_event(trade(3, "12", "1", T0 + 50 * S))
    first = b.on_event(trade(4, "13", "1", T0 + MINUTE_NS + S))
    assert first == [bar(T0, "10", "12", "10", "12", "2", "22", "11.0000", 2, 1, 3, partial=1,
                         ts_recv=T0 + MINUTE_NS + S + 5)]  # fmt: skip
    late = trade(2, "8", "2", T0 + 30 * S, origin="backfill")
    assert b.on_event(late) == [bar(T0, "10", "12", "8", "12", "4", "38", "9.5000", 3, 1, 3, backfilled=1,
                                    partial=1, revision=1, ts_recv=T0 + 30 * S + 5)]  # fmt: skip
    assert b.on_event(late) == []
    assert b.on_event(trade(4, "13", "1", T0 + MINUTE_NS + S)) == []  # a live duplicate of the open bar


def test_a_late_trade_into_an_empty_minute_publishes_its_bar_at_once() -> None:
    b = BarBuilder(GRACE, KEEP)
    b.on_event(trade(1, "10", "1", T0))
    b.on_event(trade(3, "10", "1", T0 + 2 * MINUTE_NS))
    out = b.on_event(trade(2, "9", "1", T0 + MINUTE_NS + S, origin="backfill"))
    assert [(x.start, x.revision, x.backfilled) for x in out] == [(T0 + MINUTE_NS, 0, 1)]


def test_trades_older_than_keep_are_left_out_and_counted() -> None:
    b = BarBuilder(GRACE, 60 * S)
    b.on_event(trade(1, "10", "1", T0))
    b.on_event(trade(5, "10", "1", T0 + 3 * MINUTE_NS))
    b.advance("binance", T0 + 3 * MINUTE_NS, now=0)
    assert b.on_event(trade(2, "10", "1", T0 + 10 * S)) == []
    assert b.late == 1


def test_a_trade_gap_counts_in_the_bar_of_the_trade_before_it() -> None:
    b = BarBuilder(GRACE, KEEP)
    b.on_event(trade(1, "10", "1", T0))
    b.on_event(TradeGap("binance", "BTC-USDT", "BTCUSDT", 2, 4, "lost", T0 + 9))
    out = b.on_event(trade(5, "10", "1", T0 + MINUTE_NS))
    assert [(x.start, x.missing, x.trades) for x in out] == [(T0, 3, 1)]
    out = b.on_event(TradeGap("binance", "BTC-USDT", "BTCUSDT", 6, 6, "lost", 1))
    assert out == []  # the open bar counts it; published when it closes
    assert [x.missing for x in b.advance("binance", T0 + 3 * MINUTE_NS, 0)] == [1]


def test_non_numeric_ids_order_by_time_then_arrival() -> None:
    mk = lambda tid, p, at: dataclasses.replace(trade(0, p, "1", at), trade_id=tid)  # noqa: E731
    got = bar_of([mk("b", "2", T0 + 2), mk("a", "1", T0 + 1), mk("c", "3", T0 + 2)])
    assert (got.open, got.close, got.first_trade_id, got.last_trade_id) == ("1", "3", "a", "c")


def test_restore_carries_the_open_bar_and_revises_what_the_last_life_did_not_get_out() -> None:
    trades = [trade(1, "10", "1", T0 + S), trade(2, "11", "1", T0 + 2 * S), trade(3, "12", "1", T0 + MINUTE_NS)]
    published = bar_of(trades[:1])  # the previous life published minute 0 with trade 1 only, then died
    published = dataclasses.replace(published, partial=1)
    b = BarBuilder(GRACE, KEEP)
    out = b.restore("binance", "BTC-USDT", "BTCUSDT", trades, [published], now=99)
    assert out == [bar(T0, "10", "11", "10", "11", "2", "21", "10.5000", 2, 1, 2, partial=1, revision=1, ts_recv=99)]
    # the open minute goes on from trade 3; a later minute's trade closes it
    out = b.on_event(trade(4, "13", "1", T0 + 2 * MINUTE_NS))
    assert out == [bar(T0 + MINUTE_NS, "12", "12", "12", "12", "1", "12", "12.0000", 1, 3, 3,
                       ts_recv=T0 + 2 * MINUTE_NS + 5)]  # fmt: skip


def test_restore_publishes_a_bar_the_last_life_lost_and_nothing_when_all_is_out() -> None:
    trades = [trade(1, "10", "1", T0 + S), trade(2, "11", "1", T0 + MINUTE_NS)]
    b = BarBuilder(GRACE, KEEP)
    out = b.restore("binance", "BTC-USDT", "BTCUSDT", trades, [], now=5)
    assert [(x.start, x.trades, x.revision, x.partial) for x in out] == [(T0, 1, 0, 1)]  # its first bar
    b2 = BarBuilder(GRACE, KEEP)
    assert b2.restore("binance", "BTC-USDT", "BTCUSDT", trades, out, now=6) == []
    assert b2.on_event(trade(1, "10", "1", T0 + S)) == []  # a duplicate of a restored trade


def test_restore_does_not_revise_a_minute_it_has_no_trades_of() -> None:
    old = bar_of([trade(1, "10", "1", T0 + S)])
    b = BarBuilder(GRACE, KEEP)
    assert b.restore("binance", "BTC-USDT", "BTCUSDT", [], [old], now=0) == []
    assert b.on_event(trade(2, "9", "1", T0 + 2 * S)) == []
    assert b.late == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 179), st.integers(1, 999), st.integers(1, 50)), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
)
def test_final_bars_equal_the_bars_of_the_distinct_trades_whatever_the_order(
    rows: list[tuple[int, int, int]], rnd: random.Random
) -> None:
    """Arrival order, duplicates and the watermark never change the newest revision of any minute."""
    trades = [trade(i + 1, f"{p / 10:.1f}", f"0.{q:02d}", T0 + sec * S) for i, (sec, p, q) in enumerate(rows)]
    arrivals = trades + rnd.sample(trades, k=len(trades) // 3)
    rnd.shuffle(arrivals)
    b = BarBuilder(GRACE, KEEP)
    final: dict[int, Bar] = {}
    for n, t in enumerate(arrivals):
        out = b.on_event(t)
        if n % 5 == 0:
            out += b.advance("binance", t.ts_exchange, 0)
        for x in out:
            assert x.revision == (final[x.start].revision + 1 if x.start in final else 0)
            final[x.start] = x
    for x in b.advance("binance", T0 + 10 * MINUTE_NS, 0):
        final[x.start] = x
    expected: dict[int, list[Trade]] = {}
    for t in trades:
        expected.setdefault(t.ts_exchange - t.ts_exchange % MINUTE_NS, []).append(t)
    assert {s: content(x) for s, x in final.items()} == {s: content(bar_of(ts)) for s, ts in expected.items()}


def test_a_stop_publishes_the_open_bars_as_partial() -> None:
    b = BarBuilder(GRACE, KEEP)
    b.restore("binance", "BTC-USDT", "BTCUSDT", [trade(1, "10", "1", T0)], [], now=0)
    b.on_event(trade(2, "11", "1", T0 + MINUTE_NS + 3 * S))
    b.advance("binance", T0 + MINUTE_NS + GRACE, now=1)
    assert [(x.start, x.trades, x.partial) for x in b.flush(now=2)] == [(T0 + MINUTE_NS, 1, PARTIAL_END)]
    assert b.flush(now=3) == []


# -- the scaled-integer arithmetic against plain `decimal` -------------------------------------------

_DECIMALS = st.sampled_from(
    ["100", "100.0", "100.00", "99.99", "0.00000001", "1", "1.5", "12345678.12345678", "0.1", "7", "100.5", "1E+2",
     "2.50E+1", "0.0010"]
)  # fmt: skip


def _decimal_bar(trades: list[Trade]) -> tuple[str, ...]:
    """Volume, notional, vwap, high and low the plain `decimal` way (the builder before scaled integers)."""
    from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact

    exact = Context(prec=400, traps=[Inexact])
    volume, notional, places = Decimal(0), Decimal(0), 0
    high = low = None
    seen: set[str] = set()
    for t in trades:
        if t.trade_id in seen:
            continue
        seen.add(t.trade_id)
        p, q = Decimal(t.price), Decimal(t.qty)
        volume, notional = exact.add(volume, q), exact.add(notional, exact.multiply(p, q))
        places = max(places, -int(p.as_tuple().exponent))
        # ties: the earlier id's spelling (ids here are in time order)
        if high is None or p > high[0]:
            high = (p, t.price)
        if low is None or p < low[0]:
            low = (p, t.price)
    assert high is not None and low is not None
    vwap = Context(prec=400, rounding=ROUND_HALF_EVEN).quantize(
        Context(prec=400).divide(notional, volume), Decimal(1).scaleb(-(places + 4))
    )
    return format(volume, "f"), format(notional, "f"), format(vwap, "f"), high[1], low[1]


@given(st.lists(st.tuples(_DECIMALS, _DECIMALS, st.integers(1, 8)), min_size=1, max_size=12))
def test_scaled_integers_give_the_decimal_results(rows: list[tuple[str, str, int]]) -> None:
    """Mixed spellings and places (``100`` / ``100.00`` / ``1E+2``), repeated ids: the same strings as
    `decimal` arithmetic, trailing zeros included."""
    trades = [trade(tid, p, q, T0 + i) for i, (p, q, tid) in enumerate(sorted(rows, key=lambda r: r[2]))]
    b = bar_of(trades)
    assert (b.volume, b.notional, b.vwap, b.high, b.low) == _decimal_bar(trades)


def _decimal_scaled(text: str) -> tuple[int, int] | str:
    """(n, places) of ``text`` by `decimal`'s own arithmetic (not `scaled`'s digit-tuple reading), or
    the name of the error it raises: the number shifted by its places is the integer n, exactly."""
    try:
        d = Decimal(text)
    except Exception as e:
        return type(e).__name__
    if not d.is_finite():
        return "InvalidOperation"
    places = -int(d.as_tuple().exponent)
    return int(d.scaleb(places)), places


@given(st.text(alphabet="0123456789.-+eE_ \u0661", max_size=10))
def test_scaled_reads_a_string_as_decimal_does(text: str) -> None:
    """The fast path (plain digits with at most one point) and the `Decimal` one agree with `decimal`,
    points at either end and stray characters included."""
    try:
        got: tuple[int, int] | str = scaled(text)
    except Exception as e:
        got = type(e).__name__
    assert got == _decimal_scaled(text)


def test_scaled_keeps_the_places_as_written() -> None:
    for text, want in ((".5", (5, 1)), ("5.", (5, 0)), ("00.100", (100, 3)), ("7", (7, 0)), ("1E+2", (1, -2))):
        assert scaled(text) == want


_IDS = st.integers(0, 40).map(str) | st.sampled_from(["007", "0", "00", "a1", "x", "\u0661", "12"])


@given(st.lists(_IDS, max_size=60))
def test_trade_ids_behave_as_a_set_of_strings(ids: list[str]) -> None:
    """Consecutive runs kept as ranges, holes filled in any order, odd spellings kept apart."""
    got, model = TradeIds(), set()
    for tid in ids:
        assert got.add(tid) == (tid not in model)
        model.add(tid)
    assert all(tid in got for tid in model)
    assert not any(str(n) in got for n in range(41) if str(n) not in model)
    assert ("1" in got) == ("1" in model) and ("01" in got) == ("01" in model)


def test_trade_ids_of_a_run_are_one_range() -> None:
    ids = TradeIds()
    for n in [5, 6, 7, 9, 8, 4, 11]:
        assert ids.add(str(n))
    assert not ids.add("8")
    assert (ids._lo, ids._hi) == ([4, 11], [9, 11])
