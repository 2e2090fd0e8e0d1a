"""The bus and stream wire format (pure: no zmq, no redis).

A shard sends two kinds of data message, three ZeroMQ frames each.

A batch, for the merger: all the events of one turn of the shard's event loop (at most
`BATCH_MAX_EVENTS` events or about `BATCH_MAX_BYTES` bytes; past that a second batch starts)::

    topic   BATCH_TOPIC (b"\x00bat": starts with \x00 like CONTROL_TOPIC, so no event prefix matches it)
    header  struct "!HIQI": shard id, shard epoch, per-shard sequence number (from 1 per epoch), events in it
    body    "<key suffix>",<event body>,"<key suffix>",<event body>,...   (one pair per event, in order)

The sequence numbers count batches: holes, repairs, the checkpoint and the end markers are per batch.
A batch body is exactly what `bus.streams` puts between the brackets of its script argument, so the
merger joins batch bodies with commas and never touches an event. The key suffix is the stream
key without its prefix, ``"{channel}:{exchange}:{symbol}"`` (`key_suffix`): the script prepends the
prefix, so the wire does not depend on ``redis.key_prefix``. The event count is in the header (the
merger needs it for its counters and bounds without reading the body).

An event, for live subscribers (only while one is subscribed; `bus.publisher`)::

    topic   b"{channel}.{exchange}.{symbol}"      (ZeroMQ prefix filtering works on it)
    header  struct "!HIQ": shard id, shard epoch, the seq of the batch that carries the event
    body    JSON array of alternating field names and string values

The event body is exactly the field list of the Redis Streams entry the merger writes, so the merger
never re-encodes it (a Lua script decodes it inside Redis). Every value is a string: integers in
decimal, ``None`` as ``""``, level lists and symbol lists as JSON text. The first field is
``type`` (``trade``, ``snapshot``, ``delta``, ``status``, ``conn``, ``bar``). A subscriber to every
topic (``b""``) receives the batches and control messages too: every topic starting with ``\x00``
(`is_internal`) is not an event.

A control message has the topic ``CONTROL_TOPIC``; its body says what: ``["end", "<last seq>"]``
when a shard stops after draining, ``["tick", "<last seq>"]`` every heartbeat (so the merger sees
frames lost at the tail of an idle shard). A control message carries the last sequence number in
its header too and takes no sequence number of its own.

The repair side channel (merger DEALER -> shard ROUTER) has one request frame, ``REPAIR_REQUEST``
(kind, request id, epoch, first seq, last seq), and a reply of one ``REPAIR_REPLY`` frame (status,
request id, the shard's epoch, ``covered_to``, the shard's last published seq) followed by the
batches found, three ZeroMQ frames each exactly as on the bus (topic, header, body). Every seq in
``first..covered_to`` that is not among them is gone for good (it fell out of the shard's replay
buffer, or was never sent).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import orjson

from ingest.errors import DecodeError
from ingest.events import EVENT_TYPES, BookDelta, Event, Trade

HEADER = struct.Struct("!HIQ")
BATCH_HEADER = struct.Struct("!HIQI")
CONTROL_TOPIC = b"\x00ctl"
BATCH_TOPIC = b"\x00bat"
INTERNAL = b"\x00"  # the first byte of every topic that is not an event's (the merger subscribes to it alone)
BATCH_MAX_EVENTS = 1000
BATCH_MAX_BYTES = 1 << 20  # a batch is closed once its body reaches this size

REPAIR_REQUEST = struct.Struct("!BQIQQ")
REPAIR_REPLY = struct.Struct("!BQIQQ")
ASK_FRAMES = 1  # request: send the frames first..last (as many as fit in one reply)
ACK_END = 2  # request: the merger has everything up to the end marker; the shard may exit
REPLY_OK = 0
REPLY_OTHER_EPOCH = 1  # the shard runs another epoch now: the asked epoch's frames are gone
UNBOUNDED = 2**64 - 1  # "everything after first", e.g. when a restarted merger resumes

_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in EVENT_TYPES.values()}
_LIST_FIELDS = frozenset({"bids", "asks", "symbols"})
_INT_FIELDS = frozenset({
    "seq", "first_seq", "gap_from", "gap_to", "ts_exchange", "ts_recv", "checksum",
    "start", "trades", "backfilled", "missing", "partial", "revision",  # a bar's (ingest.events.Bar)
})  # fmt: skip


_TOPICS: dict[tuple[str, str, str], bytes] = {}
_TOPICS_MAX = 100_000  # a bound for a process that sees endless symbols; a shard sees its own few


def topic(event: Event) -> bytes:
    key = (event.channel, event.exchange, event.symbol)
    found = _TOPICS.get(key)
    if found is None:
        if len(_TOPICS) >= _TOPICS_MAX:
            _TOPICS.clear()
        found = _TOPICS[key] = f"{event.channel}.{event.exchange}.{event.symbol}".encode()
    return found


def is_internal(topic_bytes: bytes) -> bool:
    """A batch or a control message, not an event."""
    return topic_bytes[:1] == INTERNAL


_SUFFIXES: dict[bytes, bytes] = {}


def key_suffix(topic_bytes: bytes) -> bytes:
    """The JSON string of an event topic's stream key without its prefix: ``"{channel}:{exchange}:{symbol}"``."""
    found = _SUFFIXES.get(topic_bytes)
    if found is None:
        if len(_SUFFIXES) >= _TOPICS_MAX:
            _SUFFIXES.clear()
        found = _SUFFIXES[topic_bytes] = orjson.dumps(topic_bytes.decode().replace(".", ":", 2))
    return found


