"""Bybit's ``orderbook`` continuity rule (protocols.md E, "Rules"), per topic.

``u`` is the topic's update id: "Is a sequence" (docs v5 websocket/public/orderbook), "normally
consecutive" (the zh docs). A delta is one update (``first_seq == seq == u``), so with ``last`` the
``u`` of the last message applied (the snapshot's for the first delta):

- ``u == last + 1`` -> ``apply``;
- anything else -> ``gap``: the sync resubscribes the symbol (Bybit answers with a snapshot; there is
  no REST splice for these topics). That includes ``u <= last``: a connection never repeats an
  update, and a chain that restarted at 1 while we missed its ``u = 1`` message looks exactly like
  that; dropping it would keep the book silently stale.

Restarts need no rule: the codec turns the ``u = 1`` message into a snapshot, which resets the book,
and the chain carries on from 1. The arbiter splicing redundant sessions reads the same verdicts: a
copy of an update already published is a ``gap`` for a session that does not own the book, which it
drops. Pure.
"""

from __future__ import annotations

from ingest.events import BookDelta
from ingest.exchanges.base import Verdict


def verdict(last_seq: int, delta: BookDelta) -> Verdict:
    """The verdict for ``delta`` after the message whose ``u`` was ``last_seq``."""
    return "apply" if delta.seq is not None and delta.seq == last_seq + 1 else "gap"


class BybitRule:
    """`ingest.exchanges.base.SequenceRule` for Bybit ``orderbook.{depth}.{symbol}`` topics."""

    __slots__ = ()

    def first(self, snapshot_seq: int, delta: BookDelta) -> Verdict:
        return verdict(snapshot_seq, delta)

    def next(self, last_seq: int, delta: BookDelta) -> Verdict:
        return verdict(last_seq, delta)

    def missing(self, last_seq: int, delta: BookDelta) -> tuple[int, int] | None:
        """The lost updates are those between ``last_seq`` and this one's ``u``; None when the chain
        went backwards (a restart we missed the start of)."""
        if delta.seq is None or delta.seq <= last_seq + 1:
            return None
        return last_seq + 1, delta.seq - 1
