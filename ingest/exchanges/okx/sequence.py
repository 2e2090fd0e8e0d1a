"""OKX's ``books`` continuity rule (protocols.md C, "Sequence rules"), per ``instId``.

A snapshot has ``prevSeqId = -1`` and ``seqId = S``; every later message's ``prevSeqId`` must equal the
``seqId`` of the message before it. With ``first_seq = prevSeqId`` and ``seq = seqId`` of a delta and
``last`` the last applied ``seqId`` (the snapshot's ``S`` for the first delta):

- ``prevSeqId == last`` -> ``apply``. This covers the normal case (``seqId > prevSeqId``; seqIds jump,
  they are not ``+1``), the keep-alive update (``seqId == prevSeqId``, no levels, after about 60 s
  without book changes) and the maintenance reset (``seqId < prevSeqId``: the chain restarts lower
  and later messages follow the normal rule from there).
- ``seqId == last`` with ``prevSeqId < last`` -> ``drop``: the update that brought us to ``last``,
  again.
- anything else -> ``gap``: messages were lost; the sync resubscribes the symbol for a new snapshot
  (OKX has no REST splice). That includes an update wholly *below* ``last`` (``prevSeqId < seqId <
  last``): it would look old, but OKX never replays old updates on a connection, while a chain that
  restarted lower in a reset we missed looks exactly like that. Dropping it would leave the book
  silently stale until the new chain climbed past ``last``; a resubscribe costs two requests.
  Likewise an update whose ``prevSeqId`` is beyond ``last`` (a lost update, whatever its ``seqId``).

The first delta after a snapshot obeys the same rule as every later one, so ``first`` and ``next``
agree. A delta without ids (sessions recorded before the chain existed, which the codec gives
``seq=None``) is applied and left to the checksum. Pure.
"""

from __future__ import annotations

from ingest.events import BookDelta
from ingest.exchanges.base import Verdict


def verdict(last_seq: int, delta: BookDelta) -> Verdict:
    """The verdict for ``delta`` after the message whose ``seqId`` was ``last_seq``."""
    prev, seq = delta.first_seq, delta.seq
    if seq is None or prev is None:
        return "apply"
    if prev == last_seq:
        return "apply"
    if seq == last_seq and prev < last_seq:
        return "drop"
    return "gap"


class OkxRule:
    """`ingest.exchanges.base.SequenceRule` for OKX ``books`` channels."""

    __slots__ = ()

    def first(self, snapshot_seq: int, delta: BookDelta) -> Verdict:
        return verdict(snapshot_seq, delta)

    def next(self, last_seq: int, delta: BookDelta) -> Verdict:
        return verdict(last_seq, delta)

    def missing(self, last_seq: int, delta: BookDelta) -> tuple[int, int] | None:
        """The lost messages' seqIds lie after ``last_seq`` up to this one's ``prevSeqId`` (the
        seqId of the message just before it, itself lost). None where the chain went backwards."""
        prev = delta.first_seq
        if prev is None or prev <= last_seq:
            return None
        return last_seq + 1, prev