def batch_body(events: list[tuple[bytes, bytes]]) -> bytes:
    """The body of a batch of ``(topic, event body)`` pairs (the publisher joins its own; this is the plain way)."""
    return b",".join(x for t, body in events for x in (key_suffix(t), body))


def decode_batch(body: bytes) -> list[tuple[str, Event]]:
    """The ``(key suffix, event)`` pairs of a batch body, in order (for tests and tools; the merger never does this)."""
    try:
        flat = orjson.loads(b"[" + body + b"]")
    except orjson.JSONDecodeError:
        raise DecodeError("batch body is not JSON", body) from None
    if not isinstance(flat, list) or len(flat) % 2:
        raise DecodeError("batch body is not suffix, field list pairs", body)
    out: list[tuple[str, Event]] = []
    for suffix, fields_ in zip(flat[::2], flat[1::2], strict=True):
        if not isinstance(suffix, str) or not isinstance(fields_, list) or len(fields_) % 2:
            raise DecodeError("batch body is not suffix, field list pairs", body)
        out.append((suffix, decode_fields(dict(zip(fields_[::2], fields_[1::2], strict=True)))))
    return out


def batch_header(shard: int, epoch: int, seq: int, events: int) -> bytes:
    return BATCH_HEADER.pack(shard, epoch, seq, events)


def parse_batch_header(raw: bytes) -> tuple[int, int, int, int]:
    """(shard, epoch, seq, events) of a batch header."""
    try:
        shard, epoch, seq, events = BATCH_HEADER.unpack(raw)
    except struct.error:
        raise DecodeError("bad batch header", raw) from None
    return int(shard), int(epoch), int(seq), int(events)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return orjson.dumps(value).decode()


def encode_fields(event: Event) -> list[str]:
    """The entry's field list: ``type``, then every field of the event in declaration order."""
    fast = _ENCODERS.get(type(event))
    return fast(event) if fast is not None else fields_of(event)


def fields_of(event: Event) -> list[str]:
    """`encode_fields` the slow, general way (read from the dataclass fields)."""
    out = ["type", event.kind]
    for name in _FIELDS[type(event)]:
        out.append(name)
        out.append(_text(getattr(event, name)))
    return out


# The two events nearly every frame is, spelled out: `encode_fields`'s loop, unrolled, with the
# levels' text and the optional integers inline (a call each costs as much as what it does). A test
# holds them to the loop's output.
def _trade_fields(e: Trade) -> list[str]:
    return [
        "type", "trade", "exchange", e.exchange, "symbol", e.symbol, "native", e.native, "trade_id", e.trade_id,
        "price", e.price, "qty", e.qty, "side", e.side, "ts_exchange", str(e.ts_exchange), "ts_recv", str(e.ts_recv),
        "origin", e.origin,
    ]  # fmt: skip


