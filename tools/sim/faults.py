"""A deterministic schedule of book-integrity faults for ``ingest run --simulate --faults``.

Each fault hits one symbol of one exchange: skipped updates (every exchange), and the faults an
exchange's simulator offers on top (a corrupted checksum, a broken sequence chain). None of them
may cost a trade or leave a wrong book: the adapters must detect each and resync that symbol. Faults
that cut connections (and so lose trades until backfill exists) are not in this schedule.
Pure: the caller fires each fault when its time comes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BOOK_FAULTS = ("skip", "corrupt", "chain")


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds after the start
    kind: str
    exchange: str
    symbol: str
    count: int


def schedule(
    symbols: Mapping[str, Sequence[str]],
    kinds: Mapping[str, Sequence[str]],
    duration: float,
    every: float = 2.0,
    seed: int = 7,
    quiet_tail: float = 4.0,
) -> list[Fault]:
    """Faults from 2 s after the start, one every ``every`` seconds, none in the last ``quiet_tail``
    seconds (time to recover before the run ends). Exchanges take turns; symbols and kinds are
    drawn from ``seed``."""
    rng = random.Random(seed)
    exchanges = sorted(e for e in symbols if symbols[e] and kinds.get(e))
    out: list[Fault] = []
    t = 2.0
    turn = 0
    while exchanges and t <= duration - quiet_tail:
        exchange = exchanges[turn % len(exchanges)]
        out.append(
            Fault(
                t, rng.choice(list(kinds[exchange])), exchange, rng.choice(list(symbols[exchange])), rng.randint(1, 3)
            )
        )
        t += every
        turn += 1
    return out
