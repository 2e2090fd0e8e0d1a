"""Duplicated and reordered book updates, codec + book sync, in each exchange's real message format.

For every exchange: the book is synced from a snapshot (REST body or stream frame, decoded by the
exchange's codec), one update is applied, and then

- the same update arrives again: the book must not change and no resync may start. Where updates
  carry ids (Binance ``U``/``u``, OKX ``prevSeqId``/``seqId``) the copy is dropped, not published.
  Kraken's carry none, so the copy cannot be recognised; it is applied again, which is harmless
  (quantities are absolute, so the book is the same) and its checksum still matches;
- the two updates after the snapshot arrive in the wrong order: this must be detected and the book
  resynced. With ids it is a gap (its range where the ids tell); on Kraken it is the checksum of the
  first update applied that fails.

Frames: Binance from the real recording ``../shared/recordings/cryptofeed/BINANCE.{http,ws}``
(NKNUSDT, the snapshot and the first three updates after it); Kraken v2 and OKX in the documented
shapes (as in their codec tests) with real checksums of the books they produce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from ingest.book.sync import BookSync, NeedSnapshot, sync_for
from ingest.events import BookDelta, BookSnapshot, BookStatus, Level
from ingest.exchanges import SPECS, get_spec
from ingest.exchanges.base import Codec
from ingest.exchanges.kraken.checksum import levels_checksum as kraken_checksum
from ingest.exchanges.okx.checksum import checksum_levels as okx_checksum

RECORDINGS = Path(__file__).resolve().parents[3].parent / "shared" / "recordings" / "cryptofeed"
TS = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class Scenario:
    """A snapshot and the two updates that follow it, in one exchange's wire format."""

    exchange: str
    symbol: str
    native: str
    depth: int
    snapshot: Callable[[Codec], BookSnapshot]  # decodes the snapshot with the codec given
    first: str
    second: str
    ids: bool  # whether the exchange's updates carry ids (duplicates dropped, reorders are gaps)
    gap: tuple[int, int] | None = None  # the ids a reorder reports missing: the first update's


def _decode_one(codec: Codec, frame: str) -> BookSnapshot | BookDelta:
    [item] = codec.decode(frame, TS)
    assert isinstance(item, BookSnapshot | BookDelta)
    return item


# -- Binance: the real recording ----------------------------------------------------------------------


def _binance_frames() -> list[str]:
    """NKNUSDT's recorded depth updates, in order."""
    out = []
    for line in (RECORDINGS / "BINANCE.ws.1.0").read_text().splitlines():
        head, _, payload = line.partition(": ")
        if head[:1].isdigit() and '"s":"NKNUSDT"' in payload and "depthUpdate" in payload:
            out.append(payload)
    return out


def _binance_snapshot(codec: Codec) -> BookSnapshot:
    for line in (RECORDINGS / "BINANCE.http.0.0").read_text().splitlines():
        if "symbol=NKNUSDT&" in line:
            return codec.decode_snapshot(line.partition(": ")[2].partition(" header: ")[0], "NKNUSDT", TS)
    raise AssertionError("no NKNUSDT snapshot in the recording")


# The snapshot is at lastUpdateId 499869752; the recording's next updates are 499869753..754 (which
# bridges it), 755..757 and 758..759.
_BINANCE = _binance_frames()
assert [orjson.loads(f)["data"]["U"] for f in _BINANCE[1:4]] == [499869753, 499869755, 499869758]

# -- Kraken v2: documented shapes, checksums of the books they make ----------------------------------

_KRAKEN_INSTRUMENT = (
    '{"channel":"instrument","type":"snapshot","data":{"pairs":[{"symbol":"BTC/USD","base":"BTC",'
    '"quote":"USD","status":"online","qty_precision":8,"price_precision":1}]}}'
)
_KRAKEN_ASKS: list[Level] = [("45285.2", "0.00100000"), ("45286.4", "1.54571953")]
_KRAKEN_BIDS: list[Level] = [("45283.5", "0.10000000"), ("45283.4", "1.54582015")]
_KRAKEN_STAMP = "2023-10-06T17:35:55.440295Z"


def _kraken_book(kind: str, bids: str, asks: str, book_bids: list[Level], book_asks: list[Level]) -> str:
    checksum = kraken_checksum(book_bids, book_asks)
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"BTC/USD","bids":[{bids}],"asks":[{asks}],'
        f'"checksum":{checksum},"timestamp":"{_KRAKEN_STAMP}"}}]}}'
    )


