"""Pure formatting for the dashboard and the summary: short ages, rates, sizes, and a block-character chart.

Prices reach the chart as the exchange's decimal strings; they become floats here only to be scaled
to a few rows of blocks on a screen (the exact strings are what the book and trade columns show).
"""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"  # 0/8 .. 8/8 of one character cell


def age(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h03m``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def rate(per_s: float) -> str:
    """Events per second, at most 6 characters: ``0.5``, ``123``, ``12.3k``, ``1.2M``."""
    if per_s < 10:
        return f"{per_s:.1f}"
    if per_s < 10_000:
        return f"{per_s:.0f}"
    if per_s < 1_000_000:
        return f"{per_s / 1000:.1f}k"
    return f"{per_s / 1_000_000:.1f}M"


def count(n: int) -> str:
    """A count, at most 6 characters: ``999``, ``12345``, ``123.4k``, ``12.3M``."""
    if n < 100_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def ms(value: float | None) -> str:
    """Milliseconds: ``0.42ms``, ``3.1ms``, ``120ms``; ``-`` for None (nothing measured yet)."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.2f}ms"
    if value < 100:
        return f"{value:.1f}ms"
    return f"{value:.0f}ms"


def clock(ts_ns: int) -> str:
    """``HH:MM:SS`` (UTC) of a timestamp in integer nanoseconds."""
    s = ts_ns // 1_000_000_000 % 86_400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the cut marked with ``…``."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def chart(values: Sequence[float], width: int, height: int) -> list[str]:
    """The last ``width`` values as columns of block characters, ``height`` rows, top row first.

    The lowest value is one eighth of a cell high, the highest fills all ``height`` rows; a flat
    series is drawn at half height. Fewer values than ``width`` are right-aligned (newest on the right)."""
    vals = list(values)[-width:] if width > 0 else []
    if not vals or height < 1:
        return [" " * max(width, 0)] * max(height, 0)
    lo, hi = min(vals), max(vals)
    steps = height * 8
    levels = [steps // 2 if hi == lo else 1 + round((v - lo) / (hi - lo) * (steps - 1)) for v in vals]
    pad = width - len(levels)
    rows = []
    for row in range(height - 1, -1, -1):  # top row first
        base = row * 8
        rows.append(" " * pad + "".join(BLOCKS[min(8, max(0, lv - base))] for lv in levels))
    return rows
