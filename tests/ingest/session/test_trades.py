"""Trade completeness, the pure part: which id ranges a backfill leaves unfilled. The backfill itself
runs against the real simulator in test_connection.py and test_connection_backfill.py."""

from __future__ import annotations

from ingest.session.trades import _ranges


def test_ranges_are_the_runs_of_ids_not_had() -> None:
    assert _ranges(5, 10, set()) == [(5, 10)]
    assert _ranges(5, 10, {5, 6, 7, 8, 9, 10}) == []
    assert _ranges(5, 10, {4, 6, 7, 10, 11}) == [(5, 5), (8, 9)]
    assert _ranges(5, 4, set()) == []  # an empty hole
