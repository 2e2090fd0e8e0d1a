"""OrderBook against a plain dict model (hypothesis), and the canonical "0" delete."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ingest.book.book import OrderBook, canonical_levels

# Prices as exchange strings, sometimes the same value spelled differently ("1.5" / "1.50"),
# which must land on the same level.
prices = st.builds(
    lambda ticks, pad: f"{Decimal(ticks) / 100:f}" + ("0" * pad if ticks % 100 else ""),
    st.integers(min_value=1, max_value=400),
    st.integers(min_value=0, max_value=2),
)
quantities = st.one_of(
    st.sampled_from(["0", "0.0", "0.00000000"]),  # deletes, however spelled
    st.builds(lambda n: f"{Decimal(n) / 1000:f}", st.integers(min_value=1, max_value=10**7)),
)
operations = st.lists(st.tuples(st.booleans(), prices, quantities), max_size=200)

Model = dict[Decimal, tuple[str, str]]


def apply_model(model: Model, price: str, qty: str) -> None:
    if Decimal(qty) == 0:
        model.pop(Decimal(price), None)
    else:
        model[Decimal(price)] = (price, qty)


def ordered(model: Model, descending: bool) -> list[tuple[str, str]]:
    return [model[k] for k in sorted(model, reverse=descending)]


@given(operations)
def test_book_matches_a_dict_model(ops: list[tuple[bool, str, str]]) -> None:
    book = OrderBook()
    bids: Model = {}
    asks: Model = {}
    for is_bid, price, qty in ops:
        if is_bid:
            book.apply([(price, qty)], [])
            apply_model(bids, price, qty)
        else:
            book.apply([], [(price, qty)])
            apply_model(asks, price, qty)
        assert book.bids.best() == (bids[max(bids)] if bids else None)
        assert book.asks.best() == (asks[min(asks)] if asks else None)
    assert book.depth() == (ordered(bids, True), ordered(asks, False))
    assert (len(book.bids), len(book.asks)) == (len(bids), len(asks))
    assert book.depth(3) == (ordered(bids, True)[:3], ordered(asks, False)[:3])


@given(operations, st.integers(min_value=0, max_value=10))
def test_truncate_keeps_the_best(ops: list[tuple[bool, str, str]], depth: int) -> None:
    book = OrderBook()
    model: Model = {}
    for _, price, qty in ops:
        book.bids.set(price, qty)
        apply_model(model, price, qty)
    book.bids.truncate(depth)
    assert book.bids.top() == ordered(model, True)[:depth]


@given(operations, operations)
def test_replace_forgets_the_old_book(
    old: list[tuple[bool, str, str]], new: list[tuple[bool, str, str]]
) -> None:
    book = OrderBook()
    book.apply([(p, q) for _, p, q in old], [(p, q) for _, p, q in old])
    model: Model = {}
    for _, price, qty in new:
        apply_model(model, price, qty)
    book.replace([(p, q) for _, p, q in new], [])
    assert book.bids.top() == ordered(model, True)
    assert book.asks.top() == []


def test_canonical_levels_spell_a_delete_as_zero() -> None:
    levels = canonical_levels([["0.35340000", "0.00000000"], ["0.35290000", "10968.00000000"], ("1", "0")])
    assert levels == (("0.35340000", "0"), ("0.35290000", "10968.00000000"), ("1", "0"))
    book = OrderBook()
    book.replace([], [("0.35340000", "5"), ("0.35290000", "1")])
    book.apply([], levels)
    assert book.asks.top() == [("0.35290000", "10968.00000000")]
    book.apply([], [("0.5", "0")])  # deleting a level that is not there is normal
    assert len(book.asks) == 1


@given(st.lists(st.tuples(st.booleans(), prices, quantities, st.booleans()), max_size=200))
def test_reads_at_any_point_see_the_same_book(ops: list[tuple[bool, str, str, bool]]) -> None:
    # The order of a side is made at its first read and kept from then on: a book read now and then
    # (or never until the end) must hold what one read after every change holds.
    book = OrderBook()
    bids: Model = {}
    asks: Model = {}
    for is_bid, price, qty, read in ops:
        book.apply([(price, qty)] if is_bid else [], [] if is_bid else [(price, qty)])
        apply_model(bids if is_bid else asks, price, qty)
        if read:
            assert book.depth(2) == (ordered(bids, True)[:2], ordered(asks, False)[:2])
    assert book.depth() == (ordered(bids, True), ordered(asks, False))
    kept = ordered(bids, True)[:1]
    assert book.bids.truncate(1) == ordered(bids, True)[1:][::-1]  # worst first
    book.apply([("9", "1")], [])  # above every generated price: the new best
    assert book.bids.top() == [("9", "1"), *kept]
