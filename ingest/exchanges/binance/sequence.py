"""Binance's diff-depth continuity rule (protocols.md A, "Building a local book").

With ``U``/``u`` the first/final update ids of a depth event (``first_seq``/``seq`` of the delta):

- while waiting for the event that bridges a snapshot with ``lastUpdateId`` = ``snapshot_seq``:
  drop if ``u <= snapshot_seq``; apply if ``U <= snapshot_seq + 1 <= u``; otherwise ``gap`` (the
  snapshot is older than the stream: fetch another). The check is on ``lastUpdateId + 1``, not on
  ``lastUpdateId`` being inside ``[U, u]`` as the docs say: real data has ``U = lastUpdateId + 1``.
- once bridged, with ``last_seq`` the last applied ``u``: drop if ``u <= last_seq``; ``gap`` if
  ``U > last_seq + 1``; otherwise apply.

A delta without update ids cannot be placed in the sequence and is a ``gap`` (the codec never
produces one). Pure.
"""

from __future__ import annotations

from ingest.events import BookDelta
from ingest.exchanges.base import Verdict


class BinanceRule:
    """`ingest.exchanges.base.SequenceRule` for Binance Spot diff-depth streams."""

    __slots__ = ()

    def first(self, snapshot_seq: int, delta: BookDelta) -> Verdict:
        first_id, last_id = delta.first_seq, delta.seq
        if first_id is None or last_id is None:
            return "gap"
        if last_id <= snapshot_seq:
            return "drop"
        if first_id <= snapshot_seq + 1:  # and snapshot_seq + 1 <= last_id, by the test above
            return "apply"
        return "gap"

    def next(self, last_seq: int, delta: BookDelta) -> Verdict:
        first_id, last_id = delta.first_seq, delta.seq
        if first_id is None or last_id is None:
            return "gap"
        if last_id <= last_seq:
            return "drop"
        if first_id > last_seq + 1:
            return "gap"
        return "apply"

    def missing(self, last_seq: int, delta: BookDelta) -> tuple[int, int] | None:
        """Update ids are consecutive: the lost ones are those between ``last_seq`` and ``U``."""
        if delta.first_seq is None or delta.first_seq <= last_seq + 1:
            return None
        return last_seq + 1, delta.first_seq - 1
