"""Coinbase Advanced Trade market data, simulated: the protocol of ``/work/shared/protocols.md`` section
D on the market model.

Paths (below the venue prefix ``/coinbase``): ``GET /coinbase`` is the WebSocket endpoint (the real
one, ``wss://advanced-trade-ws.coinbase.com``, has no path either), and REST
``GET /coinbase/api/v3/brokerage/market/products/{product_id}/ticker`` (public market trades).

- Requests ``{"type":"subscribe"|"unsubscribe","product_ids":[..],"channel":..}``, **one channel per
  message** (``level2``, ``market_trades``, ``heartbeats``; ``product_ids`` optional for heartbeats;
  an empty or absent list unsubscribes the whole channel). A bad request changes nothing and gets
  ``{"type":"error","message":"Failed to subscribe","reason":..}`` (not an envelope: no
  ``sequence_num``); a good one is answered with a ``subscriptions`` message listing the
  connection's subscriptions. A connection that has not subscribed within ``subscribe_timeout``
  (5 s) is closed.
- Every envelope carries ``sequence_num``: one counter per connection across every channel, from 0,
  +1 a message (``sequence_scope = "channel"``: one counter per envelope ``channel`` instead, for
  testing a client set to that reading).
- ``level2`` (channel ``l2_data``): a subscribe (also a repeated one) sends a ``snapshot`` event of the
  whole simulated book, one message per product; then per clock tick one message holding an
  ``update`` event for every subscribed product that changed (each price once, its final size;
  ``"0"`` removes), several products per message.
- ``market_trades``: a subscribe sends one ``snapshot`` event with the ``snapshot_trades`` most recent
  trades of each product (only those since the product's first subscription, where the truth log
  starts, unless ``snapshot_older_trades``: the real exchange's snapshot holds older ones too, which a
  run verified trade by trade and bar by bar cannot account for); then per tick one ``update`` event
  with the tick's trades of every subscribed product, newest first. ``side`` is the maker's
  (`tools.sim.exchanges.coinbase.wire`).
- ``heartbeats``: every ``heartbeat_interval`` (1 s) with ``heartbeat_counter`` +1 each (a string).
- Idle close: a connection subscribed without ``heartbeats`` that is sent no ``level2`` or
  ``market_trades`` data for ``idle_close`` seconds (Coinbase: "most channels close within 60-90 s
  without updates"; 75 by default) is closed by the server (a close frame).
- REST public market trades from the venue's recent trade history (`Venue.trades`; the *forget*
  fault empties it): ``limit`` required (1..1000, else HTTP 400 ``INVALID_ARGUMENT``), optional
  ``start``/``end`` UNIX seconds with ``start <= time < end``, newest first:
  ``{"trades":[{trade_id, product_id, price, size, time, side, exchange}..],"best_bid","best_ask"}``.
  An unknown product is HTTP 404 ``NOT_FOUND``.

Faults: *mute* silences one product's ``level2`` on a connection until it is resubscribed (no
message, so no ``sequence_num`` is missed). *skip* leaves the changes of the next ``count`` market
events of a symbol out of the wire: each connection carrying that symbol's ``level2`` loses the
message that held them, so its ``sequence_num`` skips a value (the changes are really gone: only a
resync repairs the book). Drop, stall and garble are the venue's (garbled frames are no envelopes
and use no ``sequence_num``).

Options (`Venue.options`, validated by `check_options`): ``idle_close`` (s, 75), ``subscribe_timeout``
(s, 5), ``heartbeat_interval`` (s, 1), ``sequence_scope`` ("connection" | "channel"),
``snapshot_trades`` (trades in the market_trades snapshot, 50), ``snapshot_older_trades`` (false).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tools.sim.exchanges.coinbase import wire
from tools.sim.exchanges.coinbase.options import check_options
from tools.sim.market import MarketEvent
from tools.sim.venue import Connection, Venue

log = logging.getLogger(__name__)

CHANNELS = ("level2", "market_trades", "heartbeats")
WIRE_CHANNEL = {"level2": "l2_data", "market_trades": "market_trades", "heartbeats": "heartbeats"}
HISTORY_LIMIT = 1000


@dataclass(slots=True)
class _Client:
    opened: float
    counters: dict[str, int] = field(default_factory=dict)  # scope key -> next sequence_num
    heartbeats: bool = False
    heartbeat_counter: int = 0
    subscribed: bool = False  # any subscribe yet (the 5-second rule)
    last_data: float = 0.0  # the last level2/market_trades data queued (the idle close)
    holes: int = 0  # sequence_num values consumed by the skip fault
    muted: set[str] = field(default_factory=set)  # books the mute fault silenced until resubscribed


class _RequestError(Exception):
    pass


class CoinbaseSim:
    """The Coinbase protocol for one `Venue`; see the module docstring."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.options = check_options(venue.options)
        self._clients: dict[int, _Client] = {}
        self._skip: dict[str, int] = {}
        self._first_trade: dict[str, int] = {}  # product -> the first trade id after its first subscription
        self._started = time.monotonic()
        self.skipped: dict[str, int] = {}
        self.holes = 0
        self.heartbeats = 0
        self.idle_closes = 0
        self.subscribe_timeouts = 0

    # -- ExchangeSim -----------------------------------------------------------------------------

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [
            web.get(prefix, self._serve),
            web.get(f"{prefix}/api/v3/brokerage/market/products/{{product_id}}/ticker", self._market_trades),
        ]

    def skip(self, symbol: str, count: int) -> None:
        self._skip[symbol] = self._skip.get(symbol, 0) + count

    def mute(self, conn: Connection, symbol: str) -> None:
        """The mute fault: the symbol's level2 goes silent on this connection (no message, so no
        sequence_num either: a quiet book, not a lost message) until it is resubscribed."""
        client = self._clients.get(conn.id)
        if client is not None:
            client.muted.add(symbol)

    def status(self) -> dict[str, Any]:
        return {
            "book_faults": ["skip"],  # what `ingest run --simulate --faults` may fire
            "skipped": dict(self.skipped),
            "skip_pending": {s: n for s, n in self._skip.items() if n},
            "holes": self.holes,
            "heartbeats": self.heartbeats,
            "idle_closes": self.idle_closes,
            "subscribe_timeouts": self.subscribe_timeouts,
            "options": dict(self.options),
        }

    def publish(self, ts_ns: int, events: Mapping[str, Sequence[MarketEvent]]) -> None:
        l2: dict[str, dict[str, Any]] = {}  # product -> its update event
        lost: set[str] = set()  # products whose (first) changes of this tick are withheld
        trades: dict[str, list[dict[str, str]]] = {}
        for symbol, evs in events.items():
            n = min(self._skip.get(symbol, 0), len(evs))
            if n:
                # The market made these changes; the message carrying them is lost on every connection.
                self._skip[symbol] -= n
                self.skipped[symbol] = self.skipped.get(symbol, 0) + n
                lost.add(symbol)
            bids: dict[str, str] = {}
            asks: dict[str, str] = {}
            for ev in evs[n:]:
                bids.update(ev.bids)
                asks.update(ev.asks)
            if bids or asks:
                updates = wire.l2_updates(bids.items(), asks.items(), wire.iso(evs[-1].ts_ns))
                l2[symbol] = wire.l2_event("update", symbol, updates)
            rows = [wire.trade_row(symbol, ev.trade, ev.ts_ns) for ev in evs if ev.trade is not None]
            if rows:
                trades[symbol] = rows
        now = time.monotonic()
        for conn in list(self.venue.connections):
            client = self._clients.get(conn.id)
            if client is None or conn.closed:
                continue
            for symbol in lost:
                if f"level2:{symbol}" in conn.subs and symbol not in client.muted:
                    self._consume(client, "l2_data")
            books = [e for symbol, e in l2.items() if f"level2:{symbol}" in conn.subs and symbol not in client.muted]
            if books:
                self._send(conn, client, "l2_data", ts_ns, books)
                client.last_data = now
            rows = [r for symbol, rs in trades.items() if f"market_trades:{symbol}" in conn.subs for r in rs]
            if rows:
                self._send(conn, client, "market_trades", ts_ns, [wire.trades_event("update", rows)])
                client.last_data = now

    # -- sequence_num ----------------------------------------------------------------------------

    def _next_seq(self, client: _Client, channel: str) -> int:
        key = "" if self.options["sequence_scope"] == "connection" else channel
        seq = client.counters.get(key, 0)
        client.counters[key] = seq + 1
        return seq

    def _consume(self, client: _Client, channel: str) -> None:
        """A message that is never delivered: its sequence_num is used up."""
        self._next_seq(client, channel)
        client.holes += 1
        self.holes += 1

    def _send(self, conn: Connection, client: _Client, channel: str, ts_ns: int, events: list[dict[str, Any]]) -> None:
        conn.send(wire.envelope(channel, self._next_seq(client, channel), ts_ns, events))

    # -- WebSocket -------------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        conn = await self.venue.accept(request)
        client = _Client(opened=time.monotonic())
        self._clients[conn.id] = client
        try:
            await conn.run(self._on_text, self._heartbeats(conn, client), self._watch(conn, client))
        finally:
            self._clients.pop(conn.id, None)
        return conn.ws

    async def _heartbeats(self, conn: Connection, client: _Client) -> None:
        interval = self.options["heartbeat_interval"]
        while not conn.closed:
            await asyncio.sleep(interval)
            if client.heartbeats and not conn.closed:
                client.heartbeat_counter += 1
                self.heartbeats += 1
                uptime = time.monotonic() - self._started
                event = wire.heartbeat_event(time.time_ns(), client.heartbeat_counter, uptime)
                self._send(conn, client, "heartbeats", time.time_ns(), [event])

    async def _watch(self, conn: Connection, client: _Client) -> None:
        """The 5-second subscribe rule and the idle close, for one connection."""
        idle, deadline = self.options["idle_close"], self.options["subscribe_timeout"]
        step = max(0.005, min(idle, deadline) / 20)
        while not conn.closed:
            await asyncio.sleep(step)
            now = time.monotonic()
            if conn.stalled:  # a stalled server's silence is its own, not the client's
                client.last_data = now
                client.opened = now
                continue
            if not client.subscribed:
                if now - client.opened >= deadline:
                    self.subscribe_timeouts += 1
                    log.info("coinbase client %s: no subscribe within %.1f s: closing", conn.id, deadline)
                    await conn.close()
                    return
            elif not client.heartbeats and now - client.last_data >= idle:
                self.idle_closes += 1
                log.info("coinbase client %s: no heartbeats and no updates for %.1f s: closing", conn.id, idle)
                await conn.close()
                return

    def _on_text(self, conn: Connection, text: str) -> None:
        client = self._clients.get(conn.id)
        if client is None:
            return
        try:
            kind, channel, products = self._parse(text)
        except _RequestError as exc:
            conn.send(wire.error("Failed to subscribe", str(exc)))
            return
        client.subscribed = True
        if kind == "unsubscribe":
            self._unsubscribe(conn, client, channel, products)
            self._send_subscriptions(conn, client)
            return
        if channel == "level2":
            client.muted.difference_update(products)
        if channel == "heartbeats":
            client.heartbeats = True
            self._send_subscriptions(conn, client)
            return
        if not client.last_data:
            client.last_data = time.monotonic()
        for product in products:
            self._first_trade.setdefault(product, self.venue.markets[product].next_trade_id)
            self.venue.subscribe(conn, f"{channel}:{product}", product)
        self._send_subscriptions(conn, client)
        now_ns = time.time_ns()
        if channel == "level2":
            for product in products:
                self._send(conn, client, "l2_data", now_ns, [self._snapshot(product)])
        else:
            rows = [r for product in products for r in self._recent_trades(product)]
            self._send(conn, client, "market_trades", now_ns, [wire.trades_event("snapshot", rows)])
        client.last_data = time.monotonic()

    def _parse(self, text: str) -> tuple[str, str, list[str]]:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise _RequestError("malformed JSON") from None
        if not isinstance(req, dict):
            raise _RequestError("malformed JSON")
        kind, channel = req.get("type"), req.get("channel")
        if kind not in ("subscribe", "unsubscribe"):
            raise _RequestError(f"unknown type {str(kind)[:40]!r}")
        if "channels" in req or not isinstance(channel, str):
            raise _RequestError("one channel per message: a 'channel' string")
        if channel not in CHANNELS:
            raise _RequestError(f"unknown channel {channel[:40]!r}")
        products = req.get("product_ids", [])
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            raise _RequestError("product_ids must be a list of strings")
        unknown = [p for p in products if p not in self.venue.markets]
        if unknown:
            raise _RequestError(f"unknown product {unknown[0][:40]!r}")
        if kind == "subscribe" and channel != "heartbeats" and not products:
            raise _RequestError(f"no product_ids for {channel}")
        return kind, channel, products

    def _unsubscribe(self, conn: Connection, client: _Client, channel: str, products: list[str]) -> None:
        if channel == "heartbeats":
            client.heartbeats = False
            return
        prefix = f"{channel}:"
        for key in [k for k in conn.subs if k.startswith(prefix)]:
            if not products or key[len(prefix) :] in products:
                del conn.subs[key]

    def _send_subscriptions(self, conn: Connection, client: _Client) -> None:
        subs: dict[str, list[str]] = {}
        for key in conn.subs:
            channel, _, product = key.partition(":")
            subs.setdefault(channel, []).append(product)
        if client.heartbeats:
            subs["heartbeats"] = []
        self._send(conn, client, "subscriptions", time.time_ns(), [wire.subscriptions_event(subs)])

    def _snapshot(self, product: str) -> dict[str, Any]:
        bids, asks = self.venue.markets[product].book()
        return wire.l2_event("snapshot", product, wire.l2_updates(bids, asks, wire.EPOCH))

    def _recent_trades(self, product: str) -> list[dict[str, str]]:
        n = self.options["snapshot_trades"]
        first = 0 if self.options["snapshot_older_trades"] else self._first_trade[product]
        recent = [(t, ts) for t, ts in self.venue.trades[product] if t.trade_id >= first][-n:] if n else []
        return [wire.trade_row(product, t, ts) for t, ts in recent]

    # -- REST ------------------------------------------------------------------------------------

    async def _market_trades(self, request: web.Request) -> web.Response:
        product = request.match_info["product_id"]
        if product not in self.venue.markets:
            return _rest_error(404, "NOT_FOUND", "product not found")
        params: dict[str, int | None] = {}
        for name in ("limit", "start", "end"):
            raw = request.query.get(name)
            if raw is not None and not raw.isdigit():
                return _rest_error(400, "INVALID_ARGUMENT", f"invalid {name}")
            params[name] = None if raw is None else int(raw)
        limit, start, end = params["limit"], params["start"], params["end"]
        if limit is None or not 1 <= limit <= HISTORY_LIMIT:
            return _rest_error(400, "INVALID_ARGUMENT", f"limit must be 1..{HISTORY_LIMIT}")
        rows = [
            (t, ts)
            for t, ts in self.venue.trades[product]
            if (start is None or ts // 1_000_000_000 >= start) and (end is None or ts // 1_000_000_000 < end)
        ][-limit:]
        bids, asks = self.venue.markets[product].book(1)
        body = {
            "trades": [wire.trade_row(product, t, ts) | {"exchange": "coinbase"} for t, ts in reversed(rows)],
            "best_bid": bids[0][0] if bids else "0",
            "best_ask": asks[0][0] if asks else "0",
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def _rest_error(status: int, error: str, message: str) -> web.Response:
    body = {"error": error, "error_details": message, "message": message}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


SIM = CoinbaseSim
