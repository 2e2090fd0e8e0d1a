"""Bybit v5 public spot, simulated: the wire protocol of ``/work/shared/protocols.md`` section E on the
market model.

Paths (below the venue prefix ``/bybit``): ``GET /v5/public/spot``, Bybit's public spot WebSocket, and
``GET /bybit`` itself (the same endpoint, so the simulator's generic ``ws_url`` works unchanged).

- Requests ``{"op":"subscribe"|"unsubscribe"|"ping","args":[..],"req_id":..}``. A (un)subscribe
  request is answered with one ``{"success":true,"ret_msg":"subscribe","conn_id":..,"req_id":..,
  "op":"subscribe"}`` (``ret_msg`` ``""`` for unsubscribe); a request with more than 10 args, an
  unknown topic, or args that would take the connection past 21,000 characters changes nothing and
  gets ``"success":false`` with the reason in ``ret_msg``. ``ping`` is answered
  ``{"success":true,"ret_msg":"pong","conn_id":..,"req_id":..,"op":"ping"}`` (``req_id`` when given).
- ``orderbook.{depth}.{symbol}`` (``depth`` 1, 50, 200 or 1000): a snapshot on subscribe, then deltas
  (see `tools.sim.exchanges.bybit.books`: views, ``u``, the skip and restart faults). The truth log's
  final book is the top ``depth`` levels (`Venue.book_depth`).
- ``publicTrade.{symbol}``: one push per clock tick with that tick's trades of the symbol
  (``type`` ``snapshot``; elements ``{"T","s","S","v","p","i","BT","seq"}``, ``S`` the taker's side,
  ``i`` the model's trade id).
- REST ``GET /v5/market/recent-trade?category=spot&symbol=BTCUSDT&limit=N`` (Bybit's "Get Public
  Recent Trading History"): the newest ``limit`` (1-60, default 60; more is cut to 60) trades of the
  venue's history (`Venue.trades`; the *forget* fault empties it), newest first, as
  ``{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"execId","symbol","price","size",
  "side","time","isBlockTrade"}]},"retExtInfo":{},"time":..}``. A symbol not simulated gets
  ``retCode`` 10001 ``"Not supported symbols"``, another category 10001 ``"Illegal category"``, a bad
  ``limit`` 10001 ``"Invalid limit"`` (HTTP 200, as Bybit answers).
- Bybit cuts a connection that neither pings nor is sent data for 10 minutes: ``idle_timeout``.

Options (`Venue.options`): ``delete_outside`` (bool, True: deltas delete levels pushed out of the
depth), ``idle_timeout`` (s, 600).
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

from tools.sim.exchanges.bybit.books import SymbolBooks, book_topic, native
from tools.sim.market import MarketEvent
from tools.sim.options import Option, check, flag, seconds
from tools.sim.venue import Connection, Venue

log = logging.getLogger(__name__)

DEPTHS = (1, 50, 200, 1000)
MAX_ARGS = 10
MAX_ARGS_CHARS = 21_000
RECENT_LIMIT = 60
_OPTIONS = {"delete_outside": Option(True, flag), "idle_timeout": Option(600.0, seconds)}


def check_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; ``ValueError`` naming the first bad one."""
    return check("bybit", raw, _OPTIONS)


class _Refused(Exception):
    pass


@dataclass(slots=True)
class _Client:
    conn_id: str
    active: float  # the last ping received or data queued (the 10-minute rule)
    args_chars: int = 0
    books: dict[str, int] = field(default_factory=dict)  # symbol -> subscribed depth


