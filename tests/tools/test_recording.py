"""The recording line format: real files, every record shape, exact timestamps, merge order, bad lines."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from ingest.errors import InputError
from tools.recording import (
    HttpResponse,
    Opened,
    Received,
    Record,
    Sent,
    format_record,
    format_ts,
    merge,
    parse_line,
    parse_ts,
    read_records,
)

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings" / "cryptofeed"
BINANCE_WS = RECORDINGS / "BINANCE.ws.1.0"
BINANCE_HTTP = RECORDINGS / "BINANCE.http.0.0"


def test_binance_ws_file() -> None:
    records = list(read_records(BINANCE_WS))
    assert len(records) == 266  # the opened line and 265 frames; the trailing blank line is skipped
    opened = records[0]
    assert isinstance(opened, Opened)
    assert opened.url.startswith("wss://stream.binance.com:9443/stream?streams=nknusdt@depth@100ms/")
    assert opened.url.endswith("/runeeur@aggTrade")
    assert opened.ts == 1633998511_159679000
    first = records[1]
    assert isinstance(first, Received)
    assert first.ts == 1633998512_063356900
    assert isinstance(first.text, str)
    assert first.text.startswith(
        '{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512068,'
    )
    assert first.text.endswith('"a":[]}}')
    assert all(isinstance(r, Received) for r in records[1:])


def test_binance_http_file() -> None:
    records = list(read_records(BINANCE_HTTP))
    assert [type(r) for r in records] == [HttpResponse] * 4
    first = records[0]
    assert isinstance(first, HttpResponse)
    assert first.url == "https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000"
    assert first.ts == 1633998512_320639000
    assert first.body.startswith('{"lastUpdateId":499869752,"bids":[["0.35210000","672.00000000"],')
    assert first.header is None
    assert [r.url.split("symbol=")[1] for r in records if isinstance(r, HttpResponse)] == [
        "NKNUSDT&limit=1000", "BLZETH&limit=1000", "LRCBTC&limit=1000", "RUNEEUR&limit=1000",
    ]  # fmt: skip


def test_sent_line_from_kraken() -> None:
    sent = list(read_records(RECORDINGS / "KRAKEN.ws.48.0"))[1]
    assert isinstance(sent, Sent)
    assert (sent.url, sent.ts) == ("wss://ws.kraken.com", 1618678132_830970000)
    assert sent.text.startswith('{"event":"subscribe","pair":["WAVES/EUR",')


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1633998512.0633569", 1633998512_063356900),
        ("1633998513.3663769", 1633998513_366376900),  # float * 1e9 would give ...366376960
        ("1633998512.320639", 1633998512_320639000),
        ("1", 1_000_000_000),
        ("0.000000001", 1),
        ("1.0000000019", 1_000_000_001),  # below a nanosecond is truncated
    ],
)
def test_timestamps_are_exact(text: str, ns: int) -> None:
    assert parse_ts(text) == ns


def test_http_header_is_split_off_and_binary_frames_are_bytes() -> None:
    line = 'https://api.example.com/x?y=1 -> 2.5: {"a":1} header: {"Content-Type": "application/json"}'
    assert parse_line(line) == HttpResponse(
        "https://api.example.com/x?y=1", 2_500_000_000, '{"a":1}', '{"Content-Type": "application/json"}'
    )
    assert parse_line("3.25: b'\\x00ab'") == Received(3_250_000_000, b"\x00ab")
    # a colon-space inside the payload stays in the payload
    assert parse_line('4: {"k": "v: w"}') == Received(4_000_000_000, '{"k": "v: w"}')
    assert parse_line("   ") is None


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "abc: {}",
        "wss://x.example <-> yesterday",
        "wss://x.example => 1.0: {}",
        "wss://x.example 1.0: {}",
        "1.0.0: {}",
        "-1: {}",
        "nan: {}",
        "1: b'\\x0",
        "not-a-url <- 1.0: {}",
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "rec"
    path.write_text(f"wss://x.example <-> 1.0\n\n{bad}\n")
    with pytest.raises(InputError) as info:
        list(read_records(path))
    assert str(info.value).startswith(f"{path}:3: ")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        list(read_records(tmp_path / "missing"))
    binary = tmp_path / "binary"
    binary.write_bytes(b"1.0: \xff\xfe\n")
    with pytest.raises(InputError, match="not UTF-8"):
        list(read_records(binary))


def payloads(records: Iterable[Record]) -> list[str | bytes]:
    return [r.body if isinstance(r, HttpResponse) else r.text for r in records if not isinstance(r, Opened)]


def test_merge_orders_by_time_keeps_file_order_and_is_stable(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.write_text("1: a1\n3: a3\n2.5: a-late\n5: a5\n")  # a file's own order is never changed
    b.write_text("https://h.example/x -> 2: b2\n3: b3\n6: b6\n")
    assert payloads(merge([a, b])) == ["a1", "b2", "a3", "a-late", "b3", "a5", "b6"]  # 3 == 3: a first
    assert payloads(merge([b, a])) == ["a1", "b2", "b3", "a3", "a-late", "a5", "b6"]


def test_merge_real_files_puts_the_snapshot_between_frames() -> None:
    records = list(merge([BINANCE_WS, BINANCE_HTTP]))
    assert len(records) == 270
    assert [type(r) for r in records[:4]] == [Opened, Received, HttpResponse, Received]
    assert [r.ts for r in records] == sorted(r.ts for r in records)


def test_format_record_is_the_inverse_of_parse_line() -> None:
    records: list[Record] = [
        Opened("wss://stream.binance.com:9443/stream?streams=btcusdt@depth", 1633998511_159679000),
        Sent("ws://127.0.0.1:8/okx/ws/v5/public", 5, '{"op": "subscribe", "args": []}'),
        Received(1633998512_000000001, '{"e":"trade","t":12}'),
        Received(1633998512_000000002, b"\x00\x01b'q\"\n"),  # binary, with quotes and a newline byte
        HttpResponse("http://127.0.0.1:8/binance/api/v3/depth?symbol=BTCUSDT", 7, '{"lastUpdateId":1}'),
        HttpResponse("https://api.kraken.com/0/public/Trades", 8, "{}", header='{"x": "y"}'),
    ]
    lines = [format_record(r) for r in records]
    assert all("\n" not in line for line in lines)
    assert [parse_line(line) for line in lines] == records
    assert lines[0] == "wss://stream.binance.com:9443/stream?streams=btcusdt@depth <-> 1633998511.159679000"
    assert lines[2] == '1633998512.000000001: {"e":"trade","t":12}'


def test_format_record_puts_a_multiline_text_payload_on_one_line() -> None:
    line = format_record(Received(3, '{\r\n "a": 1,\n "b": 2}'))
    assert line == '0.000000003: {  "a": 1,  "b": 2}'
    assert parse_line(line) == Received(3, '{  "a": 1,  "b": 2}')


def test_format_ts_round_trips_exactly() -> None:
    for ns in (0, 1, 999_999_999, 1_000_000_000, 1633998512_063356900, 2**63 - 1):
        assert parse_ts(format_ts(ns)) == ns
