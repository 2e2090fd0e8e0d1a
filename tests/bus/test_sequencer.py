"""The merger's per-shard sequence rules (pure)."""

from __future__ import annotations

from bus.sequencer import Effects, Lost, Sequencer
from bus.wire import UNBOUNDED


def _frame(seq: int) -> tuple[int, tuple[int, bytes]]:
    return seq, (1, str(seq).encode())


def _feed(s: Sequencer, shard: int, epoch: int, *seqs: int) -> Effects:
    fx = Effects()
    for q in seqs:
        s.frame(shard, epoch, q, (1, str(q).encode()), fx)
    return fx


def _accepted(fx: Effects) -> list[int]:
    return [a[2] for a in fx.accept]


def test_in_order_frames_are_accepted_and_a_hole_is_asked_for_while_later_frames_wait() -> None:
    s = Sequencer()
    fx = _feed(s, 0, 7, 1, 2, 5, 6)
    assert _accepted(fx) == [1, 2]
    assert fx.ask == [(0, 7, 3, 4)] and (fx.holes, fx.missing) == (1, 2)
    fx = Effects()
    s.repaired(0, 7, 3, 4, 6, [_frame(3), _frame(4)], fx)
    assert _accepted(fx) == [3, 4, 5, 6] and not fx.lost and not fx.ask


def test_what_the_shard_no_longer_has_is_lost_with_its_range() -> None:
    s = Sequencer()
    _feed(s, 0, 7, 1, 10)
    fx = Effects()
    s.repaired(0, 7, 2, 9, 10, [_frame(6), _frame(8)], fx)
    assert _accepted(fx) == [6, 8, 10]
    assert fx.lost == [Lost(0, 7, 2, 5, "not in the shard's replay buffer"),
                       Lost(0, 7, 7, 7, "not in the shard's replay buffer"),
                       Lost(0, 7, 9, 9, "not in the shard's replay buffer")]  # fmt: skip


def test_a_partial_answer_is_followed_by_the_next_request() -> None:
    s = Sequencer()
    _feed(s, 0, 7, 1, 10)
    fx = Effects()
    s.repaired(0, 7, 2, 5, 10, [_frame(q) for q in range(2, 6)], fx)
    assert _accepted(fx) == [2, 3, 4, 5] and fx.ask == [(0, 7, 6, 9)]
    fx = Effects()
    s.repaired(0, 7, 2, 5, 10, [_frame(2)], fx)  # a stale answer to the first request is ignored
    assert fx == Effects()


def test_resume_from_a_checkpoint_skips_what_is_written_and_asks_for_the_rest() -> None:
    s = Sequencer()
    fx = Effects()
    s.resume(0, 7, 100, fx)
    assert fx.ask == [(0, 7, 101, UNBOUNDED)]
    fx = _feed(s, 0, 7, 99, 100, 104, 105)  # live frames: two already written, two waiting
    assert fx.duplicates == 2 and not fx.accept
    s.repaired(0, 7, 101, 104, 104, [_frame(q) for q in range(101, 105)], fx)
    assert _accepted(fx) == [101, 102, 103, 104, 105] and fx.duplicates == 3


def test_a_new_epoch_gives_up_the_old_one_and_asks_the_new_one_from_its_start() -> None:
    s = Sequencer()
    _feed(s, 0, 7, 1, 2, 5)
    fx = _feed(s, 0, 8, 3)
    assert _accepted(fx) == [5]  # the old epoch's waiting frame is written, its hole reported lost
    assert fx.lost == [Lost(0, 7, 3, 4, "the shard restarted")]
    assert fx.restarts == [(0, 7, 5, False)]
    assert fx.ask == [(0, 8, 1, 2)]


def test_end_marker_and_tick_reveal_a_lost_tail_and_the_shard_finishes_once_complete() -> None:
    s = Sequencer()
    _feed(s, 0, 7, 1, 2)
    fx = Effects()
    s.control(0, 7, "tick", 2, fx)
    assert not fx.ask
    s.control(0, 7, "end", 4, fx)
    assert fx.ask == [(0, 7, 3, 4)] and not fx.finished and not s.finished(0)
    s.repaired(0, 7, 3, 4, 4, [_frame(3), _frame(4)], fx)
    assert fx.finished == [(0, 7)] and s.finished(0)


def test_giving_up_releases_waiting_frames_and_reports_the_range() -> None:
    s = Sequencer()
    _feed(s, 0, 7, 1, 4, 5, 8)
    fx = Effects()
    s.give_up(0, "no answer", fx, ask=False)
    assert _accepted(fx) == [4, 5, 8]
    assert fx.lost == [Lost(0, 7, 2, 3, "no answer"), Lost(0, 7, 6, 7, "no answer")]
