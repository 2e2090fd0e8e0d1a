"""KuCoin spot, simulated: the wire protocol of ``/work/shared/protocols.md`` section E' on the model.

Paths (below the venue prefix ``/kucoin``):

- ``POST /api/v1/bullet-public`` -> ``{"code":"200000","data":{"token":..,"instanceServers":[{"endpoint":
  "ws://<host>/kucoin/","protocol":"websocket","pingInterval":..,"pingTimeout":..}]}}``: a fresh token,
  good for one connection, for ``token_life`` seconds.
- ``GET /`` (WebSocket; also ``GET /kucoin``) ``?token=..&connectId=..``: an unknown, used or expired
  token gets ``{"id":<connectId>,"type":"error","code":401,"data":"token is invalid"}`` and a close;
  a good one ``{"id":<connectId>,"type":"welcome"}``. The server then closes the connection when its
  token is ``token_life`` seconds old (KuCoin ends connections after 24 h), and drops one that sent no
  ``ping`` for ``ping_interval + ping_timeout``. ``{"id":..,"type":"ping"}`` -> ``{"id":..,"type":
  "pong"}``; ``{"id":..,"type":"subscribe"|"unsubscribe","topic":"/market/level2:A,B"|"/market/match:
  A,B",..}`` -> ``{"id":..,"type":"ack"}`` when ``response`` is true; an unknown topic or symbol gets
  ``error`` 404, more than 100 symbols in a topic or a malformed request ``error`` 400, and changes
  nothing.
- ``GET /api/v1/market/orderbook/level2_100?symbol=`` (and ``level2_20``) -> the book's best 100 (20)
  levels a side with ``sequence`` = the model's update id, ``time`` in ms; ``GET /api/v1/market/
  histories?symbol=`` -> the last 100 trades, oldest first, from the venue's history (the *forget*
  fault empties it). An unknown symbol gets ``{"code":"400100","msg":..}`` (HTTP 200 both).

Messages (`tools.sim.exchanges.kucoin.wire`): one level2 message per symbol per clock tick with
``sequenceStart``/``sequenceEnd`` the tick's first/last update id (every change with its own sequence;
some messages carry ``["0","0","<seq>"]`` no-ops); one match message per trade with ``sequence`` = the
trade id. The model's books have ``[simulator] levels`` a side (50 by default), within the 100 of
the snapshot, so a client's book can equal the truth.

Faults: *mute* silences a symbol's level2 on a connection until the client subscribes it again.
*skip* leaves the changes of the next ``count`` update ids of a symbol out of the wire (the
next message's ``sequenceStart`` jumps past them; the REST snapshot has them). Token expiry is the
``token_life`` option (`tools.sim.exchanges.kucoin.options`). Drop, stall and garble are the venue's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tools.sim.exchanges.kucoin import wire
from tools.sim.exchanges.kucoin.options import check_options
from tools.sim.market import MarketEvent
from tools.sim.venue import Connection, Venue

log = logging.getLogger(__name__)

TOPICS = {"/market/level2": "level2", "/market/match": "match"}
SYMBOLS_PER_TOPIC = 100
HISTORY = 100
SNAPSHOT_DEPTHS = (20, 100)


@dataclass(slots=True)
class _Client:
    connect_id: str
    expires: float  # monotonic time its token runs out
    last_ping: float


class KucoinSim:
    """The KuCoin protocol for one `Venue`; see the module docstring."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.options = check_options(venue.options)
        self._tokens: dict[str, float] = {}  # unused token -> monotonic time issued
        self._clients: dict[int, _Client] = {}
        self._skip: dict[str, int] = {}
        self._muted: set[tuple[int, str]] = set()  # (connection id, subscription key) the mute fault silenced
        self._rngs = {s: random.Random(hashlib.sha256(f"kucoin:{s}".encode()).digest()) for s in venue.markets}
        self.skipped: dict[str, int] = {}
        self.tokens_issued = 0
        self.tokens_refused = 0
        self.token_expiries = 0
        self.pings = 0
        self.idle_drops = 0

    # -- ExchangeSim -----------------------------------------------------------------------------

    def routes(self, prefix: str) -> list[web.RouteDef]:
        routes = [
            web.post(f"{prefix}/api/v1/bullet-public", self._bullet),
            web.get(f"{prefix}/", self._serve),
            web.get(prefix, self._serve),
            web.get(f"{prefix}/api/v1/market/histories", self._histories),
        ]
        for depth in SNAPSHOT_DEPTHS:
            routes.append(web.get(f"{prefix}/api/v1/market/orderbook/level2_{depth}", self._snapshot_route(depth)))
        return routes

    def skip(self, symbol: str, count: int) -> None:
        self._skip[symbol] = self._skip.get(symbol, 0) + count

    def mute(self, conn: Connection, symbol: str) -> None:
        """The mute fault: the symbol's level2 goes silent on this connection, with nothing said, until
        it is subscribed again."""
        self._muted.add((conn.id, f"level2:{symbol}"))

    def status(self) -> dict[str, Any]:
        return {
            "book_faults": ["skip"],  # what `ingest run --simulate --faults` may fire
            "skipped": dict(self.skipped),
            "skip_pending": {s: n for s, n in self._skip.items() if n},
            "sequences": {s: m.update_id for s, m in self.venue.markets.items()},
            "tokens_issued": self.tokens_issued,
            "tokens_refused": self.tokens_refused,
            "token_expiries": self.token_expiries,
            "pings": self.pings,
            "idle_drops": self.idle_drops,
            "options": dict(self.options),
        }

    def publish(self, ts_ns: int, events: Mapping[str, Sequence[MarketEvent]]) -> None:
        ms = ts_ns // 1_000_000
        texts: dict[str, list[str]] = {}  # subscription key -> messages, in order
        for symbol, evs in events.items():
            update = self._level2(symbol, evs, ms)
            if update is not None:
                texts[f"level2:{symbol}"] = [update]
            matches = [wire.match(symbol, ev.trade, ev.ts_ns) for ev in evs if ev.trade is not None]
            if matches:
                texts[f"match:{symbol}"] = matches
        if not texts:
            return
        for conn in list(self.venue.connections):
            if conn.id not in self._clients:
                continue
            for key in conn.subs:
                if self._muted and (conn.id, key) in self._muted:
                    continue
                for text in texts.get(key, ()):
                    conn.send(text)

    def _level2(self, symbol: str, evs: Sequence[MarketEvent], ms: int) -> str | None:
        pending = self._skip.get(symbol, 0)
        if pending:
            n = min(pending, len(evs))
            evs = evs[n:]  # the market made these changes; the wire will never show them
            self._skip[symbol] = pending - n
            self.skipped[symbol] = self.skipped.get(symbol, 0) + n
        if not evs:
            return None
        return wire.level2(symbol, evs, ms, self._rngs[symbol], self.options["noop_ratio"])

    # -- REST ------------------------------------------------------------------------------------

    async def _bullet(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        life = self.options["token_life"]
        self._tokens = {t: at for t, at in self._tokens.items() if now - at < life}  # bounded by the life
        token = secrets.token_urlsafe(48)
        self._tokens[token] = now
        self.tokens_issued += 1
        scheme = "wss" if request.secure else "ws"
        prefix = f"/{self.venue.name}"
        body = wire.bullet(
            token,
            f"{scheme}://{request.host}{prefix}/",
            round(self.options["ping_interval"] * 1000),
            round(self.options["ping_timeout"] * 1000),
        )
        return _json(body)

    def _snapshot_route(self, depth: int) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def snapshot(request: web.Request) -> web.Response:
            symbol = request.query.get("symbol", "")
            market = self.venue.markets.get(symbol)
            if market is None:
                return _json(wire.refused("400100", "symbol invalid"))
            # No await between reading the sequence and the book: they describe the same instant.
            bids, asks = market.book(depth)
            return _json(wire.snapshot(market.update_id, time.time_ns() // 1_000_000, bids, asks))

        return snapshot

    async def _histories(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        if symbol not in self.venue.markets:
            return _json(wire.refused("400100", "symbol invalid"))
        return _json(wire.histories(self.venue.history(symbol, None, HISTORY)))

    # -- WebSocket -------------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        connect_id = request.query.get("connectId", "")[:64] or secrets.token_hex(6)
        conn = await self.venue.accept(request)
        now = time.monotonic()
        issued = self._tokens.pop(token, None)  # a token is good for one connection
        if issued is None or now - issued >= self.options["token_life"]:
            self.tokens_refused += 1
            self.venue.connections.discard(conn)
            conn.closed = True
            with contextlib.suppress(Exception):  # no writer task runs yet: this is the only writer
                await conn.ws.send_str(wire.error(connect_id, 401, "token is invalid"))
                await asyncio.wait_for(conn.ws.close(code=4001, message=b"token is invalid"), 1.0)
            return conn.ws
        client = _Client(connect_id, expires=issued + self.options["token_life"], last_ping=now)
        self._clients[conn.id] = client
        conn.send(wire.control("welcome", connect_id))
        try:
            await conn.run(self._on_text, self._watch(conn, client))
        finally:
            self._clients.pop(conn.id, None)
            self._muted = {m for m in self._muted if m[0] != conn.id}
        return conn.ws

    async def _watch(self, conn: Connection, client: _Client) -> None:
        """Token expiry and the ping rule, for one connection."""
        silence = self.options["ping_interval"] + self.options["ping_timeout"]
        step = max(0.005, min(silence / 10, 0.25))
        while not conn.closed:
            await asyncio.sleep(min(step, max(0.0, client.expires - time.monotonic())))
            now = time.monotonic()
            if now >= client.expires:
                self.token_expiries += 1
                log.info("kucoin client %s: token expired: closing", client.connect_id)
                await conn.close()
                return
            if conn.stalled:
                client.last_ping = now  # a stalled server's silence is its own, not the client's
                continue
            if now - client.last_ping >= silence:
                self.idle_drops += 1
                log.info("kucoin client %s: no ping for %.1f s: closing", client.connect_id, silence)
                conn.abort()
                return

    def _on_text(self, conn: Connection, text: str) -> None:
        client = self._clients.get(conn.id)
        if client is None:
            return
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            req = None
        if not isinstance(req, dict):
            conn.send(wire.error("", 400, "malformed request"))
            return
        raw_id = req.get("id")
        request_id = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else ""
        kind = req.get("type")
        if kind == "ping":
            self.pings += 1
            client.last_ping = time.monotonic()
            if not conn.stalled:  # a stalled server answers nothing
                conn.send(wire.control("pong", request_id))
            return
        if kind not in ("subscribe", "unsubscribe"):
            conn.send(wire.error(request_id, 400, f"unknown type {str(kind)[:40]!r}"))
            return
        error = self._subscription(conn, kind, req.get("topic"))
        if error is not None:
            conn.send(wire.error(request_id, *error))
        elif req.get("response") is True:
            conn.send(wire.control("ack", request_id))

    def _subscription(self, conn: Connection, kind: str, topic: Any) -> tuple[int, str] | None:
        """Apply a (un)subscribe; the error (code, text) if it is refused (then nothing changed)."""
        if not isinstance(topic, str):
            return 400, "topic is required"
        prefix, _, names = topic.partition(":")
        channel = TOPICS.get(prefix)
        symbols = names.split(",") if names else []
        if channel is None or not symbols:
            return 404, f"topic {topic[:100]} is not found"
        if len(symbols) > SYMBOLS_PER_TOPIC:
            return 400, f"exceed max subscription count limitation of {SYMBOLS_PER_TOPIC} per topic"
        unknown = [s for s in symbols if s not in self.venue.markets]
        if unknown:
            return 404, f"topic {prefix}:{unknown[0][:40]} is not found"
        for symbol in symbols:
            key = f"{channel}:{symbol}"
            self._muted.discard((conn.id, key))
            if kind == "subscribe":
                self.venue.subscribe(conn, key, symbol)
            else:
                conn.subs.pop(key, None)
        return None


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")
