"""The dashboard and the summary rendered from a status document to an 80x24 screen: exact cells."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, RenderableType

from ingest.events import Trade
from tools.top.render import SymbolView, closing, dashboard, feeds_table, merger, processes, summary

SOURCE = "http://127.0.0.1:9464/status"
SYMBOLS = ["BTC-USDT", "ETH-USDT", "BNB-USDT", "SOL-USDT", "XRP-USDT", "ADA-USDT", "DOGE-USDT", "TRX-USDT",
           "LINK-USDT", "DOT-USDT", "LTC-USDT", "BCH-USDT", "AVAX-USDT", "ATOM-USDT", "ETC-USDT", "XLM-USDT",
           "NEAR-USDT", "FIL-USDT", "ETH-BTC", "BNB-BTC"]  # fmt: skip


def _process(name: str, kind: str, **kw: Any) -> dict[str, Any]:
    p = {"name": name, "kind": kind, "pid": 100, "alive": True, "cpu_percent": 12.3, "rss_mb": 85.4,
         "restarts": 0, "report_age_s": 0.4}  # fmt: skip
    return {**p, **kw}


def _feed(symbol: str, shard: int, **kw: Any) -> dict[str, Any]:
    f = {"exchange": "binance", "symbol": symbol, "shard": shard, "connection": "binance-0", "connected": True,
         "book": "valid", "messages": 4000, "bytes": 400_000, "msgs_per_s": 40.0, "staleness_s": 0.05, "gaps": 0,
         "resyncs": 0, "checksum_failures": 0, "reconnects": 0, "trade_gaps": 0}  # fmt: skip
    return {**f, **kw}


def _status(**kw: Any) -> dict[str, Any]:
    s = {
        "version": 1, "ts": 1_700_000_000.0, "uptime_s": 185.2, "ready": True, "not_ready": [],
        "processes": [_process("parent", "parent", cpu_percent=1.0, rss_mb=50.2, report_age_s=None),
                      _process("merger", "merger", cpu_percent=4.9, rss_mb=60.0),
                      _process("shard-0", "shard"), _process("shard-1", "shard", cpu_percent=9.6, restarts=1)],
        "merger": {"received": 123_456, "written": 123_450, "entries_per_s": 1234.5, "batches": 100,
                   "batch_mean": 12.3, "buffered": 6, "redis_up": True, "redis_errors": 0, "write_p99_ms": 1.23,
                   "lag_p50_ms": 3.1, "lag_p99_ms": 12.0},
        "feeds": [_feed(s, i % 2) for i, s in enumerate(SYMBOLS)],
    }  # fmt: skip
    return {**s, **kw}


def _trades(n: int) -> list[Trade]:
    """Newest first: prices rising by 1 from 100.00, one second apart."""
    return [
        Trade("binance", "BTC-USDT", "BTCUSDT", str(i), f"{100 + i}.00", "0.01500000", "buy" if i % 2 else "sell",
              1_700_000_000_000_000_000 + i * 1_000_000_000, 0)
        for i in range(n - 1, -1, -1)
    ]  # fmt: skip


VIEW = SymbolView(
    "binance", "BTC-USDT", True,
    bids=[("43251.20", "1.50000"), ("43251.10", "0.25")], asks=[("43251.30", "2.0"), ("43252.00", "0.00100")],
    trades=_trades(40),
)  # fmt: skip


def screen(renderable: RenderableType, width: int = 80, height: int = 24) -> list[str]:
    console = Console(file=io.StringIO(), width=width, height=height, record=True, color_system=None)
    console.print(renderable)
    return [line.rstrip() for line in console.export_text().rstrip("\n").split("\n")]


def test_the_dashboard_fits_80x24_and_shows_every_part() -> None:
    lines = screen(dashboard(_status(), VIEW, SOURCE))
    assert len(lines) == 24 and max(len(line) for line in lines) <= 80
    assert lines[0] == f"READY  up 3m05s  {SOURCE}"
    assert lines[1] == "shard-0 12% 85M  shard-1 10% 85M ↻1  merger 5% 60M  parent 1% 50M"
    assert lines[2] == "merger 1234/s  written 123.5k  batch 12.3  buffered 6"
    assert lines[3] == "redis up  errors 0  write p99 1.2ms  lag p50 3.1ms p99 12.0ms"
    assert lines[4] == "exch     symbol    book   msg/s stale gaps binance BTC-USDT  book valid    n/p q"
    assert lines[5].startswith("binance  BTC-USDT  valid     40  0.1s    0 bid qty        bid ask        ask qty")
    assert lines[6][43:].rstrip() == "    1.5    43251.2 43251.3    2"
    assert lines[7][43:].rstrip() == "   0.25    43251.1 43252      0.001"
    assert lines[14][43:].rstrip() == "last 139  103..139"  # the chart's 37 columns: the newest 37 trades
    assert lines[15][43:].rstrip() == "time     side      price        qty"
    assert lines[16][43:].rstrip() == "22:13:59 buy         139      0.015"
    assert lines[23][43:].rstrip() == "22:13:52 sell        132      0.015"
    assert lines[23].startswith("+2 more ")  # 20 feeds, 18 rows left under the header
    shown = [line[9:18].strip() for line in lines[5:23]]
    assert shown == SYMBOLS[:18]


def test_the_chart_rises_with_the_prices() -> None:
    lines = screen(dashboard(_status(), VIEW, SOURCE))
    chart = [line[43:80] for line in lines[11:14]]
    assert chart[0].endswith("█") and chart[2].startswith("▁")  # the newest is highest, the oldest lowest


def test_feeds_needing_attention_come_first_and_are_never_cut() -> None:
    feeds = [_feed(s, 0) for s in SYMBOLS]
    feeds[17] = _feed("FIL-USDT", 1, book="resyncing", gaps=2, trade_gaps=1)
    feeds[19] = _feed("BNB-BTC", 0, connected=False, staleness_s=12.5)
    lines = screen(feeds_table(_status(feeds=feeds), rows=5), width=42, height=5)
    assert lines == [
        "exch     symbol    book   msg/s stale gaps",
        "binance  FIL-USDT  resync    40  0.1s    3",
        "binance  BNB-BTC   down      40   12s    0",
        "binance  BTC-USDT  valid     40  0.1s    0",
        "+17 more",
    ]


def test_a_feed_the_parent_names_comes_first_and_the_closing_summary_says_why() -> None:
    feeds = [_feed(s, 0) for s in SYMBOLS[:12]]
    feeds[9] = _feed("DOT-USDT", 1, staleness_s=3.2, msgs_per_s=0.0)
    feeds[11] = _feed("BCH-USDT", 0, book="gap", gaps=1)
    status = _status(ready=False, not_ready=["binance DOT-USDT: no message for 3.2 s", "redis: down"], feeds=feeds)
    assert screen(feeds_table(status, rows=3), width=42, height=3) == [
        "exch     symbol    book   msg/s stale gaps",
        "binance  DOT-USDT  valid    0.0  3.2s    0",
        "+11 more",
    ]
    assert screen(closing(status, SOURCE), height=9)[4:] == [
        "12 feeds, 10 fine, these not:",
        "  binance DOT-USDT: no message for 3.2 s",
        "  binance BCH-USDT: gap",
    ]


def test_not_ready_says_why_in_the_header() -> None:
    status = _status(ready=False, not_ready=["binance FIL-USDT: book resyncing", "binance BNB-BTC: disconnected"])
    lines = screen(dashboard(status, VIEW, SOURCE))
    assert lines[0] == (
        "NOT READY  binance FIL-USDT: book resyncing; binance BNB-BTC: disconnected  up …"
    )


def test_no_answer_replaces_the_header() -> None:
    lines = screen(dashboard(_status(), VIEW, SOURCE, problem="from 127.0.0.1:9464 for 4.0s (refused)"))
    assert lines[0] == "NO ANSWER from 127.0.0.1:9464 for 4.0s (refused)"


def test_many_processes_end_in_more() -> None:
    procs = [_process(f"shard-{i}", "shard", restarts=0) for i in range(12)]
    procs[3] = _process("shard-3", "shard", alive=False, restarts=2)
    lines = [t.plain for t in processes(_status(processes=procs), 80)]
    assert lines == [
        "shard-0 12% 85M  shard-1 12% 85M  shard-2 12% 85M  shard-3 DEAD ↻2",
        "shard-4 12% 85M  shard-5 12% 85M  shard-6 12% 85M  shard-7 12% 85M  +4 more",
    ]


def test_merger_lines_show_redis_down_and_errors() -> None:
    m = {**_status()["merger"], "redis_up": False, "redis_errors": 3, "write_p99_ms": None}
    assert [t.plain for t in merger(_status(merger=m), 80)][1] == (
        "redis DOWN  errors 3  write p99 -  lag p50 3.1ms p99 12.0ms"
    )


def test_a_symbol_without_data_says_why() -> None:
    view = SymbolView("binance", "BTC-USDT", problem="no book stream md:book:binance:BTC-USDT yet")
    lines = screen(dashboard(_status(), view, SOURCE))
    assert lines[4].endswith(" binance BTC-USDT")
    assert lines[5].endswith(" no book stream md:book:binance:BTC-U…")


def test_a_symbol_with_trades_and_no_book() -> None:
    lines = screen(dashboard(_status(), SymbolView("binance", "BTC-USDT", trades=_trades(3)), SOURCE))
    assert lines[4][43:] == "binance BTC-USDT  book -        n/p q"
    assert lines[14][43:].rstrip() == "last 102  100..102"


def test_a_book_still_loading_shows_the_trades() -> None:
    lines = screen(dashboard(_status(), SymbolView("binance", "BTC-USDT", trades=_trades(3), loading=True), SOURCE))
    assert lines[4][43:] == "binance BTC-USDT  book loading  n/p q"
    assert lines[6][43:].strip() == ""
    assert lines[16][43:].rstrip() == "22:13:22 sell        102      0.015"


def test_the_summary_lists_every_process_and_feed() -> None:
    status = _status(ready=False, not_ready=["binance BNB-BTC: disconnected"])
    status["feeds"][19] = _feed("BNB-BTC", 1, connected=False, book=None, staleness_s=None, resyncs=4)
    lines = screen(summary(status, SOURCE), height=100)
    assert lines[:3] == [f"NOT READY  up 3m05s  {SOURCE}", "  not ready: binance BNB-BTC: disconnected", ""]
    assert lines[3:8] == [
        "process        pid alive   cpu%  rss MB restarts  report",
        "shard-0        100 yes     12.3    85.4        0    0.4s",
        "shard-1        100 yes      9.6    85.4        1    0.4s",
        "merger         100 yes      4.9    60.0        0    0.4s",
        "parent         100 yes      1.0    50.2        0       -",
    ]
    assert lines[12] == "exchange  symbol       shard conn book       msg/s  stale  gaps resyncs"
    assert lines[13] == "binance   BTC-USDT         0 yes  valid         40   0.1s     0       0"
    assert lines[32] == "binance   BNB-BTC          1 no   -             40      -     0       4"
    assert len(lines) == 33
