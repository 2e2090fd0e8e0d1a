"""The dashboard's pure formatting: ages, rates, counts, milliseconds, clipping and the block chart."""

from __future__ import annotations

from tools.top import fmt


def test_age_rate_count_ms() -> None:
    assert [fmt.age(v) for v in (None, 0.44, 12.7, 185.0, 7380.0)] == ["-", "0.4s", "12s", "3m05s", "2h03m"]
    assert [fmt.rate(v) for v in (0.5, 123.4, 12_345.0, 1_234_567.0)] == ["0.5", "123", "12.3k", "1.2M"]
    assert [fmt.count(v) for v in (999, 99_999, 123_456, 12_345_678)] == ["999", "99999", "123.5k", "12.3M"]
    assert [fmt.ms(v) for v in (None, 0.421, 3.14, 120.4)] == ["-", "0.42ms", "3.1ms", "120ms"]


def test_clip_marks_the_cut() -> None:
    assert fmt.clip("BTC-USDT", 8) == "BTC-USDT"
    assert fmt.clip("BTC-USDT", 5) == "BTC-…"


def test_chart_one_row_is_a_sparkline() -> None:
    assert fmt.chart([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 8, 1) == ["▁▂▃▄▅▆▇█"]


def test_chart_rows_stack_top_first_and_right_align() -> None:
    # 2 rows = 16 eighths: the low value is 1/8 of the bottom cell, the high one fills both rows.
    assert fmt.chart([10.0, 20.0], 4, 2) == ["   █", "  ▁█"]


def test_chart_flat_and_empty() -> None:
    assert fmt.chart([5.0, 5.0], 2, 2) == ["  ", "██"]
    assert fmt.chart([], 3, 2) == ["   ", "   "]


def test_clock_is_utc_from_nanoseconds() -> None:
    assert fmt.clock(1_700_000_000_123_456_789) == "22:13:20"