def _kraken_snapshot(codec: Codec) -> BookSnapshot:
    assert codec.decode(_KRAKEN_INSTRUMENT, TS) == []
    frame = _kraken_book(
        "snapshot",
        '{"price":45283.5,"qty":0.10000000},{"price":45283.4,"qty":1.54582015}',
        '{"price":45285.2,"qty":0.00100000},{"price":45286.4,"qty":1.54571953}',
        _KRAKEN_BIDS,
        _KRAKEN_ASKS,
    )
    snap = _decode_one(codec, frame)
    assert isinstance(snap, BookSnapshot)
    return snap


# The first changes the best bid, the second the best ask: applied second first, the book lacks the
# first's change that the second's checksum includes.
_KRAKEN_AFTER_FIRST = [("45283.5", "0.20000000"), _KRAKEN_BIDS[1]]
_KRAKEN_FIRST = _kraken_book("update", '{"price":45283.5,"qty":0.2}', "", _KRAKEN_AFTER_FIRST, _KRAKEN_ASKS)
_KRAKEN_SECOND = _kraken_book(
    "update", "", '{"price":45285.2,"qty":0.5}', _KRAKEN_AFTER_FIRST, [("45285.2", "0.50000000"), _KRAKEN_ASKS[1]]
)

# -- OKX: documented shapes, seqId chain, real checksums -------------------------------------------

_OKX_ARG = '"arg":{"channel":"books","instId":"BTC-USDT"}'
_OKX_BIDS: list[Level] = [("8476.97", "256"), ("8475.55", "101")]
_OKX_ASKS: list[Level] = [("8476.98", "415"), ("8477", "7")]


def _okx_books(action: str, asks: str, bids: str, prev: int, seq: int, book: tuple[list[Level], list[Level]]) -> str:
    checksum = okx_checksum(*book)
    return (
        f'{{{_OKX_ARG},"action":"{action}","data":[{{"asks":[{asks}],"bids":[{bids}],"ts":"1597026383085",'
        f'"checksum":{checksum},"prevSeqId":{prev},"seqId":{seq}}}]}}'
    )


def _okx_snapshot(codec: Codec) -> BookSnapshot:
    frame = _okx_books(
        "snapshot",
        '["8476.98","415","0","13"],["8477","7","0","2"]',
        '["8476.97","256","0","12"],["8475.55","101","0","1"]',
        -1,
        123456,
        (_OKX_BIDS, _OKX_ASKS),
    )
    snap = _decode_one(codec, frame)
    assert isinstance(snap, BookSnapshot)
    return snap


_OKX_FIRST = _okx_books(
    "update", "", '["8476.97","300","0","14"]', 123456, 123470, ([("8476.97", "300"), _OKX_BIDS[1]], _OKX_ASKS)
)
_OKX_SECOND = _okx_books(
    "update", '["8476.98","0","0","0"]', "", 123470, 123480, ([("8476.97", "300"), _OKX_BIDS[1]], _OKX_ASKS[1:])
)

# -- KuCoin: protocols.md E''s level2 message and the documented snapshot shape ------------------------


def _kucoin_snapshot(codec: Codec) -> BookSnapshot:
    body = (
        '{"code":"200000","data":{"sequence":"14103843","time":1663747970273,'
        '"bids":[["18891.9","0.1"],["18891.5","1.2"]],"asks":[["18906","0.5"],["18907.1","2"]]}}'
    )
    return codec.decode_snapshot(body, "BTC-USDT", TS)


def _kucoin_level2(start: int, end: int, asks: str, bids: str) -> str:
    return (
        '{"type":"message","topic":"/market/level2:BTC-USDT","subject":"trade.l2update","data":{"changes":'
        f'{{"asks":[{asks}],"bids":[{bids}]}},"sequenceStart":{start},"sequenceEnd":{end},"symbol":"BTC-USDT",'
        '"time":1663747970273}}'
    )


_KUCOIN_FIRST = _kucoin_level2(
    14103844, 14103847, '["18906","0.00331","14103845"]', '["18891.9","0.15688","14103847"]'
)
_KUCOIN_SECOND = _kucoin_level2(
    14103848, 14103850, '["18906","0","14103848"],["0","0","14103849"]', '["18892","0.3","14103850"]'
)

