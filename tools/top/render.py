"""Pure render functions: the ``/status`` document (and one symbol's book and trades) -> rich renderables.

Nothing here reads a clock, a socket or a terminal: `dashboard` is one frame of ``ingest top`` for a
given size, `summary` is what ``ingest status`` prints. The document's shape is the parent's
``/status`` (version 1); keys this module does not know are ignored, so a newer parent still renders.

A frame always fits the size it is given: tables that do not fit are cut and end in ``+N more``, with
the feeds that need attention (disconnected, book not valid) sorted first so they are never the ones cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.table import Table
from rich.text import Text

from ingest.events import Level, Trade
from tools.top import fmt

Status = dict[str, Any]

FEEDS_WIDTH = 43  # the dashboard's left column (its table is 42 wide); the symbol's book and trades get the rest
BOOK_LEVELS = 5
CHART_ROWS = 3
BOOK_STYLE = {
    "valid": "green", "resyncing": "yellow", "resync": "yellow", "gap": "red", "down": "bold red", "loading": "dim",
}  # fmt: skip
SHORT = {"resyncing": "resync"}  # the dashboard's state column is 6 wide


@dataclass(frozen=True)
class SymbolView:
    """What the dashboard shows of the chosen symbol: its book (best first) and recent trades (newest first).

    ``problem`` says why there is nothing to show (no Redis, no stream yet)."""

    exchange: str
    symbol: str
    valid: bool = False
    bids: Sequence[Level] = ()
    asks: Sequence[Level] = ()
    trades: Sequence[Trade] = field(default_factory=list)
    loading: bool = False  # the book is still being read from its stream
    problem: str | None = None


def feed_state(feed: dict[str, Any]) -> str:
    """``down`` for a disconnected feed, else its book state (``-`` for a feed without a book)."""
    if not feed.get("connected"):
        return "down"
    return str(feed.get("book") or "-")


def blamed(status: Status, feed: dict[str, Any]) -> list[str]:
    """The parent's not-ready reasons about this feed (they start ``"{exchange} {symbol}:"``)."""
    who = f"{feed.get('exchange')} {feed.get('symbol')}:"
    return [str(r) for r in status.get("not_ready") or [] if str(r).startswith(who)]


def needs_attention(status: Status, feed: dict[str, Any]) -> bool:
    """Disconnected, a book not valid, or named by the parent as why it is not ready (a silent symbol)."""
    return feed_state(feed) not in ("valid", "-") or bool(blamed(status, feed))


