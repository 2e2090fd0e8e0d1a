"""Deterministic fault schedules for ``ingest run --simulate --faults`` and ``--chaos``.

``--faults`` (`schedule`): book-integrity faults, each on one symbol of one exchange: skipped updates
(every exchange) and what an exchange's simulator offers on top (a corrupted checksum, a broken
sequence chain). The adapters must detect each and resync that symbol.

``--chaos`` (`chaos_schedule`): those, plus faults on connections (drop, stall, a malformed frame,
an announced close where the exchange announces them) and on the cluster's own processes (SIGKILL
of a shard or of the merger, SIGKILL of the embedded Redis). None may cost a trade or leave a wrong
book. Pure: the caller fires each fault when its time comes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BOOK_FAULTS = ("skip", "corrupt", "chain")
CONNECTION_FAULTS = ("drop", "stall", "garble", "notice")
PROCESS_FAULTS = ("kill-shard", "kill-merger", "kill-redis")
CLUSTER = "cluster"  # the `exchange` of a process fault
STALL_SECONDS = 3.0


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


def chaos_schedule(
    symbols: Mapping[str, Sequence[str]],
    offered: Mapping[str, Sequence[str]],
    duration: float,
    *,
    shards: int,
    embedded_redis: bool,
    every: float = 3.0,
    seed: int = 7,
    quiet_tail: float = 10.0,
) -> list[Fault]:
    """A fault every ``every`` seconds from 3 s after the start, none in the last ``quiet_tail``.
    Every third fault is a process fault (shard, merger and Redis kills take turns; a shard fault's
    ``count`` is the shard number); the others rotate over the exchanges, drawing one of the faults
    ``offered[exchange]`` (book and connection faults its simulator has) and a symbol."""
    rng = random.Random(seed)
    exchanges = sorted(e for e in symbols if symbols[e] and offered.get(e))
    processes = [k for k in PROCESS_FAULTS if embedded_redis or k != "kill-redis"]
    out: list[Fault] = []
    t, turn, n = 3.0, 0, 0
    while t <= duration - quiet_tail:
        if n % 3 == 2 and processes:
            kind = processes[(n // 3) % len(processes)]
            out.append(Fault(t, kind, CLUSTER, "", rng.randrange(shards) if kind == "kill-shard" else 0))
        elif exchanges:
            exchange = exchanges[turn % len(exchanges)]
            turn += 1
            kind = rng.choice(list(offered[exchange]))
            out.append(Fault(t, kind, exchange, rng.choice(list(symbols[exchange])), rng.randint(1, 3)))
        t += every
        n += 1
    return out