# Exchanges whose duplicates and reorders are decided elsewhere than a per-symbol drop, and the tests
# that show it: Coinbase numbers every message of a connection (`sequence_num`): its codec drops a
# repeat and turns a reorder into a hole and a `Resync` of every book; one Bybit connection never
# repeats an update, so a repeated `u` is a gap (a resubscribe) rather than a silent drop.
ELSEWHERE = {
    "coinbase": "coinbase/test_coinbase_codec.py",
    "bybit": "bybit/test_bybit_sequence.py",
}

SCENARIOS = [
    Scenario("binance", "NKN-USDT", "NKNUSDT", 0, _binance_snapshot, _BINANCE[1], _BINANCE[2], True,
             gap=(499869753, 499869754)),
    Scenario("kraken", "BTC-USD", "BTC/USD", 10, _kraken_snapshot, _KRAKEN_FIRST, _KRAKEN_SECOND, False),
    Scenario("okx", "BTC-USDT", "BTC-USDT", 0, _okx_snapshot, _OKX_FIRST, _OKX_SECOND, True, gap=(123457, 123470)),
    Scenario("kucoin", "BTC-USDT", "BTC-USDT", 0, _kucoin_snapshot, _KUCOIN_FIRST, _KUCOIN_SECOND, True,
             gap=(14103844, 14103847)),
]  # fmt: skip


def _live(scenario: Scenario) -> tuple[Codec, BookSync]:
    """A codec and a book sync for the scenario's symbol, live on its snapshot."""
    spec = get_spec(scenario.exchange)
    codec = spec.new_codec({scenario.native: scenario.symbol})
    sync = sync_for(spec, scenario.symbol, scenario.native, scenario.depth)
    out = sync.on_snapshot(scenario.snapshot(codec))
    assert [type(a) for a in out] == [BookSnapshot, BookStatus], out
    assert sync.state == "live"
    return codec, sync


def _delta(codec: Codec, frame: str) -> BookDelta:
    delta = _decode_one(codec, frame)
    assert isinstance(delta, BookDelta)
    return delta


def test_every_exchange_has_a_scenario() -> None:
    assert {s.exchange for s in SCENARIOS} | set(ELSEWHERE) == set(SPECS)
    assert all((Path(__file__).parent / path).is_file() for path in ELSEWHERE.values())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.exchange)
def test_a_duplicated_update_leaves_the_book_unchanged(scenario: Scenario) -> None:
    codec, sync = _live(scenario)
    first = _delta(codec, scenario.first)
    assert sync.on_delta(first) == [first]
    book = sync.book.depth()
    verified = sync.stats.checksums_verified

    again = sync.on_delta(_delta(codec, scenario.first))  # the same frame, decoded again

    assert sync.book.depth() == book
    assert sync.state == "live"
    assert (sync.stats.gaps, sync.stats.resyncs, sync.stats.checksum_failures) == (0, 0, 0)
    assert not any(isinstance(a, BookStatus | NeedSnapshot) for a in again)
    if scenario.ids:
        assert again == []  # recognised by its ids and dropped, not published twice
        assert sync.stats.deltas_dropped == 1
    else:
        assert again == [first]  # no ids: applied again, idempotently, and its checksum still holds
        assert sync.stats.checksums_verified == verified + 1
    # The chain goes on: the next update applies as if the copy had never come.
    second = _delta(codec, scenario.second)
    assert sync.on_delta(second) == [second]
    assert sync.state == "live"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.exchange)
def test_a_reordered_pair_is_detected_and_resynced(scenario: Scenario) -> None:
    codec, sync = _live(scenario)
    first, second = _delta(codec, scenario.first), _delta(codec, scenario.second)

    out = sync.on_delta(second)  # arrives before the update it follows

    assert len(out) == 2, out
    status, need = out
    assert isinstance(status, BookStatus) and isinstance(need, NeedSnapshot)
    assert need.native == scenario.native
    assert sync.state == "awaiting_snapshot"
    if scenario.ids:
        assert (status.state, need.reason, sync.stats.gaps) == ("gap", "gap", 1)
        assert (status.gap_from, status.gap_to) == scenario.gap
    else:
        assert (status.state, need.reason, sync.stats.checksum_failures) == ("resyncing", "checksum", 1)
    # The late one is not applied to a book that is no longer trusted.
    assert sync.on_delta(first) == []
    assert sync.state == "awaiting_snapshot"
