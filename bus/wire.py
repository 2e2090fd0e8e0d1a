"""The bus and stream wire format (pure: no zmq, no redis).

A bus message is three ZeroMQ frames::

    topic   b"{channel}.{exchange}.{symbol}"      (ZeroMQ prefix filtering works on it)
    header  struct "!HIQ": shard id, shard epoch, per-shard sequence number (from 1 per epoch)
    body    JSON array of alternating field names and string values

The body is exactly the field list of the Redis Streams entry the merger writes, so the merger
never re-encodes it (a Lua script decodes it inside Redis). Every value is a string: integers in
decimal, ``None`` as ``""``, level lists and symbol lists as JSON text. The first field is
``type`` (``trade``, ``snapshot``, ``delta``, ``status``, ``conn``, ``bar``).

A control message has the topic ``CONTROL_TOPIC``; its body says what: ``["end", "<last seq>"]``
when a shard stops after draining, ``["tick", "<last seq>"]`` every heartbeat (so the merger sees
frames lost at the tail of an idle shard). A control message carries the last sequence number in
its header too and takes no sequence number of its own.

The repair side channel (merger DEALER -> shard ROUTER) has one request frame, ``REPAIR_REQUEST``
(kind, request id, epoch, first seq, last seq), and a reply of one ``REPAIR_REPLY`` frame (status,
request id, the shard's epoch, ``covered_to``, the shard's last published seq) followed by the
frames found, three ZeroMQ frames each exactly as on the bus (topic, header, body). Every seq in
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
from ingest.events import EVENT_TYPES, BookDelta, Event, Level, Trade

HEADER = struct.Struct("!HIQ")
CONTROL_TOPIC = b"\x00ctl"

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


def stream_key(prefix: str, topic_bytes: bytes) -> str:
    """Redis stream key of a topic: ``{prefix}:{channel}:{exchange}:{symbol}``."""
    return prefix + ":" + topic_bytes.decode().replace(".", ":", 2)


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


def _levels_text(levels: tuple[Level, ...]) -> str:
    return orjson.dumps(levels).decode() if levels else "[]"


def _opt_int(value: int | None) -> str:
    return "" if value is None else str(value)


# The two events nearly every frame is, spelled out: `encode_fields`'s loop, unrolled (a test holds
# them to the loop's output).
def _trade_fields(e: Trade) -> list[str]:
    return [
        "type", "trade", "exchange", e.exchange, "symbol", e.symbol, "native", e.native, "trade_id", e.trade_id,
        "price", e.price, "qty", e.qty, "side", e.side, "ts_exchange", str(e.ts_exchange), "ts_recv", str(e.ts_recv),
        "origin", e.origin,
    ]  # fmt: skip


def _delta_fields(e: BookDelta) -> list[str]:
    return [
        "type", "delta", "exchange", e.exchange, "symbol", e.symbol, "native", e.native,
        "bids", _levels_text(e.bids), "asks", _levels_text(e.asks), "first_seq", _opt_int(e.first_seq),
        "seq", _opt_int(e.seq), "ts_exchange", str(e.ts_exchange), "ts_recv", str(e.ts_recv),
        "checksum", _opt_int(e.checksum),
    ]  # fmt: skip


_ENCODERS: dict[type, Callable[[Any], list[str]]] = {Trade: _trade_fields, BookDelta: _delta_fields}


def encode(event: Event) -> tuple[bytes, bytes]:
    """(topic, body) of an event."""
    return topic(event), orjson.dumps(encode_fields(event))


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
