"""Kraken's CRC32 book checksum against the documented vectors K2a (v2) and K1a (v1) from
``../shared/vectors/checksums.json``, each with negative cases: a book one level off, and numbers
written the naive float way (``"0.1"`` for ``"0.10000000"``)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest.book.book import OrderBook
from ingest.book.sync import BookSync
from ingest.events import Level
from ingest.exchanges.kraken.checksum import book_checksum, checksum_text, levels_checksum
from ingest.exchanges.kraken.codec import KrakenCodec
from ingest.exchanges.kraken.sequence import KrakenRule

VECTORS = Path(__file__).resolve().parents[4].parent / "shared" / "vectors" / "checksums.json"
KRAKEN: dict[str, dict[str, Any]] = {v["id"]: v for v in json.loads(VECTORS.read_text())["kraken"]}
TS = 1_700_000_000_000_000_000


def levels(vector: dict[str, Any], side: str) -> list[Level]:
    return [(p, q) for p, q in vector[side]]


def test_the_vectors_are_the_ones_we_expect() -> None:
    assert sorted(KRAKEN) == ["K1a", "K2a"]
    assert (KRAKEN["K2a"]["checksum"], KRAKEN["K1a"]["checksum"]) == (3310070434, 974947235)


@pytest.mark.parametrize("vid", ["K2a", "K1a"])
def test_vector_checksum_over_levels_and_over_a_book(vid: str) -> None:
    vector = KRAKEN[vid]
    bids, asks = levels(vector, "bids"), levels(vector, "asks")
    assert levels_checksum(bids, asks) == vector["checksum"]
    book = OrderBook()
    book.replace(reversed(bids), reversed(asks))  # insertion order does not matter, price order does
    assert book_checksum(book) == vector["checksum"]


def test_k2a_text_follows_the_documented_procedure() -> None:
    vector = KRAKEN["K2a"]
    text = checksum_text(levels(vector, "bids"), levels(vector, "asks"))
    # asks first, low to high: "45285.2" -> "452852", "0.00100000" -> "100000"
    assert text.startswith("452852" + "100000" + "452864" + "154571953")
    assert "4528351000000" in text  # the best bid 45283.5 / 0.10000000, after all ten asks
    assert text.index("4528351000000") > text.index("452995" + "18772827")


@pytest.mark.parametrize("vid", ["K2a", "K1a"])
def test_only_the_top_ten_levels_count(vid: str) -> None:
    vector = KRAKEN[vid]
    bids, asks = levels(vector, "bids"), levels(vector, "asks")
    deeper_bids = [*bids, ("0.00000001", "1.00000000")]
    deeper_asks = [*asks, ("99999999.9", "1.00000000")]
    assert levels_checksum(deeper_bids, deeper_asks) == vector["checksum"]


@pytest.mark.parametrize("vid", ["K2a", "K1a"])
def test_negative_one_level_off(vid: str) -> None:
    vector = KRAKEN[vid]
    bids, asks = levels(vector, "bids"), levels(vector, "asks")
    assert levels_checksum(bids[1:], asks) != vector["checksum"]  # best bid missing
    assert levels_checksum(bids, asks[:-1]) != vector["checksum"]  # tenth ask missing
    changed = [(bids[3][0], "0.10000001"), *bids[:3], *bids[4:]]
    assert levels_checksum(changed, asks) != vector["checksum"]  # one quantity off by one unit
    assert levels_checksum(asks, bids) != vector["checksum"]  # sides swapped


@pytest.mark.parametrize("vid", ["K2a", "K1a"])
def test_negative_naive_float_formatting(vid: str) -> None:
    vector = KRAKEN[vid]
    naive = [[(str(float(p)), str(float(q))) for p, q in levels(vector, side)] for side in ("bids", "asks")]
    assert naive != [levels(vector, "bids"), levels(vector, "asks")]  # the trap is real for both vectors
    assert levels_checksum(*naive) != vector["checksum"]


def _v2_snapshot(vector: dict[str, Any], literal: Any) -> str:
    def side(name: str) -> str:
        return ",".join(f'{{"price":{literal(p)},"qty":{literal(q)}}}' for p, q in vector[name])

    return (
        f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"BTC/USD","bids":[{side("bids")}],'
        f'"asks":[{side("asks")}],"checksum":{vector["checksum"]},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}'
    )


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param(str, id="full-precision-literals"),
        pytest.param(lambda v: repr(float(v)), id="float-literals"),
        pytest.param(lambda v: format(Decimal(v).normalize(), "E"), id="exponent-literals"),
    ],
)
def test_k2a_through_the_v2_codec_and_a_sync(literal: Any) -> None:
    """Whatever spelling the JSON numbers have, the codec writes them at the instrument's precision,
    so the book's strings give the documented checksum."""
    vector = KRAKEN["K2a"]
    codec = KrakenCodec()
    codec.decode(
        '{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":"BTC/USD",'
        '"price_precision":1,"qty_precision":8,"status":"online"}]}}',
        TS,
    )
    [snapshot] = codec.decode(_v2_snapshot(vector, literal), TS)
    sync = BookSync("kraken", "BTC-USD", "BTC/USD", KrakenRule(), checksum=book_checksum, depth=10,
                    stream_snapshots=True)  # fmt: skip
    sync.on_snapshot(snapshot)  # type: ignore[arg-type]
    assert (sync.state, sync.stats.checksums_verified, sync.stats.checksum_failures) == ("live", 1, 0)
    assert sync.book.depth() == (levels(vector, "bids"), levels(vector, "asks"))


def test_float_literals_are_repaired_only_with_the_instrument_precision() -> None:
    """Without the instrument channel the precision is inferred from the snapshot's literals (the
    most decimals seen per field); floats that lost every trailing zero cannot be repaired that way,
    and the checksum says so. With the instrument's precision they can."""
    bids, asks = [("45283.5", "0.10000000"), ("45283.4", "0.50000000")], [("45285.2", "0.20000000")]
    vector = {"bids": bids, "asks": asks, "checksum": levels_checksum(bids, asks)}
    frame = _v2_snapshot(vector, lambda v: repr(float(v)))  # "qty":0.1 ...
    results = []
    for instrument in (False, True):
        codec = KrakenCodec()
        if instrument:
            codec.decode('{"channel":"instrument","type":"update","data":{"pairs":[{"symbol":"BTC/USD",'
                         '"price_precision":1,"qty_precision":8}]}}', TS)  # fmt: skip
        [snapshot] = codec.decode(frame, TS)
        results.append((codec.precision("BTC/USD"), snapshot.bids[0], levels_checksum(snapshot.bids, snapshot.asks)))  # type: ignore[union-attr]
    assert results == [
        ((1, 1), ("45283.5", "0.1"), results[0][2]),
        ((1, 8), ("45283.5", "0.10000000"), vector["checksum"]),
    ]
    assert results[0][2] != vector["checksum"]
