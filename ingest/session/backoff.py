"""Jittered, capped exponential backoff (pure: the caller sleeps)."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff(
    initial: float = 0.25, factor: float = 2.0, cap: float = 30.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Delays for successive retries: full jitter over an exponentially growing, capped ceiling."""
    rand = rng or random.Random()
    ceiling = initial
    while True:
        yield ceiling / 2 + rand.uniform(0, ceiling / 2)
        ceiling = min(ceiling * factor, cap)
