"""Replay recorded exchange sessions through the live code path, without sockets.

Every received frame, in timeline order (`tools.recording.merge`), goes through the exchange's codec
(``get_spec(exchange).new_codec({})``) and one `BookSync` per symbol with the exchange's sequence rule:
the same code the shards run. What a shard's I/O layer does is played from the recording:

- A symbol's sync is created at its first book message and starts out waiting for a snapshot (the
  live runner requests one as it subscribes). Its depth is the exchange's default, unless the codec
  knows the depth the recording subscribed at (a ``book_depth(native)`` method).
- A `NeedSnapshot` action marks the symbol as waiting again.
- A recorded HTTP response belongs to a symbol when the symbol's native name is one of its URL's
  query values or path segments (``/api/v3/depth?symbol=NKNUSDT&limit=1000``). When the timeline
  reaches it, it is decoded (``codec.decode_snapshot``) and handed to that symbol's sync if the sync is
  waiting; otherwise it is kept as the symbol's pending response (a later one replaces it) and
  answers the symbol's next request the moment that request is made.
- Snapshots carried by the stream itself (exchanges with ``snapshot_source = "stream"``) go straight
  to the sync.

Frames that do not decode are counted and skipped. `replay` returns the summary (its shape is in its
docstring); `replay_events` yields what the syncs and the codec publish, in order.

The recording must come from the exchange named: every host in its URLs must belong to that exchange
(its registrable name, e.g. ``binance`` for ``stream.binance.com`` or ``data-stream.binance.vision``,
matches the spec's URLs; loopback and IP addresses identify nobody). Otherwise, and for unreadable or
malformed files, `ingest.errors.InputError` with a one-line message.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from ingest.book.sync import Action, BookSync, NeedSnapshot, sync_for
from ingest.errors import DecodeError, InputError
from ingest.events import BookDelta, BookSnapshot, Event, Trade
from ingest.exchanges import SPECS, get_spec
from ingest.exchanges.base import ExchangeSpec, Resync
from tools.recording import HttpResponse, Opened, Received, Record, Sent, read_records

PROGRESS_EVERY = 10_000  # records between calls of a replay's ``progress``
SUMMARY_ROWS = 15  # symbols shown in `format_summary`


def replay(exchange: str, paths: Sequence[Path], progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Replay the files and summarize, exactly::

        {"exchange": str, "frames": int, "decode_errors": int,
         "symbols": {CANONICAL: {"book_messages": int, "checksums_verified": int,
                                 "checksum_failures": int, "gaps": int, "resyncs": int, "trades": int,
                                 "best_bid": [price, qty] | None, "best_ask": [price, qty] | None,
                                 "bid_levels": int, "ask_levels": int}}}

    ``frames`` counts received frames; ``decode_errors`` frames and snapshot bodies that did not
    decode; ``book_messages`` the book messages (deltas and stream snapshots) received for the symbol;
    ``resyncs`` the resyncs a gap forced (not the initial sync). Symbols are in name order.
    ``progress`` is called with the number of records replayed so far, every `PROGRESS_EVERY`.
    """
    run = _Replay(_spec(exchange))
    records = _timeline(run.spec, paths)
    for _ in run.events(records if progress is None else _counting(records, progress)):
        pass
    return run.summary()


def format_summary(result: Mapping[str, Any], seconds: float) -> str:
    """A `replay` result as a short table for people (one line a symbol, `SUMMARY_ROWS` at most)."""
    symbols: dict[str, Any] = result["symbols"]
    lines = [
        f"# replayed {result['exchange']}: {result['frames']} frames in {seconds:.1f}s, "
        f"{result['decode_errors']} undecodable, {len(symbols)} symbols",
        f"# {'symbol':<14} {'book msgs':>9} {'trades':>7} {'gaps':>5} {'resyncs':>7} {'levels':>9}"
        "  best bid / best ask (qty@price)",
    ]
    for name in list(symbols)[:SUMMARY_ROWS]:
        s = symbols[name]
        bid, ask = (f"{x[1]}@{x[0]}" if x else "-" for x in (s["best_bid"], s["best_ask"]))
        levels = f"{s['bid_levels']}/{s['ask_levels']}"
        lines.append(f"# {name:<14} {s['book_messages']:>9} {s['trades']:>7} {s['gaps']:>5} {s['resyncs']:>7} "
                     f"{levels:>9}  {bid} / {ask}")  # fmt: skip
    if len(symbols) > SUMMARY_ROWS:
        lines.append(f"# ... and {len(symbols) - SUMMARY_ROWS} more (all of them in the JSON on stdout)")
    return "\n".join(lines) + "\n"


