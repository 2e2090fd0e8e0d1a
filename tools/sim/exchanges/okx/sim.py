"""OKX v5 public WebSocket, simulated: the wire protocol of ``/work/shared/protocols.md`` section C on
the market model.

Paths (below the venue prefix ``/okx``): ``GET /ws/v5/public``, OKX's public endpoint, and ``GET /okx``
itself (the same endpoint, so the simulator's generic ``ws_url`` works as a feed's URL unchanged).

- Requests ``{"id":..,"op":"subscribe"|"unsubscribe","args":[{"channel":..,"instId":..},..]}``; every
  arg is acknowledged on its own (``{"id":..,"event":"subscribe","arg":{..},"connId":..}``). A request
  with any bad arg changes nothing and gets one ``{"event":"error","code":"60018",..}``
  ("doesn't exist"); a malformed one ``60012`` ("Invalid request"). The literal text ``ping`` is
  answered with the literal text ``pong``.
- ``books``: on subscribe, a snapshot of the whole simulated book (the model keeps ``levels`` per
  side, trimming with deletes as OKX does at its 400-level window) with ``prevSeqId`` -1; then one
  update per clock tick in which the symbol changed, holding that tick's changes (each price once,
  its final size; ``"0"`` deletes). Levels are ``[px, sz, "0", numOrders]``. ``seqId`` is the model's
  update id of the tick's last change (minus the offset of any maintenance reset), so seqIds jump by
  the number of changes a message aggregates and ``prevSeqId`` is the previous message's ``seqId``.
  A symbol without a book message on a connection for ``keepalive_interval`` gets a keep-alive
  update (no levels, ``seqId == prevSeqId``). With ``reset_interval`` set, each symbol's chain is
  reset now and then: an update whose ``seqId`` is below its ``prevSeqId``. ``checksum`` is 0 (OKX's
  live value since the deprecation) unless the ``checksum`` option asks for real ones.
- ``trades``: one push per trade, one element (``count`` "1", ``source`` "0", ``side`` the taker's).
  With ``aggregate_trades``, consecutive fills of one tick at the same price and side go out as one
  element: ``tradeId`` the last fill's id, ``count`` the fills, ``sz`` their total. The truth log still
  lists every fill, so a run verified trade by trade must leave this off (the default).
- REST ``GET /api/v5/market/history-trades?instId=BTC-USDT&type=1&after=<tradeId>&before=<tradeId>&limit=N``
  (OKX's "Get trades history"), from the venue's recent trade history (`Venue.trades`; the *forget*
  fault empties it): ``after`` asks for trades older than that tradeId, ``before`` for newer ones
  (``type=2``: both are millisecond times instead), newest first, at most ``limit`` (default and
  maximum 100): the newest of the range, or with only ``before`` the oldest above it. Rows are
  ``{"instId","side","sz","px","tradeId","ts","source":"0"}``, one per fill (as the truth log lists
  them, whatever ``aggregate_trades`` says), ``side`` the taker's, in ``{"code":"0","msg":"","data":
  [..]}``. An instId not simulated gets ``{"code":"51001","msg":"Instrument ID doesn't exist.",
  "data":[]}``, a malformed parameter ``{"code":"51000","msg":"Parameter <name> error","data":[]}``
  (HTTP 200 both).
- The 30-second rule: a connection that sends no ``ping`` and is sent no data for ``idle_timeout``
  seconds is dropped (TCP closed, no close frame), subscribed or not. The venue's generic WebSocket
  pings still run; clients answer those without seeing them.

Faults: *notice* sends ``{"event":"notice","code":"64008",..}`` (the venue closes the connection a
little later). *skip* leaves the changes of the next ``count`` update ids of a symbol out of the wire; the
chain still counts them, so the next update's ``prevSeqId`` names a ``seqId`` no client saw. *chain*
breaks the chain without losing anything: the next ``count`` updates of a symbol carry a
``prevSeqId`` that is not the previous update's ``seqId``, their changes intact. *corrupt* sends a
wrong non-zero checksum in the next ``count`` updates of a symbol (whether checksums are on or not).
Drop and stall are the venue's.

Options (`Venue.options`): ``checksum`` (bool, False), ``aggregate_trades`` (bool, False),
``idle_timeout`` (s, 30), ``keepalive_interval`` (s, 60, OKX's "about 60 s without book changes"),
``reset_interval`` (s, 0: never).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tools.sim.exchanges.okx.history import history_trades
from tools.sim.exchanges.okx.options import check_options
from tools.sim.exchanges.okx.wire import CHECKSUM_LEVELS, Level, checksum, units, wire_level
from tools.sim.market import MarketEvent, fmt8
from tools.sim.venue import Connection, Venue

log = logging.getLogger(__name__)

CHANNELS = ("books", "trades")
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


class _RequestError(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(slots=True)
class _Chain:
    """One symbol's seqId chain. ``seq`` is the seqId of the last update, sent or (skip) left out."""

    seq: int
    rng: random.Random
    offset: int = 0  # seqId = market update id - offset; a maintenance reset raises it
    skip: int = 0
    broken: int = 0  # updates still to send with a wrong prevSeqId
    corrupt: int = 0
    next_reset: float = 0.0


