"""Sending a pre-built market (`tools.sim.prebuilt`): the live clock's place when the simulator was given
a `ReplaySpec`.

`play` waits until every symbol of the venue has a subscriber (frames sent before would reach nobody,
and a bench would measure the clients connecting), then sends the frames in order:

- paced (``msgs_per_s`` > 0): every `STEP` it sends the frames due by then (frame ``i`` is due
  ``i / msgs_per_s`` seconds after the start), so the rate holds whatever the batch sizes;
- as fast as the clients read (``msgs_per_s`` == 0): `CHUNK` frames at a time, whenever every
  connection's backlog (queued + in the transport) is below `BACKLOG`; the clients' reading sets
  the pace. Where clients fetch books over REST (the format's ``rest_books``), the first frames go
  at `START_MSGS_PER_S` until every symbol subscribed to a depth stream has had its book served
  (at most `BOOKS_WAIT_S`; ``books_wait_s`` in the status says how long): a client that fetches its
  snapshots while the full stream already floods it buffers every update meanwhile, and the
  snapshots themselves queue behind the flood (100 symbols took ~13 s on 2 shards), so the run
  would measure a start-up instead of the rate a synced cluster takes. Some clients (cryptofeed)
  ask for a symbol's snapshot only once its first update came: hence a slow start, not a pause.

Each frame gets the send time (`tools.sim.prebuilt.stamp`), goes to the connections subscribed to its
streams (the exchange's ``wrap`` makes the connection's text), and each trade goes into the venue's
trade history and, for a watched symbol, the truth log with that time: the truth is what was sent.
When the frames run out the market stands still (``done``), as a frozen one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tools.sim.prebuilt import FrameFormat, PrebuiltMarket, stamp
from tools.sim.venue import Connection, Venue

STEP = 0.002  # seconds between paced sends
CHUNK = 256  # frames per send when unpaced
BACKLOG = 256 << 10  # bytes a connection may hold before an unpaced send waits
START_MSGS_PER_S = 2000.0  # an unpaced playback's pace until the clients have their books
BOOKS_WAIT_S = 10.0  # at most this long

Wrap = Callable[[Connection, str, bytes], bytes]
Targets = dict[int, list[tuple[Connection, str]]]


class Player:
    """Sends one venue's pre-built market; see the module docstring."""

    def __init__(self, venue: Venue, store: PrebuiltMarket, fmt: FrameFormat, wrap: Wrap, msgs_per_s: float) -> None:
        self.venue = venue
        self.store = store
        self.fmt = fmt
        self.wrap = wrap
        self.msgs_per_s = msgs_per_s
        self.started_ns = 0
        self.finished_ns = 0
        self.books_wait_s: float | None = None  # how long the slow start lasted (None: none, or not over)
        names: dict[str, int] = {}
        for i, symbol in enumerate(store.symbols):
            depth, trades = fmt.streams(symbol)
            names.update(dict.fromkeys(depth, 2 * i) | dict.fromkeys(trades, 2 * i + 1))
        self._stream_ids = names
        self._depth_symbols = {name: symbol for symbol in store.symbols for name in fmt.streams(symbol)[0]}

    def status(self) -> dict[str, object]:
        store = self.store
        seconds = ((self.finished_ns or time.time_ns()) - self.started_ns) / 1e9 if self.started_ns else 0.0
        return {
            "frames": len(store.payloads), "sent": store.sent, "done": store.done,
            "msgs_per_s": self.msgs_per_s or "max", "payload_mb": round(store.payload_bytes / 2**20, 1),
            "sent_per_s": round(store.sent / seconds, 1) if seconds > 0 else 0.0, "books_wait_s": self.books_wait_s,
        }  # fmt: skip

    async def play(self) -> None:
        venue = self.venue
        while not all(venue.truth.watching(venue.name, s) for s in self.store.symbols):
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        start = flushed = loop.time()
        self.started_ns = time.time_ns()
        store, total = self.store, len(self.store.payloads)
        slow_start = self.msgs_per_s == 0 and self.fmt.rest_books
        while store.sent < total:
            if slow_start and (self._books_served() or loop.time() - start >= BOOKS_WAIT_S):
                slow_start = False
                self.books_wait_s = round(loop.time() - start, 3)
            if self.msgs_per_s > 0 or slow_start:
                await asyncio.sleep(STEP)
                due = min(total, int((loop.time() - start) * (self.msgs_per_s or START_MSGS_PER_S)) + 1)
            elif any(c.backlog >= BACKLOG for c in venue.connections):
                await asyncio.sleep(0.001)
                continue
            else:
                await asyncio.sleep(0)
                due = min(total, store.sent + CHUNK)
            if due > store.sent:
                self._send(store.sent, due)
                store.sent = due
            if loop.time() - flushed >= 1.0:  # keep the log nearly current, as the live clock does
                venue.truth.flush()
                flushed = loop.time()
        self.finished_ns = time.time_ns()

    def _books_served(self) -> bool:
        """Every symbol some connection subscribed to a depth stream of has had its book served."""
        wanted = {self._depth_symbols.get(name) for c in self.venue.connections for name in c.subs}
        wanted.discard(None)
        return wanted <= self.venue.books_served

    def _targets(self) -> Targets:
        targets: Targets = {}
        for conn in self.venue.connections:
            for name in conn.subs:
                sid = self._stream_ids.get(name)
                if sid is not None:
                    targets.setdefault(sid, []).append((conn, name))
        return targets

    def _send(self, first: int, end: int) -> None:
        """Frames ``first`` up to ``end``, stamped now."""
        venue, store, fmt, wrap = self.venue, self.store, self.fmt, self.wrap
        truth = venue.truth
        now_ns = time.time_ns()
        ms = b":%d" % (now_ns // 1_000_000)
        targets = self._targets()
        payloads, stream_of, symbols = store.payloads, store.stream_of, store.symbols
        for i in range(first, end):
            sid = stream_of[i]
            payload = stamp(payloads[i], ms)
            if sid & 1:
                symbol = symbols[sid >> 1]
                trade = fmt.read_trade(payload)
                venue.trades[symbol].append((trade, now_ns))
                truth.trade(venue.name, symbol, trade.trade_id, trade.price, trade.qty, trade.side, now_ns)
            for conn, name in targets.get(sid, ()):
                conn.send_text(wrap(conn, name, payload))
