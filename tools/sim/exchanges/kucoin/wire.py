"""KuCoin's wire format for the simulator's market events and REST answers. Pure: no I/O, no clock.

- A level2 message aggregates one clock tick's events of a symbol: ``sequenceStart`` / ``sequenceEnd``
  are the first and last event's update id, every change carries its event's update id as its own
  sequence (all changes of one event share it), deletes are spelled ``"0"``. Each side is listed in
  price order (bids high to low, asks low to high), not in sequence order: a price changed twice in a
  tick appears twice, and only the per-change sequence says which came last, as KuCoin's own
  ``changes`` lists do. A message may carry a ``["0","0","<seq>"]`` no-op.
- A match message per trade: ``sequence`` is the trade id (the key the REST history shares),
  ``tradeId`` an ObjectId-like hex string derived from it, ``time`` nanoseconds as a string.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import orjson

from tools.sim.market import ZERO, MarketEvent, MarketTrade

Level = tuple[str, str]

OK = "200000"


def _price_key(change: list[str]) -> tuple[int, str]:
    # Prices share 8 decimals and have no leading zeros: (length, text) orders them numerically.
    return (len(change[0]), change[0])


def level2(symbol: str, evs: Sequence[MarketEvent], ms: int, rng: random.Random, noop_ratio: float) -> str:
    """One ``trade.l2update`` message for ``evs`` (at least one)."""
    bids: list[list[str]] = []
    asks: list[list[str]] = []
    for ev in evs:
        seq = str(ev.update_id)
        bids.extend([p, "0" if q == ZERO else q, seq] for p, q in ev.bids)
        asks.extend([p, "0" if q == ZERO else q, seq] for p, q in ev.asks)
    bids.sort(key=_price_key, reverse=True)
    asks.sort(key=_price_key)
    if noop_ratio and rng.random() < noop_ratio:
        side = bids if rng.random() < 0.5 else asks
        side.insert(rng.randrange(len(side) + 1), ["0", "0", str(rng.choice(evs).update_id)])
    data = {
        "changes": {"asks": asks, "bids": bids},
        "sequenceEnd": evs[-1].update_id,
        "sequenceStart": evs[0].update_id,
        "symbol": symbol,
        "time": ms,
    }
    return _message(f"/market/level2:{symbol}", "trade.l2update", data)


def trade_id_hex(trade_id: int) -> str:
    return f"{0x65A0_0000_0000_0000_0000_0000 + trade_id:024x}"


def match(symbol: str, trade: MarketTrade, ts_ns: int) -> str:
    data = {
        "makerOrderId": f"{0x65B0_0000_0000_0000_0000_0000 + 2 * trade.trade_id:024x}",
        "price": trade.price,
        "sequence": str(trade.trade_id),
        "side": trade.side,
        "size": trade.qty,
        "symbol": symbol,
        "takerOrderId": f"{0x65B0_0000_0000_0000_0000_0000 + 2 * trade.trade_id + 1:024x}",
        "time": str(ts_ns),
        "tradeId": trade_id_hex(trade.trade_id),
        "type": "match",
    }
    return _message(f"/market/match:{symbol}", "trade.l3match", data)


def _message(topic: str, subject: str, data: dict[str, Any]) -> str:
    return orjson.dumps({"type": "message", "topic": topic, "subject": subject, "data": data}).decode()


def control(kind: str, request_id: str) -> str:
    """``welcome``, ``pong``, ``ack``: ``{"id":..,"type":..}``."""
    return orjson.dumps({"id": request_id, "type": kind}).decode()


def error(request_id: str, code: int, text: str) -> str:
    return orjson.dumps({"id": request_id, "type": "error", "code": code, "data": text}).decode()


# -- REST --------------------------------------------------------------------------------------------


def ok(data: Any) -> bytes:
    return orjson.dumps({"code": OK, "data": data})


def refused(code: str, msg: str) -> bytes:
    return orjson.dumps({"code": code, "msg": msg})


def bullet(token: str, endpoint: str, ping_ms: int, timeout_ms: int) -> bytes:
    server = {
        "endpoint": endpoint,
        "encrypt": endpoint.startswith("wss://"),
        "protocol": "websocket",
        "pingInterval": ping_ms,
        "pingTimeout": timeout_ms,
    }
    return ok({"token": token, "instanceServers": [server]})


def snapshot(sequence: int, ms: int, bids: Sequence[Level], asks: Sequence[Level]) -> bytes:
    return ok({"time": ms, "sequence": str(sequence), "bids": list(bids), "asks": list(asks)})


def histories(trades: Sequence[tuple[MarketTrade, int]]) -> bytes:
    """Rows oldest first, as KuCoin's docs example lists them."""
    rows = [
        {"sequence": str(t.trade_id), "price": t.price, "size": t.qty, "side": t.side, "time": ts}
        for t, ts in trades
    ]
    return ok(rows)
