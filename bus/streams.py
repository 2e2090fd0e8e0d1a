"""Writing bus bodies into Redis Streams, one Lua call per batch, checkpoint in the same call.

Each event body is the entry's field list as JSON (see `bus.wire`); the script decodes it inside
Redis, so the merger never re-encodes an event. A write goes as one argument, the JSON array
``["<key suffix>", <body>, ...]`` joined with commas from the bus's batch bodies as they came off
the bus (each already ``"<key suffix>",<body>,...``); the script prepends ``{prefix}:`` to each key.
redis-py packing one argument per entry cost the merger 2.7 us of CPU per entry, the joined
argument 0.4 us (1000-entry batches); joining whole bus batches makes it per batch, not per entry.
The per-shard checkpoint (``epoch:seq`` of the last frame written) is updated by the same script
call as the entries it covers: Redis runs a script atomically, so the checkpoint can never run ahead
of, or behind, what is in the streams.

Every batch moves the checkpoint of each shard it carries forward, so a batch whose checkpoint is
already in place was written before (a retry after a reply lost on the way back): the script then
writes nothing and returns -1.

What the streams hold is bounded by their cap (``redis.maxlen`` entries each, trimmed by whole
listpack nodes, so a little over it): `memory_bound` is what Redis may need once every stream is
full, and `memory_warning` says when that is more than Redis may have.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import redis

from bus.rediscall import ScriptCall, bulk

_SCRIPT = """
local maxlen = ARGV[1]
local marks = nil
if ARGV[2] ~= '' then
  marks = cjson.decode(ARGV[2])
  for i = 1, #marks, 2 do
    if redis.call('HGET', KEYS[1], marks[i]) == marks[i + 1] then
      return -1
    end
  end
end
local batch = cjson.decode(ARGV[3])
local prefix = ARGV[4]
local n = 0
for i = 1, #batch, 2 do
  redis.call('XADD', prefix .. batch[i], 'MAXLEN', '~', maxlen, '*', unpack(batch[i + 1]))
  n = n + 1
end
if marks then
  redis.call('HSET', KEYS[1], unpack(marks))
end
return n
"""


# Redis memory per stream entry, a book delta or a trade of the bench's Binance mix: 126 and 115 bytes
# (redis-server 6.2, ``used_memory`` after 200,000 XADDs of each over 50 streams). Snapshots weigh more
# but are few; rounded up.
ENTRY_BYTES = 130
# The share of Redis's memory (its ``maxmemory``, else its host's) full streams may take without a warning.
MEMORY_SHARE = 0.5


def memory_bound(streams: int, maxlen: int) -> int:
    """Bytes ``streams`` streams of ``maxlen`` entries each take in Redis, about."""
    return streams * maxlen * ENTRY_BYTES


def memory_summary(streams: int, maxlen: int) -> str:
    """``streams`` streams of ``maxlen`` entries and what they take in Redis once full, in words."""
    return (f"{streams} streams of up to {maxlen:,} entries (redis.maxlen) take "
            f"~{_gb(memory_bound(streams, maxlen))} in Redis once full")  # fmt: skip


def memory_warning(streams: int, maxlen: int, maxmemory: int, system_memory: int) -> str | None:
    """Why full streams would not fit in Redis (``maxmemory``: its limit, 0 for none; ``system_memory``:
    its host's memory, 0 if unknown), or None when they take at most `MEMORY_SHARE` of it."""
    limit = maxmemory or system_memory
    bound = memory_bound(streams, maxlen)
    if not limit or bound <= limit * MEMORY_SHARE:
        return None
    of = "its maxmemory" if maxmemory else "the memory of its host"
    return (f"{memory_summary(streams, maxlen)}, more than half of {of} ({_gb(limit)}); lower redis.maxlen to about "
            f"{max(1, int(limit * MEMORY_SHARE / (streams * ENTRY_BYTES))):,}")  # fmt: skip


def redis_memory(client: redis.Redis) -> tuple[int, int]:
    """Redis's ``maxmemory`` (0: none) and its host's memory (0 if it does not say), from ``INFO memory``."""
    info: dict[str, object] = client.info("memory")
    return _int(info.get("maxmemory")), _int(info.get("total_system_memory"))


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def checkpoint_key(prefix: str) -> str:
    return f"{prefix}:checkpoint"


class StreamWriter:
    def __init__(self, client: redis.Redis, prefix: str, maxlen: int) -> None:
        """Writes over a connection of its own made from ``client``'s settings (`bus.rediscall`)."""
        self._checkpoint_key = checkpoint_key(prefix)
        self._script = ScriptCall(client, _SCRIPT, [self._checkpoint_key])
        self._head = self._script.head(4) + bulk(str(maxlen).encode())  # maxlen, checkpoint, batch, prefix
        self._tail = bulk((prefix + ":").encode())

    def write(self, batches: Sequence[bytes], checkpoint: Sequence[str]) -> int:
        """Append the entries of ``batches`` in order; set the checkpoint fields atomically.

        Each batch is ``"<key suffix>",<body>,...`` (a bus batch body, or `entry` of one entry; an
        empty one is skipped). ``checkpoint`` is a flat list ``[field, value, ...]`` (empty: leave
        the checkpoint alone). Returns the number of entries written, or -1 if this checkpoint was
        already in place.
        """
        parts = [b for b in batches if b]
        size = 1 + sum(map(len, parts)) + len(parts) if parts else 2  # "[" + parts and their commas + "]"
        parts = [self._head, bulk(orjson.dumps(list(checkpoint)) if checkpoint else b""),
                 b"$%d\r\n[" % size, b",".join(parts), b"]\r\n", self._tail]  # fmt: skip
        return self._script.call(b"".join(parts))

    def close(self) -> None:
        self._script.close()


def entry(suffix: str, body: bytes) -> bytes:
    """One entry as a batch for `StreamWriter.write`: ``suffix`` is its stream key without the prefix."""
    return orjson.dumps(suffix) + b"," + body


def read_checkpoint(client: redis.Redis, prefix: str) -> dict[int, tuple[int, int, bool]]:
    """shard -> (epoch, seq, ended) of the last frame written; ``ended``: everything up to that
    shard's end marker is written (the value then reads ``epoch:seq:end``)."""
    raw: dict[bytes, bytes] = client.hgetall(checkpoint_key(prefix))  # type: ignore[assignment]
    out: dict[int, tuple[int, int, bool]] = {}
    for k, v in raw.items():
        epoch, seq, *rest = v.decode().split(":")
        out[int(k)] = (int(epoch), int(seq), rest == ["end"])
    return out
