"""KuCoin's level2 calibration rule (protocols.md E', "Calibration"), per symbol.

A level2 update covers the book's sequence numbers ``sequenceStart`` .. ``sequenceEnd`` (the delta's
``first_seq`` .. ``seq``); a REST snapshot is the book as of ``sequence``. With ``last`` the snapshot's
``sequence`` (while bridging) or the last applied ``sequenceEnd``:

- ``sequenceEnd <= last`` -> ``drop``: wholly inside what the book already holds;
- ``sequenceStart <= last + 1`` (and so ``sequenceEnd > last``) -> ``apply``, then ``last =
  sequenceEnd``. An update that straddles ``last`` is applied whole: its changes are absolute sizes
  applied in sequence order, so the ones at or below ``last`` only set again what the book already
  has (a later change of the same price at or below ``last`` is in the same update, after it);
- otherwise (``sequenceStart > last + 1``) -> ``gap``: updates were lost. While bridging, the snapshot
  is older than the buffered stream and another is fetched; once live, that symbol alone resyncs
  from a fresh REST snapshot.

The per-change sequence inside an update is not a continuity signal (protocols.md E'). The first
update after a snapshot obeys the same test as every later one, so ``first`` and ``next`` agree. A
delta without ids cannot be placed and is a ``gap`` (the codec never produces one). Pure.
"""

from __future__ import annotations

from ingest.events import BookDelta
from ingest.exchanges.base import Verdict


def verdict(last_seq: int, delta: BookDelta) -> Verdict:
    """The verdict for ``delta`` when the book holds everything up to sequence ``last_seq``."""
    start, end = delta.first_seq, delta.seq
    if start is None or end is None:
        return "gap"
    if end <= last_seq:
        return "drop"
    if start <= last_seq + 1:
        return "apply"
    return "gap"


class KucoinRule:
    """`ingest.exchanges.base.SequenceRule` for KuCoin ``/market/level2``."""

    __slots__ = ()

    def first(self, snapshot_seq: int, delta: BookDelta) -> Verdict:
        return verdict(snapshot_seq, delta)

    def next(self, last_seq: int, delta: BookDelta) -> Verdict:
        return verdict(last_seq, delta)

    def missing(self, last_seq: int, delta: BookDelta) -> tuple[int, int] | None:
        """Sequences are consecutive: the lost ones lie between ``last_seq`` and ``sequenceStart``."""
        if delta.first_seq is None or delta.first_seq <= last_seq + 1:
            return None
        return last_seq + 1, delta.first_seq - 1