def _delta_fields(e: BookDelta) -> list[str]:
    bids, asks, first, seq, checksum = e.bids, e.asks, e.first_seq, e.seq, e.checksum
    return [
        "type", "delta", "exchange", e.exchange, "symbol", e.symbol, "native", e.native,
        "bids", _dumps(bids).decode() if bids else "[]", "asks", _dumps(asks).decode() if asks else "[]",
        "first_seq", "" if first is None else str(first), "seq", "" if seq is None else str(seq),
        "ts_exchange", str(e.ts_exchange), "ts_recv", str(e.ts_recv),
        "checksum", "" if checksum is None else str(checksum),
    ]  # fmt: skip


_ENCODERS: dict[type, Callable[[Any], list[str]]] = {Trade: _trade_fields, BookDelta: _delta_fields}
_dumps = orjson.dumps


def body(event: Event) -> bytes:
    """An event's body: its entry's field list as JSON (what a batch carries, `bus.publisher`)."""
    return _dumps(encode_fields(event))


def encode(event: Event) -> tuple[bytes, bytes]:
    """(topic, body) of an event."""
    return topic(event), body(event)


def header(shard: int, epoch: int, seq: int) -> bytes:
    return HEADER.pack(shard, epoch, seq)


def parse_header(raw: bytes) -> tuple[int, int, int]:
    try:
        shard, epoch, seq = HEADER.unpack(raw)
    except struct.error:
        raise DecodeError("bad bus header", raw) from None
    return int(shard), int(epoch), int(seq)


def decode_fields(fields_: dict[str, str]) -> Event:
    """An event from its entry fields (as read back from Redis, or a decoded body)."""
    try:
        cls = EVENT_TYPES[fields_["type"]]
        kwargs: dict[str, Any] = {}
        for name in _FIELDS[cls]:
            raw = fields_[name]
            if name in _LIST_FIELDS:
                items = orjson.loads(raw)
                kwargs[name] = tuple(tuple(x) if isinstance(x, list) else x for x in items)
            elif name in _INT_FIELDS:
                kwargs[name] = int(raw) if raw != "" else None
            else:
                kwargs[name] = raw
        return cls(**kwargs)
    except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as e:
        raise DecodeError(f"bad entry ({e!r})", repr(fields_)) from None


def decode(body: bytes) -> Event:
    """An event from a bus body."""
    try:
        flat = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise DecodeError("bus body is not JSON", body) from None
    if not isinstance(flat, list) or len(flat) % 2:
        raise DecodeError("bus body is not a field list", body)
    return decode_fields(dict(zip(flat[::2], flat[1::2], strict=True)))


def end_body(last_seq: int) -> bytes:
    return orjson.dumps(["end", str(last_seq)])


def tick_body(last_seq: int) -> bytes:
    return orjson.dumps(["tick", str(last_seq)])


def control_kind(body: bytes) -> str:
    """``end`` or ``tick`` (or whatever else a newer shard sends; the merger ignores unknown kinds)."""
    try:
        flat = orjson.loads(body)
        return str(flat[0])
    except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
        raise DecodeError("bad control body", body) from None


def repair_request(kind: int, request_id: int, epoch: int, first: int, last: int) -> bytes:
    return REPAIR_REQUEST.pack(kind, request_id, epoch, first, last)


def parse_repair_request(raw: bytes) -> tuple[int, int, int, int, int]:
    try:
        kind, rid, epoch, first, last = REPAIR_REQUEST.unpack(raw)
    except struct.error:
        raise DecodeError("bad repair request", raw) from None
    return int(kind), int(rid), int(epoch), int(first), int(last)


def repair_reply(status: int, request_id: int, epoch: int, covered_to: int, last_published: int) -> bytes:
    return REPAIR_REPLY.pack(status, request_id, epoch, covered_to, last_published)


def parse_repair_reply(raw: bytes) -> tuple[int, int, int, int, int]:
    try:
        status, rid, epoch, covered_to, last_published = REPAIR_REPLY.unpack(raw)
    except struct.error:
        raise DecodeError("bad repair reply", raw) from None
    return int(status), int(rid), int(epoch), int(covered_to), int(last_published)
