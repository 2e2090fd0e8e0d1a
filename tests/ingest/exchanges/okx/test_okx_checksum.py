"""OKX's book checksum against the docs' vectors O1/O2 (``../shared/vectors/checksums.json``), with
negative cases: a book one level off, and a number spelled differently from the exchange."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from ingest.book.book import OrderBook
from ingest.events import Level
from ingest.exchanges.okx.checksum import book_checksum, checksum_levels
from ingest.exchanges.okx.spec import SPEC

VECTORS = Path(__file__).resolve().parents[4].parent / "shared" / "vectors" / "checksums.json"
OKX_VECTORS: list[dict[str, Any]] = json.loads(VECTORS.read_text())["okx"]


def levels(raw: list[list[str]]) -> list[Level]:
    return [(p, q) for p, q in raw]


def book_of(bids: list[Level], asks: list[Level]) -> OrderBook:
    book = OrderBook()
    book.replace(bids, asks)
    return book


def test_the_vectors_are_the_ones_we_expect() -> None:
    assert [v["id"] for v in OKX_VECTORS] == ["O1", "O2"]


@pytest.mark.parametrize("vector", OKX_VECTORS, ids=lambda v: v["id"])
def test_vector(vector: dict[str, Any]) -> None:
    bids, asks = levels(vector["bids"]), levels(vector["asks"])
    assert checksum_levels(bids, asks) == vector["checksum"]
    assert book_checksum(book_of(bids, asks)) == vector["checksum"]
    assert SPEC.checksum is book_checksum


@pytest.mark.parametrize("vector", OKX_VECTORS, ids=lambda v: v["id"])
def test_a_book_one_level_off_fails(vector: dict[str, Any]) -> None:
    bids, asks = levels(vector["bids"]), levels(vector["asks"])
    assert checksum_levels(bids, asks[:-1]) != vector["checksum"]  # a level missing
    assert checksum_levels([*bids, ("3300", "1")], asks) != vector["checksum"]  # a level too many
    assert checksum_levels(asks, bids) != vector["checksum"]  # sides swapped


def test_strings_are_used_exactly_as_received() -> None:
    """``"0.50"`` and ``"0.5"`` are the same number and different checksums; the book keeps the
    exchange's spelling, so its checksum is the exchange's."""
    exact = checksum_levels([("0.50", "1.0")], [("0.51", "2")])
    assert exact != checksum_levels([("0.5", "1.0")], [("0.51", "2")])
    assert exact != checksum_levels([("0.50", "1")], [("0.51", "2")])
    assert book_checksum(book_of([("0.50", "1.0")], [("0.51", "2")])) == exact


def test_the_signed_value_of_o1() -> None:
    """The CRC of O1's string is above 2**31 unsigned; OKX reports it signed (negative)."""
    assert zlib.crc32(OKX_VECTORS[0]["string"].encode()) - (1 << 32) == OKX_VECTORS[0]["checksum"] < 0


def test_only_the_top_25_levels_count_and_the_longer_side_continues() -> None:
    bids = [(f"{100 - i}", "1") for i in range(30)]
    asks = [(f"{101 + i}", "2") for i in range(27)]
    assert checksum_levels(bids, asks) == checksum_levels(bids[:25], asks[:25])
    assert checksum_levels(bids, asks) != checksum_levels(bids[:24], asks[:25])
    # Past the shorter side, the longer side's levels follow one after another.
    expected = checksum_levels([("3366.1", "7")], [("3366.8", "9"), ("3368", "8")])
    crc = zlib.crc32(b"3366.1:7:3366.8:9:3368:8")
    assert expected == (crc - (1 << 32) if crc >= 1 << 31 else crc)


def test_an_empty_book() -> None:
    assert checksum_levels([], []) == 0  # crc32 of the empty string