def _counting(records: Iterable[Record], progress: Callable[[int], None]) -> Iterator[Record]:
    for n, record in enumerate(records, start=1):
        if n % PROGRESS_EVERY == 0:
            progress(n)
        yield record


def replay_events(exchange: str, paths: Sequence[Path]) -> Iterator[Event]:
    """The events the replay publishes, in order: trades as decoded; book snapshots, applied deltas
    and book statuses as the syncs emit them. The files are read and checked before the first one."""
    run = _Replay(_spec(exchange))
    return run.events(_timeline(run.spec, paths))


@runtime_checkable
class _KnowsBookDepth(Protocol):
    """A codec that learnt from the recorded subscription how deep a symbol's book was subscribed
    (e.g. a channel named ``book-1000``): that symbol's sync truncates to that depth."""

    def book_depth(self, native: str) -> int | None: ...


@dataclass(slots=True)
class _Counts:
    book_messages: int = 0
    trades: int = 0


class _Replay:
    def __init__(self, spec: ExchangeSpec) -> None:
        self.spec = spec
        self.codec = spec.new_codec({})
        self.frames = 0
        self.decode_errors = 0
        self.syncs: dict[str, BookSync] = {}  # by native symbol, upper case
        self.counts: dict[str, _Counts] = {}  # by canonical symbol
        self.waiting: set[str] = set()  # natives (upper case) whose snapshot request is unanswered
        self.pending: dict[str, HttpResponse] = {}  # candidate native (upper case) -> latest response

    def events(self, records: Iterable[Record]) -> Iterator[Event]:
        for record in records:
            if isinstance(record, Opened) and self.spec.replay_codec is not None:
                self.codec = self.spec.replay_codec(record.url)  # the protocol version the URL speaks
            elif isinstance(record, Received):
                yield from self._frame(record)
            elif isinstance(record, HttpResponse):
                yield from self._response(record)

    def _frame(self, record: Received) -> Iterator[Event]:
        self.frames += 1
        try:
            decoded = self.codec.decode(record.text, record.ts)
        except DecodeError:
            self.decode_errors += 1
            return
        for item in decoded:
            if isinstance(item, Trade):
                self._counts(item.symbol).trades += 1
                yield item
            elif isinstance(item, BookDelta | BookSnapshot):
                self._counts(item.symbol).book_messages += 1
                yield from self._book_message(item)
            elif isinstance(item, Resync):  # the stream declared books suspect (Coinbase's sequence_num)
                for key in [n.upper() for n in item.natives] or list(self.syncs):
                    sync = self.syncs.get(key)
                    if sync is not None:
                        yield from self._act(sync.reset(item.reason, record.ts))
            # Replies, reconnect notices and greetings a codec may decode change no book here.

    def _book_message(self, item: BookDelta | BookSnapshot) -> Iterator[Event]:
        key = item.native.upper()
        sync = self.syncs.get(key)
        if sync is None:
            depth = self.codec.book_depth(item.native) if isinstance(self.codec, _KnowsBookDepth) else None
            sync = self.syncs[key] = sync_for(self.spec, item.symbol, item.native, depth or 0)
            self.waiting.add(key)
            yield from self._answer_from_pending(key)
        if isinstance(item, BookSnapshot):
            self.waiting.discard(key)
            yield from self._act(sync.on_snapshot(item))
        else:
            yield from self._act(sync.on_delta(item))

    def _response(self, record: HttpResponse) -> Iterator[Event]:
        keys = _url_keys(record.url)
        for key in keys:
            if key in self.syncs and key in self.waiting:
                yield from self._deliver(key, record)
                return
        for key in keys:
            self.pending[key] = record

    def _answer_from_pending(self, key: str) -> Iterator[Event]:
        record = self.pending.pop(key, None)
        if record is None:
            return
        for other in [k for k, v in self.pending.items() if v is record]:
            del self.pending[other]
        yield from self._deliver(key, record)

    def _deliver(self, key: str, record: HttpResponse) -> Iterator[Event]:
        sync = self.syncs[key]
        try:
            snapshot = self.codec.decode_snapshot(record.body, sync.native, record.ts)
        except DecodeError:
            self.decode_errors += 1  # the request failed; the symbol keeps waiting
            return
        self.waiting.discard(key)
        yield from self._act(sync.on_snapshot(snapshot))

    def _act(self, actions: list[Action]) -> Iterator[Event]:
        needs: list[str] = []
        for action in actions:
            if isinstance(action, NeedSnapshot):
                needs.append(action.native.upper())
            else:
                yield action
        for key in needs:
            self.waiting.add(key)
            yield from self._answer_from_pending(key)

    def _counts(self, symbol: str) -> _Counts:
        counts = self.counts.get(symbol)
        if counts is None:
            counts = self.counts[symbol] = _Counts()
        return counts

    def summary(self) -> dict[str, Any]:
        books = {sync.symbol: sync for sync in self.syncs.values()}
        symbols: dict[str, Any] = {}
        for symbol in sorted(self.counts):
            counts, sync = self.counts[symbol], books.get(symbol)
            stats = sync.stats if sync is not None else None
            best_bid = sync.book.bids.best() if sync is not None else None
            best_ask = sync.book.asks.best() if sync is not None else None
            symbols[symbol] = {
                "book_messages": counts.book_messages,
                # Checksums are counted by syncs of exchanges that send them; none do for Binance.
                "checksums_verified": int(getattr(stats, "checksums_verified", 0)),
                "checksum_failures": int(getattr(stats, "checksum_failures", 0)),
                "gaps": stats.gaps if stats is not None else 0,
                # The replay never calls reset(), so every resync the sync counted was forced by a gap.
                "resyncs": stats.resyncs if stats is not None else 0,
                "trades": counts.trades,
                "best_bid": list(best_bid) if best_bid is not None else None,
                "best_ask": list(best_ask) if best_ask is not None else None,
                "bid_levels": len(sync.book.bids) if sync is not None else 0,
                "ask_levels": len(sync.book.asks) if sync is not None else 0,
            }
        return {
            "exchange": self.spec.name,
            "frames": self.frames,
            "decode_errors": self.decode_errors,
            "symbols": symbols,
        }