@dataclass(slots=True)
class _Client:
    conn_id: str
    active: float  # the last ping received or data queued (the 30-second rule)
    books: dict[str, float] = field(default_factory=dict)  # instId -> last book message queued
    muted: set[str] = field(default_factory=set)  # books the mute fault silenced until resubscribed


class OkxSim:
    """The OKX protocol for one `Venue`; see the module docstring."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.options = check_options(venue.options)
        now = time.monotonic()
        self._chains: dict[str, _Chain] = {}
        for symbol, market in venue.markets.items():
            seed = hashlib.sha256(f"okx:{symbol}".encode()).digest()
            self._chains[symbol] = _Chain(
                seq=market.update_id,
                rng=random.Random(int.from_bytes(seed[:8], "big")),
                next_reset=now + self.options["reset_interval"],
            )
        self._clients: dict[int, _Client] = {}
        self.skipped: dict[str, int] = {}
        self.chains_broken: dict[str, int] = {}
        self.corrupted: dict[str, int] = {}
        self.resets: dict[str, int] = {}
        self.keepalives = 0
        self.pings = 0
        self.idle_drops = 0
        self.notices = 0

    # -- ExchangeSim -----------------------------------------------------------------------------

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [
            web.get(f"{prefix}/ws/v5/public", self._serve),
            web.get(prefix, self._serve),
            web.get(f"{prefix}/api/v5/market/history-trades", functools.partial(history_trades, self.venue)),
        ]

    def skip(self, symbol: str, count: int) -> None:
        self._chains[symbol].skip += count

    def chain(self, symbol: str, count: int) -> None:
        """The chain fault: the next ``count`` book updates of ``symbol`` name a wrong ``prevSeqId``."""
        self._chains[symbol].broken += count

    def corrupt(self, symbol: str, count: int) -> None:
        """The corrupt fault: the next ``count`` book updates of ``symbol`` carry a wrong checksum."""
        self._chains[symbol].corrupt += count

    def mute(self, conn: Connection, symbol: str) -> None:
        """The mute fault: the symbol's book (keep-alives too) goes silent on this connection until
        it is resubscribed."""
        client = self._clients.get(conn.id)
        if client is not None:
            client.muted.add(symbol)

    def announce_close(self, conn: Connection) -> None:
        """The notice OKX sends about 60 s before it closes a connection for a service upgrade."""
        client = self._clients.get(conn.id)
        notice = {
            "event": "notice",
            "code": "64008",
            "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
            "connId": client.conn_id if client else f"{conn.id:08x}",
        }
        conn.send(orjson.dumps(notice).decode())
        self.notices += 1

    def status(self) -> dict[str, Any]:
        return {
            "notices": self.notices,
            "book_faults": ["skip", "chain", "corrupt"],  # what `ingest run --simulate --faults` may fire
            "skipped": dict(self.skipped),
            "skip_pending": {s: c.skip for s, c in self._chains.items() if c.skip},
            "chains_broken": dict(self.chains_broken),
            "chain_pending": {s: c.broken for s, c in self._chains.items() if c.broken},
            "corrupted": dict(self.corrupted),
            "corrupt_pending": {s: c.corrupt for s, c in self._chains.items() if c.corrupt},
            "resets": dict(self.resets),
            "seq_ids": {s: c.seq for s, c in self._chains.items()},
            "keepalives": self.keepalives,
            "pings": self.pings,
            "idle_drops": self.idle_drops,
            "options": dict(self.options),
        }

    def publish(self, ts_ns: int, events: Mapping[str, Sequence[MarketEvent]]) -> None:
        ms = str(ts_ns // 1_000_000)
        books: dict[str, str] = {}
        trades: dict[str, list[str]] = {}
        for symbol, evs in events.items():
            update = self._book_update(symbol, evs, ms)
            if update is not None:
                books[symbol] = update
            pushes = self._trades(symbol, evs)
            if pushes:
                trades[symbol] = pushes
        now = time.monotonic()
        for conn in list(self.venue.connections):
            client = self._clients.get(conn.id)
            if client is None:
                continue
            for symbol, text in books.items():
                if f"books:{symbol}" in conn.subs and symbol not in client.muted:
                    self._send(conn, client, text)
                    client.books[symbol] = now
            for symbol, texts in trades.items():
                if f"trades:{symbol}" in conn.subs:
                    for text in texts:
                        self._send(conn, client, text)

    # -- books -----------------------------------------------------------------------------------

    def _book_update(self, symbol: str, evs: Sequence[MarketEvent], ms: str) -> str | None:
        chain = self._chains[symbol]
        if chain.skip:
            n = min(chain.skip, len(evs))
            # The market made these changes and the chain counts them; no client will see them.
            chain.seq = evs[n - 1].update_id - chain.offset
            chain.skip -= n
            self.skipped[symbol] = self.skipped.get(symbol, 0) + n
            evs = evs[n:]
        if not evs:
            return None
        prev = chain.seq
        if self.options["reset_interval"] and time.monotonic() >= chain.next_reset and prev > 0:
            # Maintenance: the chain restarts below where it was (prevSeqId still the last seqId).
            chain.offset = evs[-1].update_id - chain.rng.randrange(prev)
            chain.next_reset = time.monotonic() + self.options["reset_interval"]
            self.resets[symbol] = self.resets.get(symbol, 0) + 1
        chain.seq = evs[-1].update_id - chain.offset
        bids: dict[str, str] = {}
        asks: dict[str, str] = {}
        for ev in evs:
            bids.update(ev.bids)
            asks.update(ev.asks)
        if chain.broken:
            chain.broken -= 1
            self.chains_broken[symbol] = self.chains_broken.get(symbol, 0) + 1
            prev += 1  # a seqId no message had: not the one a client holds
        crc = self._checksum(symbol)
        if chain.corrupt:
            chain.corrupt -= 1
            self.corrupted[symbol] = self.corrupted.get(symbol, 0) + 1
            crc = crc ^ 1 if crc not in (0, 1) else 2
        return self._books_push(symbol, "update", list(bids.items()), list(asks.items()), ms, crc, prev, chain.seq)

    def _snapshot(self, symbol: str) -> str:
        bids, asks = self.venue.markets[symbol].book()
        ms = str(time.time_ns() // 1_000_000)
        return self._books_push(
            symbol, "snapshot", bids, asks, ms, self._checksum(symbol), -1, self._chains[symbol].seq
        )

    def _keepalive(self, symbol: str) -> str:
        seq = self._chains[symbol].seq
        ms = str(time.time_ns() // 1_000_000)
        return self._books_push(symbol, "update", [], [], ms, self._checksum(symbol), seq, seq)

    def _checksum(self, symbol: str) -> int:
        if not self.options["checksum"]:
            return 0
        bids, asks = self.venue.markets[symbol].book(CHECKSUM_LEVELS)
        return checksum(bids, asks)

    @staticmethod
    def _books_push(
        symbol: str, action: str, bids: Sequence[Level], asks: Sequence[Level], ms: str, crc: int, prev: int, seq: int
    ) -> str:
        data = {
            "asks": [wire_level(lv) for lv in asks],
            "bids": [wire_level(lv) for lv in bids],
            "ts": ms,
            "checksum": crc,
            "prevSeqId": prev,
            "seqId": seq,
        }
        arg = {"channel": "books", "instId": symbol}
        return orjson.dumps({"arg": arg, "action": action, "data": [data]}).decode()

    # -- trades ----------------------------------------------------------------------------------

    def _trades(self, symbol: str, evs: Sequence[MarketEvent]) -> list[str]:
        """One push per trade, or per run of same-price same-side fills when aggregating."""
        elements: list[dict[str, Any]] = []
        adjacent = False  # the previous event was a trade (fills of one taker order are adjacent)
        for ev in evs:
            t = ev.trade
            if t is None:
                adjacent = False
                continue
            last = elements[-1] if elements else None
            if (
                self.options["aggregate_trades"]
                and adjacent
                and last is not None
                and (last["px"], last["side"]) == (t.price, t.side)
            ):
                last["tradeId"] = str(t.trade_id)
                last["count"] = str(int(last["count"]) + 1)
                last["sz"] = fmt8(units(last["sz"]) + units(t.qty))
            else:
                elements.append(
                    {
                        "instId": symbol,
                        "tradeId": str(t.trade_id),
                        "px": t.price,
                        "sz": t.qty,
                        "side": t.side,
                        "ts": str(ev.ts_ns // 1_000_000),
                        "count": "1",
                        "source": "0",
                        "seqId": self._chains[symbol].seq,
                    }
                )
            adjacent = True
        arg = {"channel": "trades", "instId": symbol}
        return [orjson.dumps({"arg": arg, "data": [e]}).decode() for e in elements]

    # -- WebSocket -------------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        conn = await self.venue.accept(request)
        client = _Client(conn_id=f"{conn.id:08x}", active=time.monotonic())
        self._clients[conn.id] = client
        try:
            await conn.run(self._on_text, self._watch(conn, client))
        finally:
            self._clients.pop(conn.id, None)
        return conn.ws

    async def _watch(self, conn: Connection, client: _Client) -> None:
        """The 30-second rule and the books' keep-alive updates, for one connection."""
        idle, keepalive = self.options["idle_timeout"], self.options["keepalive_interval"]
        step = max(0.005, min(idle, keepalive) / 10)
        while not conn.closed:
            await asyncio.sleep(step)
            now = time.monotonic()
            if conn.stalled:
                client.active = now  # a stalled server's silence is its own, not the client's
                continue
            if now - client.active >= idle:
                self.idle_drops += 1
                log.info("okx client %s: no ping and no data for %.1f s: closing", client.conn_id, idle)
                conn.abort()
                return
            for symbol, last in list(client.books.items()):
                if now - last >= keepalive and symbol not in client.muted:
                    self.keepalives += 1
                    self._send(conn, client, self._keepalive(symbol))
                    client.books[symbol] = now

    def _send(self, conn: Connection, client: _Client, text: str) -> None:
        conn.send(text)
        client.active = time.monotonic()

    def _on_text(self, conn: Connection, text: str) -> None:
        client = self._clients.get(conn.id)
        if client is None:
            return
        if text == "ping":
            self.pings += 1
            client.active = time.monotonic()
            if not conn.stalled:  # a stalled server answers nothing
                self._send(conn, client, "pong")
            return
        request_id: str | None = None
        try:
            try:
                req = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise _RequestError("60012", f"Invalid request: {text[:200]}") from None
            if not isinstance(req, dict):
                raise _RequestError("60012", f"Invalid request: {text[:200]}")
            raw_id = req.get("id")
            if raw_id is not None:
                if not (isinstance(raw_id, str) and _ID.match(raw_id)):
                    raise _RequestError("60012", f"Invalid request: {text[:200]}")
                request_id = raw_id
            self._request(conn, client, req, request_id, text)
        except _RequestError as exc:
            err: dict[str, Any] = {"event": "error", "code": exc.code, "msg": exc.msg, "connId": client.conn_id}
            self._send(conn, client, orjson.dumps(({"id": request_id} if request_id else {}) | err).decode())

    def _request(
        self, conn: Connection, client: _Client, req: dict[str, Any], request_id: str | None, text: str
    ) -> None:
        op, args = req.get("op"), req.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args:
            raise _RequestError("60012", f"Invalid request: {text[:200]}")
        pairs: list[tuple[str, str]] = []
        for arg in args:  # validate all before changing any
            if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str):
                raise _RequestError("60012", f"Invalid request: {text[:200]}")
            channel, inst = arg["channel"], arg.get("instId")
            if channel not in CHANNELS or not isinstance(inst, str) or inst not in self.venue.markets:
                raise _RequestError("60018", f"Wrong URL or channel:{channel},instId:{inst} doesn't exist")
            pairs.append((channel, inst))
        head = {"id": request_id} if request_id else {}
        for channel, inst in pairs:
            ack = head | {"event": op, "arg": {"channel": channel, "instId": inst}, "connId": client.conn_id}
            self._send(conn, client, orjson.dumps(ack).decode())
            key = f"{channel}:{inst}"
            if channel == "books":
                client.muted.discard(inst)
            if op == "unsubscribe":
                conn.subs.pop(key, None)
                if channel == "books":
                    client.books.pop(inst, None)
                continue
            self.venue.subscribe(conn, key, inst)
            if channel == "books":  # a subscribe (or a repeated one) always starts with a snapshot
                self._send(conn, client, self._snapshot(inst))
                client.books[inst] = time.monotonic()
