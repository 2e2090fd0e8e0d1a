"""The pre-built market: the live model's events and frames, made ahead; the view at a position."""

from __future__ import annotations

import orjson

from tools.sim.exchanges.binance import BinanceFrames
from tools.sim.market import SymbolMarket
from tools.sim.prebuilt import TIME, PrebuiltMarket, build, stamp

SYMBOLS = ["BTC-USDT", "ETH-USDT"]
SEED, LEVELS, RATIO = 7, 15, 0.3


def _build(rate: float, messages: int, trade_stream: str = "trade") -> PrebuiltMarket:
    return build(BinanceFrames(trade_stream), SYMBOLS, seed=SEED, levels=LEVELS, trade_ratio=RATIO, rate=rate,
                 messages=messages)  # fmt: skip


def _live(symbol: str) -> SymbolMarket:
    return SymbolMarket(symbol, SEED, LEVELS, RATIO)


def test_frames_are_the_live_models_events_one_depth_message_per_tick_and_symbol() -> None:
    store = _build(rate=250.0, messages=400)  # 2.5 events per 10 ms tick: 2 or 3 per depth message
    assert len(store.payloads) >= 400
    for i, symbol in enumerate(SYMBOLS):
        market = _live(symbol)
        depth = [orjson.loads(store.payloads[p]) for p in store.views[symbol].depth_at]
        trades = [orjson.loads(store.payloads[p]) for p in store.views[symbol].trades_at]
        assert all(store.stream_of[p] == 2 * i for p in store.views[symbol].depth_at)
        assert all(store.stream_of[p] == 2 * i + 1 for p in store.views[symbol].trades_at)
        first_trade = market.next_trade_id
        sizes = [d["u"] - d["U"] + 1 for d in depth]
        assert set(sizes) == {2, 3} and sizes[:4] == [2, 3, 2, 3]  # the live clock's fractional carry
        for d in depth:
            events = [market.step(0) for _ in range(d["u"] - d["U"] + 1)]
            assert d["U"] == events[0].update_id and d["u"] == events[-1].update_id
            bids = dict(b for ev in events for b in ev.bids)
            asks = dict(a for ev in events for a in ev.asks)
            assert dict(d["b"]) == bids and dict(d["a"]) == asks
            assert d["E"] == TIME and d["s"] == symbol.replace("-", "")
        assert [t["t"] for t in trades] == list(range(first_trade, market.next_trade_id))
        assert all(t["E"] == t["T"] == TIME for t in trades)


def test_the_view_is_the_market_at_the_position_sent() -> None:
    store = _build(rate=100.0, messages=600)
    view = store.views["ETH-USDT"]
    market = _live("ETH-USDT")
    start_book, start_trade = market.book(), market.next_trade_id
    assert view.book() == start_book and view.update_id == market.update_id
    for k in (5, 40, len(view.depth_at)):  # after the k-th depth message of the symbol
        store.sent = view.depth_at[k - 1] + 1
        while market.update_id < orjson.loads(store.payloads[view.depth_at[k - 1]])["u"]:
            market.step(0)
        assert view.update_id == market.update_id
        assert view.book() == market.book() and view.book(3) == market.book(3)
        assert view.next_trade_id == market.next_trade_id == view.last_trade_id + 1
    assert view.next_trade_id > start_trade


def test_aggtrade_frames_and_the_send_time() -> None:
    store = _build(rate=100.0, messages=100, trade_stream="aggTrade")
    fmt = BinanceFrames("aggTrade")
    assert fmt.streams("BTC-USDT") == (("btcusdt@depth@100ms", "btcusdt@depth"), ("btcusdt@aggTrade",))
    p = store.payloads[store.views["BTC-USDT"].trades_at[0]]
    out = orjson.loads(stamp(p, b":1700000000123"))
    assert out["e"] == "aggTrade" and out["E"] == out["T"] == 1700000000123 and out["a"] == out["f"] == out["l"]
    trade = fmt.read_trade(p)
    assert (trade.trade_id, trade.price, trade.qty) == (out["a"], out["p"], out["q"])
    assert trade.side == ("sell" if out["m"] else "buy")
