"""Recorded exchange sessions (the cryptofeed raw-data line format) as typed records.

One record a line, UTF-8; the payload always follows the first ``": "``::

    <wss-url> <-> <ts>             Opened        the connection opened
    <wss-url> <- <ts>: <text>      Sent          a frame the client sent
    <ts>: <text>                   Received      a frame received (text, or b'...' for binary)
    <https-url> -> <ts>: <body>    HttpResponse  a REST response; a trailing `` header: {..}`` is split off

``<ts>`` is float seconds since the epoch as text; it is parsed exactly (Decimal, never a binary
float) into integer nanoseconds, truncating digits beyond the nanosecond. Blank lines are skipped. A
line that fits none of the shapes raises `ingest.errors.InputError` naming the file and line number;
so does a file that cannot be read.

`format_record` is the inverse of `parse_line` (``ingest record`` writes with it): times are written
with all nine decimals, binary frames as a bytes literal, and a line break inside a text payload (JSON
whitespace; the format has one record a line) as a space.

`merge` interleaves several files into one stream ordered by ``ts``: each file keeps its own order
(a connection's frames are never reordered), and on equal times the file named first goes first.
"""

from __future__ import annotations

import ast
import heapq
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path

from ingest.errors import InputError

_TS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_HEADER = " header: "


@dataclass(frozen=True, slots=True)
class Opened:
    url: str
    ts: int


@dataclass(frozen=True, slots=True)
class Sent:
    url: str
    ts: int
    text: str


@dataclass(frozen=True, slots=True)
class Received:
    """A received frame: ``str`` for a text frame, ``bytes`` for a binary one."""

    ts: int
    text: str | bytes


@dataclass(frozen=True, slots=True)
class HttpResponse:
    url: str
    ts: int
    body: str
    header: str | None = None


Record = Opened | Sent | Received | HttpResponse


def parse_ts(text: str) -> int:
    """``"1633998512.0633569"`` -> ``1633998512063356900`` (ns). ``ValueError`` if not plain seconds."""
    if not _TS.fullmatch(text):
        raise ValueError(f"bad timestamp {text[:40]!r}")
    with localcontext() as ctx:
        ctx.prec = max(60, len(text) + 10)  # exact: nothing here may round
        return int(Decimal(text).scaleb(9))


def parse_line(line: str) -> Record | None:
    """One line (without its newline) as a record; ``None`` for a blank line. ``ValueError`` if bad."""
    if not line.strip():
        return None
    head, sep, payload = line.partition(": ")
    if not sep:
        url, arrow, ts = _url_arrow_ts(line)
        if arrow != "<->":
            raise ValueError("expected '<url> <-> <ts>' or a line with a ': ' payload")
        return Opened(url, parse_ts(ts))
    if _TS.fullmatch(head):
        return Received(parse_ts(head), _frame(payload))
    url, arrow, ts = _url_arrow_ts(head)
    if arrow == "<-":
        return Sent(url, parse_ts(ts), payload)
    if arrow == "->":
        body, header = _split_header(payload)
        return HttpResponse(url, parse_ts(ts), body, header)
    raise ValueError(f"unknown direction {arrow[:10]!r}")


def format_ts(ns: int) -> str:
    """``1633998512063356900`` (ns) -> ``"1633998512.063356900"``, which `parse_ts` reads back exactly."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return f"{seconds}.{nanos:09d}"


def format_record(record: Record) -> str:
    """One record as one line, without its newline (see the module docstring)."""
    ts = format_ts(record.ts)
    if isinstance(record, Opened):
        return f"{record.url} <-> {ts}"
    if isinstance(record, Sent):
        return f"{record.url} <- {ts}: {_one_line(record.text)}"
    if isinstance(record, Received):
        text = record.text
        return f"{ts}: {repr(text) if isinstance(text, bytes) else _one_line(text)}"
    header = f"{_HEADER}{record.header}" if record.header is not None else ""
    return f"{record.url} -> {ts}: {_one_line(record.body)}{header}"


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def read_records(path: Path) -> Iterator[Record]:
    """The records of one file, in file order."""
    try:
        with open(path, encoding="utf-8", newline="\n") as file:
            for number, raw in enumerate(file, start=1):
                line = raw[:-1] if raw.endswith("\n") else raw
                try:
                    record = parse_line(line)
                except ValueError as exc:
                    raise InputError(f"{path}:{number}: {exc}") from None
                if record is not None:
                    yield record
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def merge(paths: Sequence[Path]) -> Iterator[Record]:
    """Every record of every file, ordered by ``ts``; stable (see the module docstring)."""
    return heapq.merge(*(read_records(path) for path in paths), key=_ts)


def _ts(record: Record) -> int:
    return record.ts


def _url_arrow_ts(head: str) -> tuple[str, str, str]:
    parts = head.split(" ")
    if len(parts) != 3 or "://" not in parts[0]:
        raise ValueError("expected '<url> <arrow> <ts>' before the payload")
    return parts[0], parts[1], parts[2]


def _frame(payload: str) -> str | bytes:
    if payload.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(payload)
        except (ValueError, SyntaxError):
            raise ValueError("binary frame is not a valid bytes literal") from None
        if not isinstance(value, bytes):
            raise ValueError("binary frame is not a bytes literal")
        return value
    return payload


def _split_header(payload: str) -> tuple[str, str | None]:
    body, sep, header = payload.rpartition(_HEADER)
    if sep and body and header.startswith("{") and header.endswith("}"):
        return body, header
    return payload, None