class BybitSim:
    """The Bybit v5 public spot protocol for one `Venue`; see the module docstring."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.options = check_options(venue.options)
        self._books = {
            s: SymbolBooks(s, m, delete_outside=self.options["delete_outside"]) for s, m in venue.markets.items()
        }
        self._by_native = {native(s): s for s in venue.markets}
        self._clients: dict[int, _Client] = {}
        self.pings = 0
        self.idle_drops = 0

    # -- ExchangeSim -----------------------------------------------------------------------------

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [
            web.get(f"{prefix}/v5/public/spot", self._serve),
            web.get(prefix, self._serve),
            web.get(f"{prefix}/v5/market/recent-trade", self._recent_trade),
        ]

    def skip(self, symbol: str, count: int) -> None:
        self._books[symbol].skip += count

    def restart(self, symbol: str, count: int) -> None:
        """The restart fault: the symbol's book service restarts ``count`` times (one per tick with data)."""
        self._books[symbol].restart += count

    def status(self) -> dict[str, Any]:
        books = self._books.values()
        return {
            "book_faults": ["skip", "restart"],  # what `ingest run --simulate --faults` may fire
            "skipped": {b.symbol: b.skipped for b in books if b.skipped},
            "skip_pending": {b.symbol: b.skip for b in books if b.skip},
            "restarts": {b.symbol: b.restarts for b in books if b.restarts},
            "restart_pending": {b.symbol: b.restart for b in books if b.restart},
            "update_ids": {book_topic(d, b.symbol): v.u for b in books for d, v in b.views.items()},
            "pings": self.pings,
            "idle_drops": self.idle_drops,
            "options": dict(self.options),
        }

    def publish(self, ts_ns: int, events: Mapping[str, Sequence[MarketEvent]]) -> None:
        ms = ts_ns // 1_000_000
        books: dict[str, str] = {}  # topic -> message
        trades: dict[str, str] = {}
        for symbol, evs in events.items():
            for depth, book in self._books[symbol].tick(ms).items():
                books[book_topic(depth, symbol)] = book
            pushed = self._trades(symbol, evs, ms)
            if pushed is not None:
                trades[f"publicTrade.{native(symbol)}"] = pushed
        if not books and not trades:
            return
        for conn in list(self.venue.connections):
            client = self._clients.get(conn.id)
            if client is None:
                continue
            for topic in conn.subs:
                out = books.get(topic) or trades.get(topic)
                if out is not None:
                    self._send(conn, client, out)

    def _trades(self, symbol: str, evs: Sequence[MarketEvent], ms: int) -> str | None:
        rows = [
            {
                "T": ev.ts_ns // 1_000_000, "s": native(symbol), "S": "Buy" if t.side == "buy" else "Sell",
                "v": t.qty, "p": t.price, "i": str(t.trade_id), "BT": False, "seq": ev.update_id,
            }
            for ev in evs
            if (t := ev.trade) is not None
        ]  # fmt: skip
        if not rows:
            return None
        return orjson.dumps(
            {"topic": f"publicTrade.{native(symbol)}", "ts": ms, "type": "snapshot", "data": rows}
        ).decode()

    # -- REST ------------------------------------------------------------------------------------

    async def _recent_trade(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("category") != "spot":
            return _rest(10001, "Illegal category")
        symbol = self._by_native.get(q.get("symbol", ""))
        if symbol is None:
            return _rest(10001, "Not supported symbols")
        raw = q.get("limit", str(RECENT_LIMIT))
        if not raw.isdigit() or int(raw) < 1:
            return _rest(10001, "Invalid limit")
        limit = min(int(raw), RECENT_LIMIT)
        rows = [
            {
                "execId": str(t.trade_id), "symbol": native(symbol), "price": t.price, "size": t.qty,
                "side": "Buy" if t.side == "buy" else "Sell", "time": str(ts // 1_000_000), "isBlockTrade": False,
            }
            for t, ts in reversed(self.venue.history(symbol, None, limit))
        ]  # fmt: skip
        return _rest(0, "OK", {"category": "spot", "list": rows})

    # -- WebSocket -------------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        conn = await self.venue.accept(request)
        client = self._clients[conn.id] = _Client(conn_id=f"{conn.id:08x}-sim", active=time.monotonic())
        try:
            await conn.run(self._on_text, self._watch(conn, client))
        finally:
            self._clients.pop(conn.id, None)
        return conn.ws

    async def _watch(self, conn: Connection, client: _Client) -> None:
        """Bybit's rule: no ping and no data for ``idle_timeout`` and the connection is cut."""
        idle = self.options["idle_timeout"]
        while not conn.closed:
            await asyncio.sleep(max(0.005, idle / 10))
            now = time.monotonic()
            if conn.stalled:
                client.active = now  # a stalled server's silence is its own
            elif now - client.active >= idle:
                self.idle_drops += 1
                log.info("bybit client %s: no ping and no data for %.1f s: closing", client.conn_id, idle)
                conn.abort()
                return

    def _send(self, conn: Connection, client: _Client, text: str) -> None:
        conn.send(text)
        client.active = time.monotonic()

    def _on_text(self, conn: Connection, text: str) -> None:
        client = self._clients.get(conn.id)
        if client is None:
            return
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            req = None
        if not isinstance(req, dict):
            self._send(conn, client, self._answer("", None, False, f"error:invalid request: {text[:100]}"))
            return
        op, req_id = req.get("op"), req.get("req_id")
        req_id = req_id if isinstance(req_id, str) else None
        if op == "ping":
            self.pings += 1
            client.active = time.monotonic()
            if not conn.stalled:  # a stalled server answers nothing
                self._send(conn, client, self._answer("ping", req_id, True, "pong", client))
            return
        if op not in ("subscribe", "unsubscribe"):
            self._send(conn, client, self._answer(str(op)[:40], req_id, False, f"error:unknown op {op!r}", client))
            return
        try:
            topics = self._topics(req.get("args"), client, op == "subscribe")
        except _Refused as e:
            self._send(conn, client, self._answer(op, req_id, False, str(e), client))
            return
        self._send(conn, client, self._answer(op, req_id, True, "subscribe" if op == "subscribe" else "", client))
        for topic, symbol, depth in topics:
            if op == "unsubscribe":
                if conn.subs.pop(topic, None) is not None:
                    client.args_chars -= len(topic)
                continue
            if topic not in conn.subs:
                client.args_chars += len(topic)
            self.venue.subscribe(conn, topic, symbol)
            if depth:  # a subscribe always starts with a snapshot
                self.venue.book_depth[symbol] = depth
                self._send(conn, client, self._books[symbol].snapshot(depth, time.time_ns() // 1_000_000))

    def _topics(self, args: Any, client: _Client, subscribing: bool) -> list[tuple[str, str, int]]:
        """(topic, symbol, depth or 0) for every arg, or `_Refused` for the whole request."""
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            raise _Refused("error:args must be a list of topics")
        if len(args) > MAX_ARGS:
            raise _Refused(f"error:args size >{MAX_ARGS}")
        out: list[tuple[str, str, int]] = []
        for arg in args:
            parts = arg.split(".")
            symbol = self._by_native.get(parts[-1])
            is_book = len(parts) == 3 and parts[0] == "orderbook"
            depth = int(parts[1]) if is_book and parts[1].isascii() and parts[1].isdigit() else 0
            known = (len(parts) == 2 and parts[0] == "publicTrade") or depth in DEPTHS
            if symbol is None or not known:
                raise _Refused(f"error:handler not found,topic:{arg[:100]}")
            out.append((arg, symbol, depth))
        if subscribing and client.args_chars + sum(len(t) for t, _, _ in out) > MAX_ARGS_CHARS:
            raise _Refused(f"error:args exceed {MAX_ARGS_CHARS} characters on this connection")
        return out

    @staticmethod
    def _answer(op: str, req_id: str | None, success: bool, ret_msg: str, client: _Client | None = None) -> str:
        body: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": client.conn_id if client else ""}
        if req_id is not None:
            body["req_id"] = req_id
        body["op"] = op
        return orjson.dumps(body).decode()


def _rest(code: int, msg: str, result: dict[str, Any] | None = None) -> web.Response:
    body = {
        "retCode": code,
        "retMsg": msg,
        "result": result or {},
        "retExtInfo": {},
        "time": time.time_ns() // 1_000_000,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


SIM = BybitSim
