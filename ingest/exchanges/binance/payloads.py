"""The two payloads nearly every Binance frame carries, as msgspec types, for the codec's fast path.

A combined-stream frame ``{"stream": ..., "data": {"e": "depthUpdate" | "trade", ...}}`` is decoded
by `decode_combined` straight into these objects, in C: no dict per frame and no list per level, and
the types and ranges the checked path (`ingest.exchanges.binance.messages`) requires are checked as
it reads: ids non-negative 64-bit integers, times milliseconds that fit 64-bit nanoseconds, ``m`` a
boolean, a level exactly ``[price, qty]``. Unknown keys are ignored, a repeated key's last value
counts (as in orjson). What it does not accept raises ``msgspec.DecodeError`` (or, for a ``str``
frame with a lone surrogate, ``UnicodeEncodeError``; for nesting past its limit, ``RecursionError``):
the codec then takes the frame the checked way,
which says what is wrong or accepts it (a level with a third element, say). The decimal strings
are checked by the codec. Kept out of the compiled modules: msgspec's types are classes mypyc does
not compile.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ingest.exchanges.fields import INT64_MAX, MAX_MS

Id = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Ms = Annotated[int, msgspec.Meta(ge=0, le=MAX_MS)]


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    E: Ms
    s: str
    U: Id
    u: Id
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class TradePayload(msgspec.Struct, tag_field="e", tag="trade"):
    E: Ms
    s: str
    t: Id
    p: str
    q: str
    T: Ms
    m: bool


class Combined(msgspec.Struct):
    stream: str
    data: DepthUpdate | TradePayload


decode_combined = msgspec.json.Decoder(Combined).decode
