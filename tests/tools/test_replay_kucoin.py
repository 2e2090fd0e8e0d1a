"""A recorded KuCoin session, built from the messages protocols.md section E' documents (the bullet
answer, welcome, subscribe and ack, the level2 message, ping/pong) and KuCoin's docs examples of the
match message and the level2_100 snapshot, in the line format `tools.recording` reads, replayed with
`tools.replay` through the live codec and book sync. The REST snapshots come from the recorded HTTP
responses: the buffered stream is calibrated against the first one's ``sequence`` (older updates
dropped, the straddling one applied), price-"0" changes are skipped, size "0" deletes, and a hole in
the sequences is a gap that the next recorded snapshot heals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import InputError
from ingest.events import BookDelta, BookSnapshot, BookStatus, Trade
from tools.replay import replay, replay_events

REST = "https://api.kucoin.com"
CONNECT_ID = "k0-0-5f1c2a9b7e3d"
WS = f"wss://ws-api-spot.kucoin.com/?token=2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M&connectId={CONNECT_ID}"
SNAPSHOT_URL = f"{REST}/api/v1/market/orderbook/level2_100?symbol=BTC-USDT"


def level2(start: int, end: int, asks: str, bids: str, ms: int) -> str:
    return (
        '{"type":"message","topic":"/market/level2:BTC-USDT","subject":"trade.l2update",'
        f'"data":{{"changes":{{"asks":[{asks}],"bids":[{bids}]}},"sequenceStart":{start},"sequenceEnd":{end},'
        f'"symbol":"BTC-USDT","time":{ms}}}}}'
    )


def subscribe(request_id: str, topic: str) -> str:
    return f'{{"id":"{request_id}","type":"subscribe","topic":"{topic}","privateChannel":false,"response":true}}'


FIRST_SNAPSHOT = (
    '{"code":"200000","data":{"sequence":"14103845","time":1663747970390,'
    '"bids":[["18891.9","0.15"],["18891.5","1.2"]],"asks":[["18906","0.5"],["18907.1","2"]]}}'
)

SESSION = [
    # protocols.md E': the bullet answer.
    f"{REST}/api/v1/bullet-public -> 1663747969.000: "
    '{"code":"200000","data":{"token":"2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M",'
    '"instanceServers":[{"endpoint":"wss://ws-api-spot.kucoin.com/","encrypt":true,"protocol":"websocket",'
    '"pingInterval":18000,"pingTimeout":10000}]}}',
    f"{WS} <-> 1663747969.100",
    f'1663747969.110: {{"id":"{CONNECT_ID}","type":"welcome"}}',
    f"{WS} <- 1663747969.111: " + subscribe("1", "/market/match:BTC-USDT"),
    f"{WS} <- 1663747969.112: " + subscribe("2", "/market/level2:BTC-USDT"),
    '1663747969.150: {"id":"1","type":"ack"}',
    '1663747969.151: {"id":"2","type":"ack"}',
    # Buffered: wholly before the snapshot (dropped), then protocols.md E''s message, which straddles it.
    "1663747970.100: " + level2(14103840, 14103843, '["18905","9","14103841"]', "", 1663747970098),
    "1663747970.275: "
    + level2(14103844, 14103847, '["18906","0.00331","14103845"]', '["18891.9","0.15688","14103847"]', 1663747970273),
    # The level2_100 snapshot as of sequence 14103845.
    f"{SNAPSHOT_URL} -> 1663747970.400: {FIRST_SNAPSHOT}",
    # A delete, a no-op that only advances the sequence, a new bid.
    "1663747970.500: "
    + level2(
        14103848, 14103850, '["18906","0","14103848"],["0","0","14103849"]', '["18892","0.3","14103850"]', 1663747970498
    ),
    # KuCoin docs' match example, for BTC-USDT.
    '1663747970.600: {"type":"message","topic":"/market/match:BTC-USDT","subject":"trade.l3match",'
    '"data":{"sequence":"14103851","type":"match","symbol":"BTC-USDT","side":"buy","price":"18906",'
    '"size":"0.01022222","tradeId":"5c24c5da03aa673885cd67aa","takerOrderId":"5c24c5d903aa6772d55b371e",'
    '"makerOrderId":"5c2187d003aa677bd09d5c93","time":"1663747970598033203"}}',
    f'{WS} <- 1663747971.000: {{"id":"ping","type":"ping"}}',
    '1663747971.004: {"id":"ping","type":"pong"}',
    # 14103851..14103852 never arrive: a gap; the next snapshot (14103856) heals it.
    "1663747971.100: " + level2(14103853, 14103855, '["18910","4","14103853"]', "", 1663747971098),
    f"{SNAPSHOT_URL} -> 1663747971.300: "
    '{"code":"200000","data":{"sequence":"14103856","time":1663747971290,'
    '"bids":[["18893","1"],["18892","0.3"]],"asks":[["18907.1","2"],["18910","4"]]}}',
    "1663747971.400: "
    + level2(14103856, 14103857, '["18909","0.7","14103856"]', '["18893","0","14103857"]', 1663747971398),
]


def write(tmp_path: Path, lines: list[str], name: str = "KUCOIN.ws.1.0") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_documented_session_replays_to_the_book_and_trades_it_describes(tmp_path: Path) -> None:
    path = write(tmp_path, SESSION)
    assert replay("kucoin", [path]) == {
        "exchange": "kucoin",
        "frames": 10,
        "decode_errors": 0,
        "symbols": {
            "BTC-USDT": {
                "book_messages": 5,
                "checksums_verified": 0,
                "checksum_failures": 0,
                "gaps": 1,
                "resyncs": 1,
                "trades": 1,
                "best_bid": ["18892", "0.3"],
                "best_ask": ["18907.1", "2"],
                "bid_levels": 1,
                "ask_levels": 3,
            }
        },
    }


def test_the_events_are_the_calibrated_books_and_the_trade(tmp_path: Path) -> None:
    events = list(replay_events("kucoin", [write(tmp_path, SESSION)]))
    shapes = [
        (type(e).__name__, getattr(e, "state", None) or getattr(e, "seq", None) or getattr(e, "trade_id", None))
        for e in events
    ]
    assert shapes == [
        ("BookSnapshot", 14103845),
        ("BookStatus", "valid"),
        ("BookDelta", 14103847),  # the straddling update; the older one was dropped
        ("BookDelta", 14103850),
        ("Trade", "14103851"),
        ("BookStatus", "gap"),
        ("BookSnapshot", 14103856),
        ("BookStatus", "valid"),
        ("BookDelta", 14103857),
    ]
    first = events[2]
    assert isinstance(first, BookDelta)
    assert (first.bids, first.asks, first.first_seq) == ((("18891.9", "0.15688"),), (("18906", "0.00331"),), 14103844)
    noop = events[3]
    assert isinstance(noop, BookDelta)
    assert (noop.bids, noop.asks) == ((("18892", "0.3"),), (("18906", "0"),))  # the price-"0" change is left out
    trade = events[4]
    assert isinstance(trade, Trade)
    assert (trade.price, trade.qty, trade.side) == ("18906", "0.01022222", "buy")
    assert trade.ts_exchange == 1663747970598033203
    gap = events[5]
    assert isinstance(gap, BookStatus) and (gap.gap_from, gap.gap_to) == (14103851, 14103852)
    resync = events[6]
    assert isinstance(resync, BookSnapshot) and resync.bids == (("18893", "1"), ("18892", "0.3"))


def test_a_snapshot_recorded_before_the_first_update_answers_the_books_first_request(tmp_path: Path) -> None:
    """The live runner asks for the snapshot as it subscribes, so its answer may precede every update."""
    lines = [line for line in SESSION if not line.startswith(SNAPSHOT_URL) and "1663747970.100" not in line]
    lines.append(f"{SNAPSHOT_URL} -> 1663747970.050: {FIRST_SNAPSHOT}")
    path = write(tmp_path, sorted(lines, key=_ts))
    result = replay("kucoin", [path])["symbols"]["BTC-USDT"]
    # No second snapshot was recorded: after the gap the book waits for one.
    assert (result["gaps"], result["book_messages"], result["trades"]) == (1, 4, 1)
    events = list(replay_events("kucoin", [path]))
    assert [type(e).__name__ for e in events[:3]] == ["BookSnapshot", "BookStatus", "BookDelta"]
    assert isinstance(events[0], BookSnapshot) and events[0].seq == 14103845


def _ts(line: str) -> float:
    head = line.split(": ", 1)[0]
    return float(head.split(" ")[-1])


def test_a_recording_from_another_exchange_is_refused(tmp_path: Path) -> None:
    lines = [line.replace("api.kucoin.com", "api.binance.com") for line in SESSION]
    with pytest.raises(InputError, match="not a kucoin host"):
        replay("kucoin", [write(tmp_path, lines)])
