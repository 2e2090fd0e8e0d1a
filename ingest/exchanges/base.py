"""What an exchange package provides, and the few non-event things a codec can decode.

Generic code (the session runner, replay, the simulator's harness) reads an `ExchangeSpec` and never
names an exchange. Everything here is pure: no asyncio, sockets, zmq or redis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ingest.events import BookDelta, BookSnapshot, Event

Verdict = Literal["drop", "apply", "gap"]
Channel = Literal["trades", "book"]
CHANNELS: tuple[Channel, ...] = ("trades", "book")


@dataclass(frozen=True, slots=True)
class Reconnect:
    """The exchange announced it will close this connection (e.g. a shutdown notice)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to a request we sent (subscribe, ping...). ``error`` is None on success."""

    request_id: str
    error: str | None


Decoded = Event | Reconnect | Reply


class Codec(Protocol):
    """Bytes in, canonical events out. Pure; raises `ingest.errors.DecodeError` for bad frames."""

    def decode(self, frame: bytes | str, ts_recv: int) -> list[Decoded]: ...

    def decode_snapshot(self, body: bytes | str, native: str, ts_recv: int) -> BookSnapshot: ...


class SequenceRule(Protocol):
    """The exchange's book continuity rule, as two pure verdicts."""

    def first(self, snapshot_seq: int, delta: BookDelta) -> Verdict:
        """Verdict for a delta while the book is waiting for the one that bridges the snapshot.
        ``gap`` here means the snapshot is too old for the buffered stream: fetch another."""
        ...

    def next(self, last_seq: int, delta: BookDelta) -> Verdict:
        """Verdict for a delta once the book is bridged; ``last_seq`` is the last applied id."""
        ...


@dataclass(frozen=True)
class ExchangeSpec:
    """Per-exchange facts the generic runner reads."""

    name: str
    ws_url: str
    rest_url: str
    max_streams_per_connection: int
    snapshot_source: Literal["rest", "stream"]
    native_symbol: Callable[[str], str]
    canonical_symbol: Callable[[str], str]
    connect_url: Callable[[str, Sequence[str], Sequence[Channel]], str]
    subscribe_frames: Callable[[Sequence[str], Sequence[Channel]], list[str]]
    snapshot_url: Callable[[str, str], str]
    # A codec, given the native -> canonical names the settings define (it derives any others).
    new_codec: Callable[[Mapping[str, str]], Codec]
    sequence_rule: SequenceRule
    # Client-side WebSocket ping interval, and the silence after which a connection is presumed dead.
    ping_interval: float = 10.0
    liveness_timeout: float = 30.0
