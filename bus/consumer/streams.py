"""Reading the Redis streams: plain reads (`StreamReader`) and consumer groups (`Group`).

Keys are ``{prefix}:{channel}:{exchange}:{symbol}`` (`stream_key`); entries decode to the
canonical events (`Entry.event`). Positions are stream ids: ``"0"`` reads from the start, ``"$"``
from the latest (resolved to the stream's last id when the reader is made, so nothing written
between two reads is skipped), or any id to read after it.

`Group` is at-least-once processing: an entry read is pending until `Group.ack`; a consumer that
starts again under the same name first gets its own pending entries back (`Group.read` returns
them before any new one), and any consumer can take over the entries a dead one left pending
(`Group.claim`, by idle time). Process, then ack, and no entry is processed zero times.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from bus import wire
from ingest.events import Event

Rows = list[tuple[bytes, dict[bytes, bytes] | None]]
StreamRows = list[tuple[bytes, Rows]]


def stream_key(channel: str, exchange: str, symbol: str, prefix: str = "md") -> str:
    """``stream_key("trade", "binance", "BTC-USDT")`` -> ``"md:trade:binance:BTC-USDT"``."""
    return f"{prefix}:{channel}:{exchange}:{symbol}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: its stream key, its id and the event it holds."""

    stream: str
    id: str
    event: Event


def decode_entry(stream: str | bytes, entry_id: str | bytes, fields: dict[bytes, bytes]) -> Entry:
    """An `Entry` from what redis-py returns (raises `ingest.errors.DecodeError` on a bad entry)."""
    s = stream.decode() if isinstance(stream, bytes) else stream
    i = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return Entry(s, i, wire.decode_fields({k.decode(): v.decode() for k, v in fields.items()}))


def _last_id(client: redis.Redis, key: str) -> str:
    rows = cast(Rows, client.xrevrange(key, count=1))
    return rows[0][0].decode() if rows else "0-0"


def _entries(reply: Any) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Entries from an XREAD/XREADGROUP reply, and the (stream, id) of trimmed ones (no fields)."""
    out: list[Entry] = []
    gone: list[tuple[str, str]] = []
    for stream, rows in cast(StreamRows, reply or []):
        key = stream.decode()
        for entry_id, fields in rows:
            if not fields:
                gone.append((key, entry_id.decode()))
                continue
            out.append(decode_entry(key, entry_id, fields))
    return out, gone


class StreamReader:
    """Reads streams in order without a group; `read` returns the next entries of all of them."""

    def __init__(self, client: redis.Redis, streams: Sequence[str], start: str = "$") -> None:
        self.client = client
        self.positions: dict[str, str] = {
            s: (_last_id(client, s) if start == "$" else start) for s in streams
        }

    def read(self, count: int = 1000, block: float | None = 1.0) -> list[Entry]:
        """Up to ``count`` entries per stream after the positions, waiting up to ``block`` seconds for
        one (None: do not wait)."""
        kwargs: dict[str, Any] = {"count": count}
        if block is not None:
            kwargs["block"] = max(1, int(block * 1000))
        entries, _ = _entries(self.client.xread(self.positions, **kwargs))  # type: ignore[arg-type]
        for e in entries:
            self.positions[e.stream] = e.id
        return entries

    def __iter__(self) -> Iterator[Entry]:
        """Every entry from the positions on, for ever (blocking)."""
        while True:
            yield from self.read()


class Group:
    """A consumer ``consumer`` of the group ``group`` over ``streams``; see the module docstring.

    The group is created on every stream that lacks it (``start``: where a new group begins,
    ``"$"`` the latest, ``"0"`` the beginning, or an id), with the streams created if missing."""

    def __init__(self, client: redis.Redis, group: str, consumer: str, streams: Sequence[str], start: str = "$"
                 ) -> None:  # fmt: skip
        self.client = client
        self.group = group
        self.consumer = consumer
        self.streams = list(streams)
        self.trimmed = 0  # pending entries that MAXLEN removed before anyone processed them (acked, counted)
        self._backlog: dict[str, str] = {s: "0" for s in self.streams}  # own pending entries still to re-read
        self.create(start)

    def create(self, start: str = "$") -> None:
        """Create the group where it does not exist yet (an existing group keeps its position)."""
        for s in self.streams:
            try:
                self.client.xgroup_create(s, self.group, id=start, mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def read(self, count: int = 100, block: float | None = 1.0) -> list[Entry]:
        """The next entries for this consumer: first those delivered to it before and never acked (a
        restart of this consumer), then new ones, waiting up to ``block`` seconds for them."""
        if self._backlog:
            reply = self.client.xreadgroup(self.group, self.consumer, self._backlog, count=count)  # type: ignore[arg-type]
            got = {s.decode(): rows for s, rows in cast(StreamRows, reply or [])}
            for key in list(self._backlog):
                if got.get(key):
                    self._backlog[key] = got[key][-1][0].decode()
                else:
                    del self._backlog[key]  # nothing of its own pending left there
            entries, gone = _entries(reply)
            self._drop(gone)
            if entries or gone:
                return entries
        kwargs: dict[str, Any] = {"count": count}
        if block is not None:
            kwargs["block"] = max(1, int(block * 1000))
        reply = self.client.xreadgroup(self.group, self.consumer, {s: ">" for s in self.streams}, **kwargs)
        entries, gone = _entries(reply)
        self._drop(gone)
        return entries

    def ack(self, *entries: Entry) -> int:
        """Mark entries processed; returns how many were pending."""
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        return sum(int(self.client.xack(s, self.group, *ids)) for s, ids in by_stream.items())

    def claim(self, min_idle: float, count: int = 100) -> list[Entry]:
        """Take over entries pending for more than ``min_idle`` seconds with any consumer (one that
        died): they are delivered to this consumer now, to process and ack."""
        out: list[Entry] = []
        for s in self.streams:
            start = "0-0"
            while len(out) < count:
                reply: list[Any] = self.client.xautoclaim(
                    s, self.group, self.consumer, int(min_idle * 1000), start_id=start, count=count - len(out)
                )
                nxt, rows = reply[0], reply[1]
                entries, gone = _entries([(s.encode(), [r for r in rows if r is not None])])
                self._drop(gone)
                out.extend(entries)
                start = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
                if start == "0-0":
                    break
        return out

    def pending(self) -> dict[str, int]:
        """Entries read and not yet acknowledged, per stream (any consumer of the group)."""
        out: dict[str, int] = {}
        for s in self.streams:
            info: dict[str, Any] = self.client.xpending(s, self.group)
            out[s] = int(info["pending"])
        return out

    def _drop(self, gone: list[tuple[str, str]]) -> None:
        for s, entry_id in gone:
            self.trimmed += 1
            self.client.xack(s, self.group, entry_id)
