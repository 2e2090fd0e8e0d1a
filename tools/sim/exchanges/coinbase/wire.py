"""Coinbase Advanced Trade messages as the simulator writes them (protocols.md D). Pure: builders of
JSON text from the market model's values; no sockets, no clock (times are arguments, integer ns).

- Envelope: ``{"channel","client_id":"","timestamp","sequence_num","events"}``, ``timestamp`` RFC 3339
  with nanoseconds (``2023-02-09T20:32:50.714964855Z``); level and trade times with microseconds.
- ``level2`` arrives as channel ``l2_data``; sides ``bid``/``offer``; ``new_quantity`` absolute, ``"0"``
  for a removed level; a snapshot's ``event_time`` is the epoch placeholder.
- ``market_trades`` ``side`` is the *maker's* side (the resting order's): the model's taker ``buy``
  goes out as ``SELL``. This is the reading the client makes of real captures
  (`ingest.exchanges.coinbase.codec.SIDE_IS_MAKER`); a message's trades are listed newest first.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from tools.sim.market import MarketTrade

Level = tuple[str, str]
EPOCH = "1970-01-01T00:00:00Z"
MAKER_SIDE = {"buy": "SELL", "sell": "BUY"}  # taker side -> the maker side Coinbase names


def iso(ts_ns: int, digits: int = 6) -> str:
    """``1675974770714964855`` -> ``"2023-02-09T20:32:50.714964Z"`` (``digits`` of the second, 1..9)."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{f'{ns:09d}'[:digits]}Z"


def envelope(channel: str, seq: int, ts_ns: int, events: Sequence[dict[str, Any]]) -> str:
    return orjson.dumps(
        {"channel": channel, "client_id": "", "timestamp": iso(ts_ns, 9), "sequence_num": seq, "events": events}
    ).decode()


def quantity(qty: str) -> str:
    """The model's ``"0.00000000"`` deletes as Coinbase spells them: ``"0"``."""
    return "0" if not qty.strip("0.") else qty


def l2_updates(bids: Iterable[Level], asks: Iterable[Level], event_time: str) -> list[dict[str, str]]:
    out = [{"side": "bid", "event_time": event_time, "price_level": px, "new_quantity": quantity(q)} for px, q in bids]
    out.extend(
        {"side": "offer", "event_time": event_time, "price_level": px, "new_quantity": quantity(q)} for px, q in asks
    )
    return out


def l2_event(kind: str, product: str, updates: list[dict[str, str]]) -> dict[str, Any]:
    return {"type": kind, "product_id": product, "updates": updates}


def trade_row(product: str, trade: MarketTrade, ts_ns: int) -> dict[str, str]:
    return {
        "trade_id": str(trade.trade_id),
        "product_id": product,
        "price": trade.price,
        "size": trade.qty,
        "side": MAKER_SIDE[trade.side],
        "time": iso(ts_ns),
    }


def trades_event(kind: str, rows: list[dict[str, str]]) -> dict[str, Any]:
    """Rows newest first, as Coinbase lists them."""
    return {"type": kind, "trades": sorted(rows, key=lambda r: int(r["trade_id"]), reverse=True)}


def heartbeat_event(ts_ns: int, counter: int, uptime_s: float) -> dict[str, Any]:
    """``current_time`` in Go's ``time.Time`` format, the counter as a string (as the docs show)."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {"current_time": f"{when}.{ns:09d} +0000 UTC m=+{uptime_s:.9f}", "heartbeat_counter": str(counter)}


def subscriptions_event(subs: dict[str, list[str]]) -> dict[str, Any]:
    return {"subscriptions": {channel: products for channel, products in subs.items()}}


def error(message: str, reason: str) -> str:
    return orjson.dumps({"type": "error", "message": message, "reason": reason}).decode()
