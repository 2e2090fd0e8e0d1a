"""Kraken's book continuity rule: there is none to apply.

Kraken's book messages carry no update ids, so nothing can be dropped as old or recognised as a gap:
every delta is applied. Integrity rests on the CRC32 checksum each message carries (snapshots and
updates in v2, updates in v1), which `ingest.book.sync.BookSync` verifies; a mismatch resyncs the
symbol by resubscribing. The sync never asks this rule about deltas without ids, so these verdicts
are for completeness. Pure.
"""

from __future__ import annotations

from ingest.events import BookDelta
from ingest.exchanges.base import Verdict


class KrakenRule:
    """`ingest.exchanges.base.SequenceRule` for Kraken: always ``apply``."""

    __slots__ = ()

    def first(self, snapshot_seq: int, delta: BookDelta) -> Verdict:
        return "apply"

    def next(self, last_seq: int, delta: BookDelta) -> Verdict:
        return "apply"

    def missing(self, last_seq: int, delta: BookDelta) -> tuple[int, int] | None:
        return None  # no update ids: the checksum finds losses, not their range
