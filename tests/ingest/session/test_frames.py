"""A session's per-frame dispatch: each item of a frame goes where it belongs, with the real Binance
codec and book syncs."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ingest.book.sync import BookSync, NeedSnapshot, sync_for
from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, Event, Trade
from ingest.exchanges import get_spec
from ingest.session.arbiter import Arbiter
from ingest.session.frames import Frames, TradeOut

SPEC = get_spec("binance")
NATIVES = {"BTCUSDT": "BTC-USDT"}


class Routed:
    def __init__(self) -> None:
        self.deltas: list[tuple[int, BookDelta, BookSync]] = []
        self.trades: list[Trade] = []
        self.acts: list[tuple[BookSync, list[Event | NeedSnapshot]]] = []
        self.others: list[tuple[object, int]] = []
        self.errors: list[DecodeError] = []

    def frames(self, syncs: dict[str, BookSync]) -> Frames:
        return Frames(7, SPEC.new_codec(NATIVES), syncs, NATIVES, None, lambda s, d, y: self.deltas.append((s, d, y)),
                      self.trades.append, self.act, lambda item, n: self.others.append((item, n)),
                      self.errors.append)  # fmt: skip

    def act(self, sync: BookSync, actions: Sequence[Event | NeedSnapshot]) -> None:
        self.acts.append((sync, list(actions)))


def _depth(native: str, first: int, last: int, bids: list[list[str]]) -> bytes:
    data = {"e": "depthUpdate", "E": 1_700_000_000_000, "s": native, "U": first, "u": last, "b": bids, "a": []}
    return orjson.dumps({"stream": f"{native.lower()}@depth@100ms", "data": data})


def _trade(native: str, tid: int) -> bytes:
    data = {"e": "trade", "E": 1_700_000_000_000, "s": native, "t": tid, "p": "100.5", "q": "2", "T": 1_700_000_000_000,
            "m": True}  # fmt: skip
    return orjson.dumps({"stream": f"{native.lower()}@trade", "data": data})


def test_items_go_where_they_belong_and_frames_are_counted() -> None:
    sync = sync_for(SPEC, "BTC-USDT", "BTCUSDT")
    sync.on_snapshot(BookSnapshot("binance", "BTC-USDT", "BTCUSDT", (("100", "1"),), (("101", "1"),), 10, 0, 0))
    routed = Routed()
    frames = routed.frames({"BTCUSDT": sync})

    sent = [_depth("BTCUSDT", 11, 12, [["100", "3"]]), _depth("BTCUSDT", 20, 21, [["99", "1"]]),
            _trade("BTCUSDT", 5), _trade("ETHUSDT", 6), b'{"result":null,"id":1}', b"{not json"]  # fmt: skip
    frames.on_frame(sent[0], False)  # in sequence on a live book: straight to the feed
    [(session, delta, to)] = routed.deltas
    assert session == 7 and to is sync and delta.seq == 12 and delta.bids == (("100", "3"),)
    assert sync.book.bids.best() == ("100", "3")

    frames.on_frame(sent[1], False)  # a gap: the sync's actions go to act
    [(gapped, actions)] = routed.acts
    assert gapped is sync and any(isinstance(a, NeedSnapshot) for a in actions)

    frames.on_frame(sent[2], False)
    frames.on_frame(sent[3], False)  # not this connection's symbol: dropped
    assert [t.trade_id for t in routed.trades] == ["5"]

    frames.on_frame(sent[4], False)  # a reply: the session's to handle
    assert [n for _, n in routed.others] == [5]

    frames.on_frame(sent[5], False)
    assert len(routed.errors) == 1 and len(routed.deltas) == 1
    assert frames.count == 6
    assert frames.size == sum(len(f) for f in sent)
    assert frames.heard == {"BTCUSDT": 2}  # the frame count when the book last spoke


def test_a_book_without_a_sync_is_not_routed() -> None:
    routed = Routed()
    frames = routed.frames({})  # a trades-only session
    frames.on_frame(_depth("BTCUSDT", 1, 2, [["100", "1"]]), False)
    assert routed.deltas == [] and routed.acts == [] and routed.others == [] and frames.heard == {}


def _t(tid: str, native: str = "BTCUSDT") -> Trade:
    return Trade("binance", NATIVES.get(native, native), native, tid, "100.5", "2", "buy", 0, 0)


def _trade_out(contiguous: bool) -> tuple[TradeOut, list[Event], list[tuple[str, str]]]:
    """A `TradeOut`, what it published, and the (last, next) ids of the holes it handed over."""
    published: list[Event] = []
    gaps: list[tuple[str, str]] = []
    out = TradeOut(
        Arbiter(SPEC.sequence_rule), contiguous, published.append, lambda a, b: gaps.append((a.trade_id, b.trade_id))
    )
    return out, published, gaps


def test_trades_go_out_once_in_id_order_and_a_hole_goes_to_the_backfill() -> None:
    out, published, gaps = _trade_out(contiguous=True)

    for tid in ("5", "6", "6", "4", "7"):  # a second copy (the arbiter's) and a late one (id order) are dropped
        out.trade(_t(tid))
    assert [e.trade_id for e in published if isinstance(e, Trade)] == ["5", "6", "7"]
    assert out.last["BTCUSDT"].trade_id == "7"

    out.trade(_t("10"))  # 8 and 9 are missing: the backfill is asked for them, and later trades wait
    out.trade(_t("11"))
    out.trade(_t("3", "ETHUSDT"))  # another symbol goes on
    assert gaps == [("7", "10")]
    assert [t.trade_id for t in out.held["BTCUSDT"]] == ["10", "11"]
    assert [e.trade_id for e in published if isinstance(e, Trade)] == ["5", "6", "7", "3"]


def test_where_ids_skip_only_an_uncovered_spell_goes_to_the_backfill() -> None:
    out, published, gaps = _trade_out(contiguous=False)
    out.trade(_t("5"))
    out.trade(_t("9"))  # ids that skip are normal here
    out.uncovered.add("BTCUSDT")
    out.trade(_t("12"))  # but after a spell no session carried the symbol, the hole is looked into
    assert [e.trade_id for e in published if isinstance(e, Trade)] == ["5", "9"]
    assert gaps == [("9", "12")] and not out.uncovered
