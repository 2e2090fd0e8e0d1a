"""Trade completeness for one feed: every trade once, in id order, or a reported gap.

Each trade the arbiter let through goes through `TradeOut.admit` (`ingest.session.frames`, compiled
with the other per-message code; `Trades.admit` is it). Where a symbol's trade ids jump (exchanges
that number trades consecutively), or at its first trade after a spell when no session carried it
(`uncovered`; also a restarted shard, `resume`), the missing trades are fetched from the exchange's
REST history (`TradeHistory`) while that symbol's later trades wait; then they are published in id
order marked ``origin = "backfill"``. What the history cannot give is published as a `TradeGap`
with the id range, never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Protocol

from ingest.clock import now_ns
from ingest.errors import DecodeError, RemoteError
from ingest.events import Event, Trade, TradeGap
from ingest.exchanges.base import ExchangeSpec
from ingest.session.arbiter import Arbiter
from ingest.session.frames import TradeOut

BACKFILL_TIMEOUT_S = 20.0  # the longest a symbol's trades wait for its history to be read


class TradeCounts(Protocol):
    trade_gaps: int  # holes in trade ids (or uncovered spells) seen
    trades_backfilled: int
    trades_unfilled: int  # ids published as a TradeGap


class Trades:
    """One feed's trade continuity and backfills; see the module docstring."""

    def __init__(
        self,
        spec: ExchangeSpec,
        natives: Mapping[str, str],
        rest_url: str,
        arbiter: Arbiter,
        publish: Callable[[Event], None],
        get: Callable[[str], Awaitable[bytes]],
        stats: TradeCounts,
        log: Any,
    ) -> None:
        """``get``: a REST GET with retries (the feed's); ``log``: a bound structlog logger."""
        self.exchange = spec.name
        self.history = spec.trade_history
        self.contiguous = spec.trade_ids_contiguous
        self.natives = natives
        self.rest_url = rest_url
        self.arbiter = arbiter
        self.publish = publish
        self.get = get
        self.stats = stats
        self._log = log
        self._backfills: dict[str, asyncio.Task[None]] = {}
        # The per-trade part (the arbiter's verdict, id order, holding behind a hole), compiled.
        self.out = TradeOut(arbiter, self.contiguous, publish, self._gap)
        self.admit = self.out.admit

    def resume(self, last: Mapping[str, Trade]) -> None:
        """Carry on from trades published before this process started: each symbol's first trade
        is checked against them, and the hole between backfilled."""
        for native, trade in last.items():
            if native in self.natives:
                self.out.last[native] = trade
                self.out.uncovered.add(native)

    def uncovered(self) -> None:
        """No session carries the symbols now: trades may be missed until one does."""
        self.out.uncovered.update(self.natives)

    def _gap(self, last: Trade, trade: Trade) -> None:
        """`TradeOut` found a hole between ``last`` and ``trade``: fill it from the history."""
        self.stats.trade_gaps += 1
        self._backfills[trade.native] = asyncio.create_task(self._backfill(last, trade))

    async def _backfill(self, after: Trade, before: Trade) -> None:
        """Fetch the trades between two (exclusive) from the exchange's history, publish them in
        order, publish what it could not give as a `TradeGap`, then the trades that waited."""
        self._log.info("backfilling trades", symbol=after.symbol, after=after.trade_id, before=before.trade_id)
        got: dict[int, Trade] = {}
        complete = False
        try:
            async with asyncio.timeout(BACKFILL_TIMEOUT_S):
                complete = await self._read_history(after, before, got)
        except (TimeoutError, RemoteError) as e:
            self._log.warning("trade history unavailable", symbol=after.symbol, error=str(e))
        finally:
            self._backfills.pop(after.native, None)
            self._end_backfill(after, before, got, complete)

    async def _read_history(self, after: Trade, before: Trade, got: dict[int, Trade]) -> bool:
        """Read the history between two trades into ``got``; whether it was read to the end."""
        history = self.history
        if history is None:
            return False
        native, lo, hi = after.native, int(after.trade_id), int(before.trade_id)
        url: str | None = history.page_url(self.rest_url, native, after, before)
        for _ in range(history.max_pages):
            if url is None:
                return True
            body = await self.get(url)
            try:
                page = history.decode(body, native, self.natives[native], now_ns())
            except DecodeError as e:
                raise RemoteError(f"undecodable trade history: {e}") from None
            for t in page:
                if t.trade_id.isdigit() and lo < int(t.trade_id) < hi:
                    got[int(t.trade_id)] = dataclasses.replace(t, origin="backfill")
            if self.contiguous and len(got) == hi - lo - 1:
                return True
            url = history.next_url(self.rest_url, native, after, before, page)
        return url is None

    def _end_backfill(self, after: Trade, before: Trade, got: dict[int, Trade], complete: bool) -> None:
        native, lo, hi = after.native, int(after.trade_id), int(before.trade_id)
        held = sorted(self.out.held.pop(native, []), key=lambda t: int(t.trade_id))
        live = {int(t.trade_id) for t in held}
        # Where ids are consecutive, every id the history did not give is a lost trade; where they
        # skip, the range is reported only when the history could not be read to the end.
        if self.contiguous:
            missing = _ranges(lo + 1, hi - 1, got.keys() | live)
        else:
            missing = [] if complete or hi - lo < 2 else [(lo + 1, hi - 1)]
        fresh = sorted(got.keys() - live)
        self.stats.trades_backfilled += len(fresh)
        reason = "not in the trade history" if complete else "trade history unavailable"
        out: list[tuple[int, Trade | TradeGap]] = [(tid, got[tid]) for tid in fresh]
        for first, last in missing:
            self.stats.trades_unfilled += last - first + 1
            self._log.warning("trades lost", symbol=after.symbol, first=first, last=last, reason=reason)
            out.append((first, TradeGap(self.exchange, after.symbol, native, first, last, reason, now_ns())))
        for _, event in sorted(out, key=lambda x: x[0]):  # the stream stays in id order
            if isinstance(event, Trade):
                self.arbiter.trade(event)  # a live copy arriving later is a duplicate
                self.out.last[native] = event
            self.publish(event)
        # Every id below ``before`` is now published or reported: continuity resumes from there.
        self.out.last[native] = dataclasses.replace(self.out.last.get(native, after), trade_id=str(hi - 1))
        for t in held:
            self.admit(t)

    async def close(self) -> None:
        """End running backfills with what they have (they publish it, and the trades that waited)."""
        for task in list(self._backfills.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _ranges(first: int, last: int, have: Collection[int]) -> list[tuple[int, int]]:
    """The runs of ids in ``first..last`` (inclusive) not in ``have``."""
    out: list[tuple[int, int]] = []
    expect = first
    for i in sorted(x for x in have if first <= x <= last):
        if i > expect:
            out.append((expect, i - 1))
        expect = i + 1
    if expect <= last:
        out.append((expect, last))
    return out