def _table(*columns: tuple[str, int, str]) -> Table:
    """A borderless table, one space between columns; each column (header, width, justify) on one line."""
    t = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, header_style="bold")
    for header, width, justify in columns:
        t.add_column(header, width=width, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    return t


def _state_text(state: str) -> Text:
    return Text(state, style=BOOK_STYLE.get(state, ""))


def header(status: Status, source: str, width: int, problem: str | None = None) -> Text:
    """One line: ready or not (and why), uptime, where the document came from."""
    line = Text()
    if problem:
        line.append("NO ANSWER", style="bold red").append(f" {problem}")
        return _fit(line, width)
    reasons = status.get("not_ready") or []
    if status.get("ready"):
        line.append("READY", style="bold green")
    else:
        line.append("NOT READY", style="bold red")
    if reasons:  # the why first: it is what a narrow screen must not cut
        line.append("  " + "; ".join(str(r) for r in reasons), style="red")
    line.append(f"  up {fmt.age(status.get('uptime_s'))}  {source}")
    return _fit(line, width)


def _fit(text: Text, width: int) -> Text:
    text.truncate(width, overflow="ellipsis")
    return text


def _process_cell(p: dict[str, Any]) -> Text:
    cell = Text(str(p.get("name", "?")), style="bold")
    if not p.get("alive"):
        cell.append(" DEAD", style="bold red")
    else:
        cell.append(f" {p.get('cpu_percent', 0.0):.0f}% {p.get('rss_mb', 0.0):.0f}M")
    restarts = int(p.get("restarts") or 0)
    if restarts:
        cell.append(f" ↻{restarts}", style="yellow")
    return cell


def ordered_processes(status: Status) -> list[dict[str, Any]]:
    """The shards first (the ones a dashboard is for), then the merger, the parent, anything else."""
    order = {"shard": 0, "merger": 1, "parent": 2}
    procs: list[dict[str, Any]] = list(status.get("processes", []))
    return sorted(procs, key=lambda p: order.get(str(p.get("kind")), 3))


def processes(status: Status, width: int, max_lines: int = 2) -> list[Text]:
    """Each process (`ordered_processes`) with CPU and RSS, packed into lines of ``width``; past
    ``max_lines`` the last line ends in ``+N more``."""
    cells = [_process_cell(p) for p in ordered_processes(status)]
    if not cells:
        return [Text("no processes reported", style="dim")]

    def used(line: list[Text]) -> int:
        return sum(len(c.plain) + 2 for c in line)

    lines: list[list[Text]] = [[]]
    for cell in cells:
        if lines[-1] and used(lines[-1]) + len(cell.plain) > width:
            lines.append([])
        lines[-1].append(cell)
    hidden = 0
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        hidden = len(cells) - sum(len(line) for line in lines)
        while lines[-1] and used(lines[-1]) + len(f"+{hidden} more") > width:
            lines[-1].pop()
            hidden += 1
    out = [Text("  ").join(line) for line in lines]
    if hidden:
        out[-1].append(("  " if lines[-1] else "") + f"+{hidden} more", style="dim")
    return [_fit(line, width) for line in out]


def merger(status: Status, width: int) -> list[Text]:
    """Two lines: the merger's throughput and batching; Redis's state, errors, write and end-to-end lag."""
    m: dict[str, Any] = status.get("merger") or {}
    first = Text("merger", style="bold").append(
        f" {fmt.rate(float(m.get('entries_per_s', 0.0)))}/s  written {fmt.count(int(m.get('written', 0)))}"
        f"  batch {float(m.get('batch_mean', 0.0)):.1f}  buffered {fmt.count(int(m.get('buffered', 0)))}"
    )
    second = Text("redis ", style="bold")
    if m.get("redis_up"):
        second.append("up", style="green")
    else:
        second.append("DOWN", style="bold red")
    errors = int(m.get("redis_errors", 0))
    second.append(f"  errors {errors}", style="red" if errors else "")
    second.append(
        f"  write p99 {fmt.ms(m.get('write_p99_ms'))}  lag p50 {fmt.ms(m.get('lag_p50_ms'))}"
        f" p99 {fmt.ms(m.get('lag_p99_ms'))}"
    )
    return [_fit(first, width), _fit(second, width)]


def ordered_feeds(status: Status) -> list[dict[str, Any]]:
    """The feeds, those needing attention first, each group in the document's order."""
    feeds: list[dict[str, Any]] = list(status.get("feeds", []))
    return sorted(feeds, key=lambda f: not needs_attention(status, f))


def feeds_table(status: Status, rows: int) -> Table:
    """At most ``rows`` lines (header included): exchange, symbol, state, msg/s, staleness, gaps."""
    t = _table(("exch", 8, "left"), ("symbol", 9, "left"), ("book", 6, "left"), ("msg/s", 5, "right"),
               ("stale", 5, "right"), ("gaps", 4, "right"))  # fmt: skip
    feeds = ordered_feeds(status)
    fit = feeds if len(feeds) <= rows - 1 else feeds[: max(0, rows - 2)]
    for f in fit:
        state = feed_state(f)
        gaps = int(f.get("gaps", 0)) + int(f.get("trade_gaps", 0))
        t.add_row(
            str(f.get("exchange", "")), str(f.get("symbol", "")), _state_text(SHORT.get(state, state)),
            fmt.rate(float(f.get("msgs_per_s", 0.0))),
            Text(fmt.age(f.get("staleness_s")), style="red" if blamed(status, f) else ""),
            Text(str(gaps), style="red" if gaps else ""),
        )  # fmt: skip
    if len(fit) < len(feeds):
        t.add_row(Text(f"+{len(feeds) - len(fit)} more", style="dim"))
    return t


def _clean(number: str) -> str:
    """A decimal string without trailing zeros (``"0.50000"`` -> ``"0.5"``): the same value, shorter, so
    prices and quantities of exchanges that pad to 8 decimals still fit their columns."""
    if "." in number and "e" not in number.lower():
        number = number.rstrip("0").rstrip(".")
    return number


def book_table(view: SymbolView, levels: int = BOOK_LEVELS) -> Table:
    t = _table(("bid qty", 7, "right"), ("bid", 10, "right"), ("ask", 10, "left"), ("ask qty", 7, "left"))
    for i in range(levels):
        bid = view.bids[i] if i < len(view.bids) else None
        ask = view.asks[i] if i < len(view.asks) else None
        t.add_row(
            _clean(bid[1]) if bid else "", Text(_clean(bid[0]), style="green") if bid else "",
            Text(_clean(ask[0]), style="red") if ask else "", _clean(ask[1]) if ask else "",
        )  # fmt: skip
    return t


def trades_table(trades: Sequence[Trade], rows: int) -> Table:
    """The newest ``rows`` trades: time (UTC, the exchange's), taker side, price, quantity."""
    t = _table(("time", 8, "left"), ("side", 4, "left"), ("price", 10, "right"), ("qty", 10, "right"))
    for tr in list(trades)[:rows]:
        style = "green" if tr.side == "buy" else "red"
        price = Text(_clean(tr.price), style=style)
        t.add_row(fmt.clock(tr.ts_exchange), Text(tr.side, style=style), price, _clean(tr.qty))
    return t


def price_chart(trades: Sequence[Trade], width: int, rows: int = CHART_ROWS) -> list[Text]:
    """Recent trade prices (oldest left) as ``rows`` lines of blocks, then a line with the range shown."""
    shown = list(trades)[:width][::-1]
    prices = [float(t.price) for t in shown]
    lines = [Text(r, style="cyan") for r in fmt.chart(prices, width, rows)]
    if shown:
        lo = _clean(min(shown, key=lambda t: float(t.price)).price)
        hi = _clean(max(shown, key=lambda t: float(t.price)).price)
        lines.append(Text(fmt.clip(f"last {_clean(shown[-1].price)}  {lo}..{hi}", width), style="dim"))
    else:
        lines.append(Text("no trades yet", style="dim"))
    return lines


def symbol_panel(view: SymbolView | None, width: int, height: int) -> RenderableType:
    """The chosen symbol: a title line, the top of book, a price chart of recent trades, the newest trades."""
    if view is None:
        return Text("no feed to show", style="dim")
    title = Text(f"{view.exchange} {view.symbol}", style="bold")
    if view.problem:
        return Group(_fit(title, width), Text(fmt.clip(view.problem, width), style="yellow"))
    book = ("valid" if view.valid else "resyncing") if view.bids or view.asks else "-"  # "-": trades only
    book = "loading" if view.loading else book
    title.append("  book ").append_text(_state_text(book))
    if len(title.plain) + 7 <= width:
        title.append(" " * (width - len(title.plain) - 5) + "n/p q", style="dim")  # the keys, where there is room
    trade_rows = max(0, height - 1 - (BOOK_LEVELS + 1) - (CHART_ROWS + 1) - 1)
    return Group(
        _fit(title, width),
        book_table(view),
        *price_chart(view.trades, width),
        trades_table(view.trades, trade_rows),
    )


def dashboard(
    status: Status, view: SymbolView | None, source: str, width: int = 80, height: int = 24,
    problem: str | None = None,
) -> Layout:  # fmt: skip
    """One frame of ``ingest top`` of exactly ``width`` x ``height``: header, processes, merger and Redis,
    then the feeds (left) beside the chosen symbol's book, price chart and trades (right)."""
    top: list[RenderableType] = [header(status, source, width, problem)]
    top += processes(status, width)
    top += merger(status, width)
    layout = Layout()
    bottom = Layout(name="bottom")
    layout.split_column(Layout(Group(*top), size=len(top)), bottom)
    rows = height - len(top)
    bottom.split_row(
        Layout(feeds_table(status, rows), size=FEEDS_WIDTH),
        Layout(symbol_panel(view, width - FEEDS_WIDTH, rows)),
    )
    return layout


def _yes(flag: object) -> Text:
    return Text("yes", style="green") if flag else Text("no", style="bold red")


def summary(status: Status, source: str, width: int = 80) -> Group:
    """What ``ingest status`` prints: readiness (and every reason), processes, merger and Redis, all feeds."""
    head = Text()
    if status.get("ready"):
        head.append("READY", style="bold green")
    else:
        head.append("NOT READY", style="bold red")
    head.append(f"  up {fmt.age(status.get('uptime_s'))}  {source}")
    parts: list[RenderableType] = [head]
    parts += [Text(f"  not ready: {r}", style="red") for r in status.get("not_ready") or []]
    procs = _table(("process", 10, "left"), ("pid", 7, "right"), ("alive", 5, "left"), ("cpu%", 6, "right"),
                   ("rss MB", 7, "right"), ("restarts", 8, "right"), ("report", 7, "right"))  # fmt: skip
    for p in ordered_processes(status):
        procs.add_row(
            str(p.get("name", "?")), str(p.get("pid") or "-"), _yes(p.get("alive")),
            f"{float(p.get('cpu_percent', 0.0)):.1f}", f"{float(p.get('rss_mb', 0.0)):.1f}",
            str(p.get("restarts", 0)), fmt.age(p.get("report_age_s")),
        )  # fmt: skip
    parts += [Text(""), procs, Text(""), *merger(status, width), Text("")]
    feeds = _table(("exchange", 9, "left"), ("symbol", 12, "left"), ("shard", 5, "right"), ("conn", 4, "left"),
                   ("book", 9, "left"), ("msg/s", 6, "right"), ("stale", 6, "right"), ("gaps", 5, "right"),
                   ("resyncs", 7, "right"))  # fmt: skip
    for f in status.get("feeds", []):
        feeds.add_row(
            str(f.get("exchange", "")), str(f.get("symbol", "")), str(f.get("shard", "")), _yes(f.get("connected")),
            _state_text(str(f.get("book") or "-")), fmt.rate(float(f.get("msgs_per_s", 0.0))),
            fmt.age(f.get("staleness_s")), str(int(f.get("gaps", 0)) + int(f.get("trade_gaps", 0))),
            str(f.get("resyncs", 0)),
        )  # fmt: skip
    parts.append(feeds)
    return Group(*parts)


def closing(status: Status, source: str, width: int = 80) -> Group:
    """What ``ingest top`` leaves on the screen when it ends: readiness, processes, merger, and the feeds
    that need attention, each with why."""
    feeds = status.get("feeds", [])
    bad = [f for f in feeds if needs_attention(status, f)]
    tail = Text(f"{len(feeds)} feeds, {len(feeds) - len(bad)} fine" + (", these not:" if bad else ""))
    why = [r for f in bad for r in (blamed(status, f) or [f"{f.get('exchange')} {f.get('symbol')}: {feed_state(f)}"])]
    lines = [Text(fmt.clip(f"  {r}", width)) for r in why[:8]]
    if len(why) > 8:
        lines.append(Text(f"  +{len(why) - 8} more"))
    return Group(header(status, source, width), *processes(status, width), *merger(status, width), tail, *lines)
