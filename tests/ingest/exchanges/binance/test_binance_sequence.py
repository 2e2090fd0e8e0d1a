"""Binance's continuity rule against the sync vectors B1/B2 taken from the real recording
(``../shared/vectors/checksums.json``), plus the edges of each verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.events import BookDelta
from ingest.exchanges.binance.sequence import BinanceRule

VECTORS = Path(__file__).resolve().parents[4].parent / "shared" / "vectors" / "checksums.json"
SYNC_VECTORS: list[dict[str, Any]] = json.loads(VECTORS.read_text())["binance_sync"]
RULE = BinanceRule()


def delta(first: int | None, last: int | None) -> BookDelta:
    return BookDelta("binance", "NKN-USDT", "NKNUSDT", (), (), first, last, 0, 0)


def test_the_vectors_are_the_ones_we_expect() -> None:
    assert [v["id"] for v in SYNC_VECTORS] == ["B1", "B2"]


@pytest.mark.parametrize("vector", SYNC_VECTORS, ids=lambda v: v["id"])
def test_vector_dropped_then_bridging_event_applies(vector: dict[str, Any]) -> None:
    snap = vector["lastUpdateId"]
    for dropped in vector["dropped"]:
        assert dropped["u"] == snap  # the edge case: u == lastUpdateId is already in the snapshot
        assert RULE.first(snap, delta(dropped["U"], dropped["u"])) == "drop"
    first = vector["first_applied"]
    # lastUpdateId itself is not inside [U, u]; lastUpdateId + 1 is.
    assert first["U"] == snap + 1
    assert RULE.first(snap, delta(first["U"], first["u"])) == "apply"
    # Once bridged, the stream continues from the first applied event's u.
    assert RULE.next(first["u"], delta(first["u"] + 1, first["u"] + 3)) == "apply"


@pytest.mark.parametrize(
    ("first", "last", "verdict"),
    [
        (90, 99, "drop"),  # wholly older than the snapshot
        (95, 100, "drop"),  # u == lastUpdateId
        (100, 101, "apply"),  # U <= 101 <= u
        (101, 101, "apply"),
        (50, 150, "apply"),  # a wide event covering the snapshot
        (102, 103, "gap"),  # starts after 101: the snapshot is older than the stream
    ],
)
def test_first_verdicts_around_snapshot_100(first: int, last: int, verdict: str) -> None:
    assert RULE.first(100, delta(first, last)) == verdict


@pytest.mark.parametrize(
    ("first", "last", "verdict"),
    [
        (95, 100, "drop"),  # u == last applied
        (90, 95, "drop"),
        (101, 104, "apply"),  # the normal case: U == last + 1
        (99, 103, "apply"),  # overlapping: absolute quantities make re-applying harmless
        (102, 104, "gap"),  # update 101 is missing
    ],
)
def test_next_verdicts_after_100(first: int, last: int, verdict: str) -> None:
    assert RULE.next(100, delta(first, last)) == verdict


def test_a_delta_without_ids_cannot_be_placed() -> None:
    assert RULE.first(100, delta(None, None)) == "gap"
    assert RULE.next(100, delta(101, None)) == "gap"
