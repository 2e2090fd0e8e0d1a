"""The bus and stream wire format (pure: no zmq, no redis).

A bus message is three ZeroMQ frames::

    topic   b"{channel}.{exchange}.{symbol}"      (ZeroMQ prefix filtering works on it)
    header  struct "!HIQ": shard id, shard epoch, per-shard sequence number (from 1 per epoch)
    body    JSON array of alternating field names and string values

The body is exactly the field list of the Redis Streams entry the merger writes, so the merger
never re-encodes it (a Lua script decodes it inside Redis). Every value is a string: integers in
decimal, ``None`` as ``""``, level lists and symbol lists as JSON text. The first field is
``type`` (``trade``, ``snapshot``, ``delta``, ``status``, ``conn``).

A control message has the topic ``CONTROL_TOPIC``; its body says what (``["end", "<last seq>"]``
when a shard stops after draining).
"""

from __future__ import annotations

import struct
from dataclasses import fields
from typing import Any

import orjson

from ingest.errors import DecodeError
from ingest.events import EVENT_TYPES, Event

HEADER = struct.Struct("!HIQ")
CONTROL_TOPIC = b"\x00ctl"

_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in EVENT_TYPES.values()}
_LIST_FIELDS = frozenset({"bids", "asks", "symbols"})
_INT_FIELDS = frozenset({"seq", "first_seq", "gap_from", "gap_to", "ts_exchange", "ts_recv", "checksum"})


def topic(event: Event) -> bytes:
    return f"{event.channel}.{event.exchange}.{event.symbol}".encode()


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
    out = ["type", event.kind]
    for name in _FIELDS[type(event)]:
        out.append(name)
        out.append(_text(getattr(event, name)))
    return out


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