# -- inputs ------------------------------------------------------------------------------------------


def _spec(exchange: str) -> ExchangeSpec:
    try:
        return get_spec(exchange)
    except KeyError:
        raise InputError(f"unknown exchange {exchange!r} (known: {', '.join(sorted(SPECS))})") from None


def _timeline(spec: ExchangeSpec, paths: Sequence[Path]) -> Iterator[Record]:
    """Read every file (so a bad one fails before any output), check its hosts, merge by time."""
    if not paths:
        raise InputError("no recording files given")
    names = {name for name in (_org(spec.ws_url), _org(spec.rest_url)) if name}
    files: list[list[Record]] = []
    for path in paths:
        records = list(read_records(Path(path)))
        for record in records:
            if isinstance(record, Opened | Sent | HttpResponse):
                org = _org(record.url)
                if org and org not in names:
                    host = urlsplit(record.url).hostname
                    raise InputError(f"{path}: recorded from {host}, which is not a {spec.name} host")
        files.append(records)
    return heapq.merge(*files, key=lambda record: record.ts)


def _org(url: str) -> str:
    """The registrable name of a URL's host (``binance`` for ``stream.binance.com``); ``""`` for
    loopback, IP addresses and single-label hosts, which say nothing about the exchange."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
        return ""
    except ValueError:
        pass
    labels = host.lower().split(".")
    return labels[-2] if len(labels) >= 2 else ""


def _url_keys(url: str) -> list[str]:
    """Upper-cased query values and path segments: the places a REST URL names its symbol."""
    parts = urlsplit(url)
    keys = [value.upper() for _, value in parse_qsl(parts.query)]
    keys.extend(segment.upper() for segment in parts.path.split("/") if segment)
    return keys
