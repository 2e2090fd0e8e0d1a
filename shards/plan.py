"""The shard plan: which shard carries which (exchange, symbol). Pure and deterministic.

Subscriptions are weighted (a book costs more than a trade stream), sorted by exchange then symbol,
and given out greedily to the least-loaded shard (ties: the lowest shard number), exchange by
exchange, so every shard carries a similar share of every exchange. The same settings and shard
count always give the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.settings import FeedSettings

# Relative cost of one symbol's channel, from the measured costs (a book update is parsed and
# applied to a sorted book; a trade is parsed and forwarded).
CHANNEL_WEIGHT = {"book": 3, "trades": 1}


@dataclass(frozen=True, slots=True)
class Assignment:
    exchange: str
    symbol: str
    channels: tuple[str, ...]

    @property
    def weight(self) -> int:
        return sum(CHANNEL_WEIGHT[c] for c in self.channels)


@dataclass(frozen=True, slots=True)
class Plan:
    shards: tuple[tuple[Assignment, ...], ...]

    def load(self, shard: int) -> int:
        return sum(a.weight for a in self.shards[shard])

    def shard_of(self, exchange: str, symbol: str) -> int:
        for i, assignments in enumerate(self.shards):
            if any(a.exchange == exchange and a.symbol == symbol for a in assignments):
                return i
        raise KeyError((exchange, symbol))

    def describe(self) -> str:
        lines = []
        for i, assignments in enumerate(self.shards):
            lines.append(f"shard {i}: {len(assignments)} subscriptions, load {self.load(i)}")
            for a in assignments:
                lines.append(f"  {a.exchange:<10} {a.symbol:<14} {','.join(a.channels)}")
        return "\n".join(lines)


def make_plan(feeds: Sequence[FeedSettings], shard_count: int) -> Plan:
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    buckets: list[list[Assignment]] = [[] for _ in range(shard_count)]
    loads = [0] * shard_count
    for exchange in sorted({f.exchange for f in feeds}):
        items = sorted(
            (Assignment(f.exchange, s, tuple(f.channels)) for f in feeds if f.exchange == exchange for s in f.symbols),
            key=lambda a: (-a.weight, a.symbol),
        )
        exchange_loads = [0] * shard_count
        for a in items:
            target = min(range(shard_count), key=lambda i: (exchange_loads[i], loads[i], i))
            buckets[target].append(a)
            exchange_loads[target] += a.weight
            loads[target] += a.weight
    return Plan(tuple(tuple(sorted(b, key=lambda a: (a.exchange, a.symbol))) for b in buckets))
