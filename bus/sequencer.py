"""Per-shard sequence bookkeeping of the merger (pure: no zmq, no redis, no clock).

Each shard numbers its frames 1, 2, 3... per epoch (a new epoch: the shard restarted). A frame is a
bus batch (`bus.wire`): its payload, ``(events, body)``, is carried along untouched. For every
shard the merger keeps ``last``: every seq up to it has been accepted (queued for Redis, in order)
or reported lost. A frame that continues the sequence is accepted; one that jumps opens a hole: the
merger asks the shard for the missing frames and holds what arrives live meanwhile, so each shard's
frames reach Redis in the shard's order, each once. What a repair cannot supply is reported as a
`Lost` range, never skipped silently.

The methods record what must happen in an `Effects` (frames to accept, repairs to ask for, ranges
lost, shards finished); the merger carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.wire import UNBOUNDED

Payload = tuple[int, bytes]  # a batch's (events, body): opaque here


@dataclass(frozen=True)
class Lost:
    shard: int
    epoch: int
    first: int
    last: int
    reason: str

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass
class Effects:
    accept: list[tuple[int, int, int, Payload]] = field(default_factory=list)  # shard, epoch, seq, payload
    ask: list[tuple[int, int, int, int]] = field(default_factory=list)  # shard, epoch, first, last
    lost: list[Lost] = field(default_factory=list)
    finished: list[tuple[int, int]] = field(default_factory=list)  # shard, epoch: everything to its end marker
    holes: int = 0
    missing: int = 0
    duplicates: int = 0
    restarts: list[tuple[int, int, int, bool]] = field(default_factory=list)  # shard, old epoch, last, ended


@dataclass
class Track:
    epoch: int
    last: int
    held: list[tuple[int, Payload]] = field(default_factory=list)  # live frames waiting behind a repair
    asking: tuple[int, int] | None = None  # the range requested from the shard
    end_seq: int | None = None
    finished: bool = False


class Sequencer:
    def __init__(self) -> None:
        self.tracks: dict[int, Track] = {}

    def resume(self, shard: int, epoch: int, seq: int, fx: Effects) -> None:
        """Start from a checkpoint: everything up to ``seq`` is in Redis; ask for all after it."""
        t = self.tracks[shard] = Track(epoch, seq, asking=(seq + 1, UNBOUNDED))
        fx.ask.append((shard, t.epoch, seq + 1, UNBOUNDED))

    def frame(self, shard: int, epoch: int, seq: int, payload: Payload, fx: Effects) -> None:
        t = self._track(shard, epoch, fx)
        if seq <= t.last or (t.held and seq <= t.held[-1][0]):
            fx.duplicates += 1
        elif t.asking is not None:
            t.held.append((seq, payload))
        elif seq == t.last + 1:
            t.last = seq
            fx.accept.append((shard, epoch, seq, payload))
        else:
            self._hole(shard, t, seq - 1, fx)
            t.held.append((seq, payload))

    def control(self, shard: int, epoch: int, kind: str, seq: int, fx: Effects) -> None:
        """An end marker or a tick; both carry the last seq the shard published."""
        t = self._track(shard, epoch, fx)
        if kind == "end":
            t.end_seq = seq
        if t.asking is None and not t.held and seq > t.last:
            self._hole(shard, t, seq, fx)
        self._settle(shard, t, fx)

    def repaired(
        self,
        shard: int,
        epoch: int,
        first: int,
        covered_to: int,
        last_published: int,
        frames: list[tuple[int, Payload]],
        fx: Effects,
    ) -> None:
        """The shard's answer: ``frames`` (ascending) of ``first..covered_to``; the rest of that
        range is gone for good."""
        t = self.tracks.get(shard)
        if t is None or t.epoch != epoch or t.asking is None or first != t.last + 1:
            return  # a stale answer (the request was given up or superseded)
        for seq, payload in frames:
            if seq <= t.last or seq > covered_to:
                continue
            if seq > t.last + 1:
                fx.lost.append(Lost(shard, epoch, t.last + 1, seq - 1, "not in the shard's replay buffer"))
            t.last = seq
            fx.accept.append((shard, epoch, seq, payload))
        if covered_to > t.last:
            fx.lost.append(Lost(shard, epoch, t.last + 1, covered_to, "not in the shard's replay buffer"))
            t.last = covered_to
        wanted = t.asking[1]
        if t.last < min(wanted, last_published):
            t.asking = (t.last + 1, wanted)
            fx.ask.append((shard, epoch, t.last + 1, wanted))
            return
        t.asking = None
        self._release(shard, t, fx, ask=True)

    def other_epoch(self, shard: int, epoch: int, fx: Effects) -> None:
        """The shard answered that it runs another epoch: what we asked of ``epoch`` is gone."""
        t = self.tracks.get(shard)
        if t is not None and t.epoch == epoch and t.asking is not None:
            self.give_up(shard, "the shard restarted", fx)

    def give_up(self, shard: int, reason: str, fx: Effects, ask: bool = True) -> None:
        """Stop waiting for a repair: the asked range (up to the first held frame) is lost; the held
        frames are released (further holes among them are asked for, or with ``ask=False`` lost)."""
        t = self.tracks.get(shard)
        if t is None:
            return
        if t.asking is not None:
            upper = t.held[0][0] - 1 if t.held else t.asking[1]
            if upper != UNBOUNDED and upper > t.last:
                fx.lost.append(Lost(shard, t.epoch, t.last + 1, upper, reason))
                t.last = upper
            t.asking = None
        self._release(shard, t, fx, ask=ask, reason=reason)
        if not ask and t.end_seq is not None and t.end_seq > t.last:
            fx.lost.append(Lost(shard, t.epoch, t.last + 1, t.end_seq, reason))
            t.last = t.end_seq
            self._settle(shard, t, fx)

    def waiting(self) -> list[int]:
        """Shards with a repair outstanding."""
        return [s for s, t in self.tracks.items() if t.asking is not None]

    def finished(self, shard: int) -> bool:
        t = self.tracks.get(shard)
        return t is not None and t.finished

    # -- internals ------------------------------------------------------------------------------

    def _track(self, shard: int, epoch: int, fx: Effects) -> Track:
        t = self.tracks.get(shard)
        if t is not None and t.epoch == epoch:
            return t
        if t is not None:  # the shard restarted: whatever its old epoch still owed us is gone
            self.give_up(shard, "the shard restarted", fx, ask=False)
            fx.restarts.append((shard, t.epoch, t.last, t.end_seq is not None))
        t = self.tracks[shard] = Track(epoch, 0)
        return t

    def _hole(self, shard: int, t: Track, upto: int, fx: Effects) -> None:
        fx.holes += 1
        fx.missing += upto - t.last
        t.asking = (t.last + 1, upto)
        fx.ask.append((shard, t.epoch, t.last + 1, upto))

    def _release(self, shard: int, t: Track, fx: Effects, ask: bool, reason: str = "") -> None:
        held, t.held = t.held, []
        for i, (seq, payload) in enumerate(held):
            if seq <= t.last:
                fx.duplicates += 1
                continue
            if seq > t.last + 1:
                if ask:
                    self._hole(shard, t, seq - 1, fx)
                    t.held = held[i:]
                    return
                fx.lost.append(Lost(shard, t.epoch, t.last + 1, seq - 1, reason))
            t.last = seq
            fx.accept.append((shard, t.epoch, seq, payload))
        self._settle(shard, t, fx)

    def _settle(self, shard: int, t: Track, fx: Effects) -> None:
        if t.end_seq is None or t.finished or t.asking is not None or t.held:
            return
        if t.last < t.end_seq:
            self._hole(shard, t, t.end_seq, fx)
        else:
            t.finished = True
            fx.finished.append((shard, t.epoch))
