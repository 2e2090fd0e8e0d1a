from __future__ import annotations

from tools.sim.faults import schedule

SYMBOLS = {"a": ["A-USD", "B-USD"], "b": ["C-USD"], "c": ["D-USD"]}
KINDS = {"a": ["skip"], "b": ["skip", "corrupt"], "c": []}


def test_schedule_is_deterministic_spaced_and_quiet_at_the_end() -> None:
    faults = schedule(SYMBOLS, KINDS, duration=20.0, every=2.0, seed=3)
    assert faults == schedule(SYMBOLS, KINDS, duration=20.0, every=2.0, seed=3)
    assert [f.at for f in faults] == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0]
    assert [f.exchange for f in faults] == ["a", "b"] * 4  # exchanges take turns; "c" offers no fault
    for f in faults:
        assert f.kind in KINDS[f.exchange] and f.symbol in SYMBOLS[f.exchange] and 1 <= f.count <= 3


def test_no_room_no_faults() -> None:
    assert schedule(SYMBOLS, KINDS, duration=5.0) == []
    assert schedule({}, {}, duration=60.0) == []
