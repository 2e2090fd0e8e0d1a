"""Kraken Spot WebSocket v2, simulated: the wire protocol of ``/work/shared/protocols.md`` section B
on the market model.

Paths (below the venue prefix ``/kraken``): ``GET /kraken`` and ``GET /kraken/v2``, the v2 public
WebSocket. On connect the server sends a ``status`` message; requests
``{"method": "subscribe"|"unsubscribe"|"ping", "params": {..}, "req_id": n}`` are answered one
acknowledgement per symbol (``{"method":..,"result":{..},"success":true,"time_in":..,"time_out":..}``,
or ``"success":false`` with an ``error``), ``ping`` with ``pong``. Channels:

- ``instrument``: a snapshot of every simulated pair with ``price_precision`` and ``qty_precision``
  8, the market model's 8-decimal strings;
- ``book`` (``depth`` 10, 25, 100, 500 or 1000; default 10): a snapshot of the top ``depth`` levels,
  then one update per clock tick in which that window changed. Levels that leave the window because
  better ones entered are *not* deleted (the client truncates, as on Kraken); levels deleted by the
  market are sent with qty 0; levels that enter the window (new, or moving up into it) are sent
  with their quantity. Every snapshot and update carries the CRC32 checksum of the window's top 10
  levels. Prices and quantities are JSON numbers written digit for digit from the model's strings
  (``43210.12000000``), as Kraken writes numbers at full precision;
- ``trade`` (``snapshot`` default false): one update per clock tick with that tick's trades of the
  symbol (``side`` the taker's, ``ord_type`` ``market``); a snapshot holds up to the last 50;
- ``heartbeat``: ``{"channel":"heartbeat"}`` after a second with nothing else sent, once anything
  is subscribed.

REST (below the same prefix): ``GET /0/public/Trades?pair=XBTUSD&since=<time>&count=N`` (Kraken's
"Get Recent Trades"), from the venue's recent trade history (`Venue.trades`; the *forget* fault
empties it): the trades strictly after ``since`` (nanoseconds, or seconds when below 10^12; without
it the newest ``count``), oldest first, at most ``count`` (default and maximum 1000), as
``{"error":[],"result":{"<altname>":[[price, volume, time, "b"|"s", "m", "", trade_id], ..],
"last":"<ns>"}}``: price and volume the model's 8-decimal strings (the precision the ``instrument``
channel announces), ``time`` a JSON number of seconds with microseconds (the WebSocket timestamps'
precision), ``"b"``/``"s"`` the taker's side, ``trade_id`` the WebSocket's, ``last`` the newest
returned trade's time in ns (``since`` itself when none is). ``pair`` may be the v2 name
(``BTC/USD``), the altname (``XBTUSD``, legacy asset codes) or the plain concatenation (``BTCUSD``);
the result is keyed by the altname. A pair not simulated gets ``{"error":["EQuery:Unknown asset
pair"]}`` and a malformed ``since``/``count`` ``{"error":["EGeneral:Invalid arguments"]}``, with
HTTP 200 as Kraken answers.

Faults: *skip* leaves the next ``count`` updates of a symbol's book out (only updates that change the
top 10 levels count, so the checksum can reveal the loss; the market made the changes); *corrupt*
sends a wrong checksum in the next ``count`` updates of a symbol. The final book in the truth log is
the top ``depth`` levels of the market (`Venue.book_depth`), the book a Kraken client holds.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from tools.sim.market import MarketEvent, fmt8
from tools.sim.venue import Connection, Venue

Level = tuple[str, str]

DEPTHS = (10, 25, 100, 500, 1000)
DEFAULT_DEPTH = 10
PRECISION = 8  # the market model's strings have 8 decimals
CHECKSUM_LEVELS = 10
TRADE_SNAPSHOT = 50
HEARTBEAT_S = 1.0
HEARTBEAT = '{"channel":"heartbeat"}'
ZERO = "0.00000000"
TRADES_PAGE = 1000  # Kraken's largest ``count`` for /0/public/Trades
SECONDS_BELOW = 10**12  # a ``since`` below this is in seconds, above it in nanoseconds
LEGACY_ASSETS = {"BTC": "XBT", "DOGE": "XDG"}  # Kraken's REST altnames keep the legacy asset codes


def native(symbol: str) -> str:
    """``BTC-USD`` -> ``BTC/USD``."""
    return symbol.replace("-", "/")


def altname(symbol: str) -> str:
    """``BTC-USD`` -> ``XBTUSD``: the REST name, legacy asset codes and no separator."""
    base, _, quote = symbol.partition("-")
    return LEGACY_ASSETS.get(base, base) + LEGACY_ASSETS.get(quote, quote)


def rest_time(ts_ns: int) -> str:
    """Integer ns -> seconds with microseconds, ``1688669597.827736``, written as a JSON number."""
    return f"{ts_ns // 1_000_000_000}.{ts_ns % 1_000_000_000 // 1000:06d}"


def rfc3339(ts_ns: int) -> str:
    """Integer ns -> ``2023-10-06T17:35:55.440295Z`` (microseconds, as Kraken sends)."""
    seconds = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC)
    return f"{seconds:%Y-%m-%dT%H:%M:%S}.{ts_ns % 1_000_000_000 // 1000:06d}Z"


def checksum(bids: Sequence[Level], asks: Sequence[Level]) -> int:
    """Kraken's CRC32: top 10 asks then top 10 bids, price then qty, '.' removed, leading zeros off."""
    text = "".join(
        price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")
        for side in (asks, bids)
        for price, qty in side[:CHECKSUM_LEVELS]
    )
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def _levels_json(levels: Sequence[Level]) -> str:
    # The model's strings are plain decimals: valid JSON number literals, at full precision.
    return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels) + "]"


def _book_json(kind: str, symbol: str, bids: Sequence[Level], asks: Sequence[Level], crc: int, ts: str) -> str:
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":{orjson.dumps(symbol).decode()},'
        f'"bids":{_levels_json(bids)},"asks":{_levels_json(asks)},"checksum":{crc},"timestamp":"{ts}"}}]}}'
    )


class _RequestError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class _Client:
    """What one connection subscribed to."""

    books: dict[str, int] = field(default_factory=dict)  # canonical symbol -> depth
    trades: set[str] = field(default_factory=set)  # canonical symbols
    subscribed: bool = False  # anything at all: heartbeats flow
    last_sent: float = 0.0
    muted: set[str] = field(default_factory=set)  # books the mute fault silenced until resubscribed


@dataclass
class _View:
    """The top ``depth`` levels of a symbol's book as last sent (best first)."""

    bids: list[Level]
    asks: list[Level]


class KrakenSim:
    """The Kraken v2 protocol for one `Venue`; see the module docstring."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self._by_native = {native(s): s for s in venue.markets}
        # Every name the REST API accepts for a pair: v2 name, altname, plain concatenation.
        self._by_rest_name = {name: s for s in venue.markets for name in (native(s), altname(s), s.replace("-", ""))}
        self._clients: dict[int, _Client] = {}
        self._views: dict[str, dict[int, _View]] = {s: {} for s in venue.markets}  # symbol -> depth -> window
        self._recent: dict[str, deque[str]] = {s: deque(maxlen=TRADE_SNAPSHOT) for s in venue.markets}
        self._skip: dict[str, int] = {}
        self._corrupt: dict[str, int] = {}
        self.skipped: dict[str, int] = {}  # symbol -> updates left out so far
        self.corrupted: dict[str, int] = {}  # symbol -> updates sent with a wrong checksum so far

    # -- ExchangeSim -----------------------------------------------------------------------------

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [
            web.get(prefix, self._serve),
            web.get(f"{prefix}/v2", self._serve),
            web.get(f"{prefix}/0/public/Trades", self._recent_trades),
        ]

    def mute(self, conn: Connection, symbol: str) -> None:
        """The mute fault: the symbol's book goes silent on this connection until resubscribed."""
        client = self._clients.get(conn.id)
        if client is not None and symbol in client.books:
            client.muted.add(symbol)

    def skip(self, symbol: str, count: int) -> None:
        self._skip[symbol] = self._skip.get(symbol, 0) + count

    def corrupt(self, symbol: str, count: int) -> None:
        """The corrupt fault: the next ``count`` book updates of ``symbol`` carry a wrong checksum."""
        self._corrupt[symbol] = self._corrupt.get(symbol, 0) + count

    def status(self) -> dict[str, Any]:
        return {
            "skipped": dict(self.skipped),
            "skip_pending": {s: n for s, n in self._skip.items() if n},
            "corrupted": dict(self.corrupted),
            "corrupt_pending": {s: n for s, n in self._corrupt.items() if n},
        }

    def publish(self, ts_ns: int, events: Mapping[str, Sequence[MarketEvent]]) -> None:
        ts = rfc3339(ts_ns)
        books: dict[tuple[str, int], str] = {}  # (symbol, depth) -> update message
        trades: dict[str, str] = {}  # symbol -> trade message
        for symbol, evs in events.items():
            elements = [self._trade_json(symbol, ev) for ev in evs if ev.trade is not None]
            if elements:
                self._recent[symbol].extend(elements)
                trades[symbol] = f'{{"channel":"trade","type":"update","data":[{",".join(elements)}]}}'
            books.update(self._book_updates(symbol, ts))
        for conn in list(self.venue.connections):
            client = self._clients.get(conn.id)
            if client is None:
                continue
            for symbol, depth in client.books.items():
                text = books.get((symbol, depth))
                if text is not None and symbol not in client.muted:
                    self._send(conn, client, text)
            for symbol in client.trades:
                text = trades.get(symbol)
                if text is not None:
                    self._send(conn, client, text)

    # -- book windows ------------------------------------------------------------------------------

    def _book_updates(self, symbol: str, ts: str) -> dict[tuple[str, int], str]:
        """Advance every window of ``symbol`` to the market's book; the updates that changed one."""
        views = self._views[symbol]
        if not views:
            return {}
        full_bids, full_asks = self.venue.markets[symbol].book()
        # Per side: at a mid move a price leaves one side and appears on the other in one event.
        bids_alive, asks_alive = {p for p, _ in full_bids}, {p for p, _ in full_asks}
        changes: dict[int, tuple[list[Level], list[Level], bool]] = {}
        for depth, view in views.items():
            bids, asks = full_bids[:depth], full_asks[:depth]
            bid_changes, ask_changes = _diff(view.bids, bids, bids_alive), _diff(view.asks, asks, asks_alive)
            top_changed = view.bids[:CHECKSUM_LEVELS] != bids[:CHECKSUM_LEVELS] or (
                view.asks[:CHECKSUM_LEVELS] != asks[:CHECKSUM_LEVELS]
            )
            view.bids, view.asks = bids, asks
            if bid_changes or ask_changes:
                changes[depth] = (bid_changes, ask_changes, top_changed)
        if not changes:
            return {}
        # A fault takes effect on the tick's updates of every window of the symbol at once.
        if self._skip.get(symbol) and any(top for _, _, top in changes.values()):
            self._skip[symbol] -= 1
            self.skipped[symbol] = self.skipped.get(symbol, 0) + 1
            return {}
        corrupt = bool(self._corrupt.get(symbol))
        if corrupt:
            self._corrupt[symbol] -= 1
            self.corrupted[symbol] = self.corrupted.get(symbol, 0) + 1
        out: dict[tuple[str, int], str] = {}
        for depth, (bid_changes, ask_changes, _) in changes.items():
            view = views[depth]
            crc = checksum(view.bids, view.asks)
            if corrupt:
                crc = (crc + 1) & 0xFFFFFFFF
            out[(symbol, depth)] = _book_json("update", native(symbol), bid_changes, ask_changes, crc, ts)
        return out

    def _snapshot(self, symbol: str, depth: int) -> str:
        view = self._views[symbol].get(depth)
        if view is None:
            # The windows are current as of the last clock tick, and so is the market: they agree.
            bids, asks = self.venue.markets[symbol].book(depth)
            view = self._views[symbol][depth] = _View(bids, asks)
        ts = rfc3339(self._now_ns())
        return _book_json("snapshot", native(symbol), view.bids, view.asks, checksum(view.bids, view.asks), ts)

    # -- WebSocket ---------------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        conn = await self.venue.accept(request)
        client = self._clients[conn.id] = _Client(last_sent=asyncio.get_running_loop().time())
        status = {"version": "2.0.9", "system": "online", "api_version": "v2", "connection_id": conn.id}
        self._send(conn, client, orjson.dumps({"channel": "status", "type": "update", "data": [status]}).decode())
        try:
            await conn.run(self._on_text, self._heartbeats(conn, client))
        finally:
            self._clients.pop(conn.id, None)
        return conn.ws

    async def _heartbeats(self, conn: Connection, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        while not conn.closed:
            idle = loop.time() - client.last_sent
            if idle >= HEARTBEAT_S and client.subscribed:
                self._send(conn, client, HEARTBEAT)
                idle = 0.0
            await asyncio.sleep(max(0.01, HEARTBEAT_S - idle))

    def _send(self, conn: Connection, client: _Client, text: str) -> None:
        client.last_sent = asyncio.get_running_loop().time()
        conn.send(text)

    def _on_text(self, conn: Connection, text: str) -> None:
        client = self._clients[conn.id]
        time_in = rfc3339(self._now_ns())
        req_id: int | None = None
        method = "error"

        def reply(body: dict[str, Any]) -> None:
            body = body | {"time_in": time_in, "time_out": rfc3339(self._now_ns())}
            if req_id is not None:
                body["req_id"] = req_id
            self._send(conn, client, orjson.dumps(body).decode())

        try:
            try:
                req = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise _RequestError("Malformed request") from None
            if not isinstance(req, dict):
                raise _RequestError("Malformed request")
            if isinstance(req.get("method"), str):
                method = req["method"]
            if "req_id" in req:
                if type(req["req_id"]) is not int:
                    raise _RequestError("Invalid req_id: expected an integer")
                req_id = req["req_id"]
            if method == "ping":
                reply({"method": "pong"})
                return
            if method not in ("subscribe", "unsubscribe"):
                raise _RequestError("Method not found")
            params = req.get("params")
            if not isinstance(params, dict):
                raise _RequestError("Missing field params")
            self._channel_request(conn, client, method, params, reply)
        except _RequestError as exc:
            reply({"error": exc.error, "method": method, "success": False})

    def _channel_request(
        self,
        conn: Connection,
        client: _Client,
        method: str,
        params: dict[str, Any],
        reply: Callable[[dict[str, Any]], None],
    ) -> None:
        """Validate the whole request (`_RequestError`), then apply it symbol by symbol: each symbol
        gets its own acknowledgement (an error for a refused one, as on Kraken), and a snapshot
        follows its acknowledgement."""
        channel = params.get("channel")
        subscribe = method == "subscribe"
        if channel in ("heartbeat", "status", "instrument"):
            client.subscribed = client.subscribed or subscribe
            snapshot = subscribe and channel == "instrument" and params.get("snapshot", True) is not False
            reply({"method": method, "result": {"channel": channel} | ({"snapshot": True} if snapshot else {}),
                   "success": True})  # fmt: skip
            if snapshot:
                self._send(conn, client, self._instrument_snapshot())
            return
        if channel not in ("book", "trade"):
            raise _RequestError("Channel not found" if channel else "Missing field channel")
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
            raise _RequestError("Missing field symbol")
        depth = params.get("depth", DEFAULT_DEPTH) if channel == "book" else 0
        if channel == "book" and (type(depth) is not int or depth not in DEPTHS):
            raise _RequestError(f"Invalid depth: one of {', '.join(map(str, DEPTHS))}")
        snapshot = params.get("snapshot", channel == "book")
        if not isinstance(snapshot, bool):
            raise _RequestError("Invalid snapshot: expected a boolean")
        subs: dict[str, int] | set[str] = client.books if channel == "book" else client.trades
        for sym in symbols:
            canonical = self._by_native.get(sym)
            result: dict[str, Any] = {"channel": channel, "symbol": sym}
            if channel == "book":
                result["depth"] = depth
            error = None
            if canonical is None:
                error = f"Currency pair not supported {sym}"
            elif subscribe == (canonical in subs):
                error = "Already subscribed" if subscribe else "Subscription Not Found"
            if error is not None or canonical is None:
                reply({"error": error, "method": method, "success": False, "symbol": sym})
                continue
            stream = f"{channel}:{sym}"
            if not subscribe:
                if channel == "book":
                    client.muted.discard(canonical)
                    del client.books[canonical]
                else:
                    client.trades.discard(canonical)
                conn.subs.pop(stream, None)
                reply({"method": method, "result": result, "success": True})
                continue
            client.subscribed = True
            self.venue.subscribe(conn, stream, canonical)
            reply({"method": method, "result": result | {"snapshot": snapshot}, "success": True})
            if channel == "book":
                client.books[canonical] = depth
                self.venue.book_depth[canonical] = depth
                if snapshot:
                    self._send(conn, client, self._snapshot(canonical, depth))
            else:
                client.trades.add(canonical)
                if snapshot:
                    data = ",".join(self._recent[canonical])
                    self._send(conn, client, f'{{"channel":"trade","type":"snapshot","data":[{data}]}}')

    def _instrument_snapshot(self) -> str:
        pairs = []
        for sym, canonical in self._by_native.items():
            market = self.venue.markets[canonical]
            base, _, quote = sym.partition("/")
            pairs.append(
                f'{{"symbol":{orjson.dumps(sym).decode()},"base":{orjson.dumps(base).decode()},'
                f'"quote":{orjson.dumps(quote).decode()},"status":"online","qty_precision":{PRECISION},'
                f'"qty_increment":{fmt8(1)},"qty_min":{fmt8(market.lot_units)},"price_precision":{PRECISION},'
                f'"price_increment":{fmt8(market.tick_units)},"cost_precision":{PRECISION},"marginable":false}}'
            )
        return f'{{"channel":"instrument","type":"snapshot","data":{{"assets":[],"pairs":[{",".join(pairs)}]}}}}'

    def _trade_json(self, symbol: str, ev: MarketEvent) -> str:
        t = ev.trade
        assert t is not None
        return (
            f'{{"symbol":{orjson.dumps(native(symbol)).decode()},"side":"{t.side}","price":{t.price},'
            f'"qty":{t.qty},"ord_type":"market","trade_id":{t.trade_id},"timestamp":"{rfc3339(ev.ts_ns)}"}}'
        )

    # -- REST --------------------------------------------------------------------------------------

    async def _recent_trades(self, request: web.Request) -> web.Response:
        q = request.query
        canonical = self._by_rest_name.get(q.get("pair", "").upper())
        if canonical is None:
            return _rest({"error": ["EQuery:Unknown asset pair"]})
        raw_since, raw_count = q.get("since"), q.get("count", str(TRADES_PAGE))
        if (raw_since is not None and not raw_since.isdigit()) or not raw_count.isdigit() or int(raw_count) < 1:
            return _rest({"error": ["EGeneral:Invalid arguments"]})
        count = min(int(raw_count), TRADES_PAGE)
        history = self.venue.trades[canonical]
        if raw_since is None:
            since = 0
            rows = list(history)[-count:]
        else:
            since = int(raw_since) * (1_000_000_000 if int(raw_since) < SECONDS_BELOW else 1)
            start = bisect.bisect_right(history, since, key=lambda entry: entry[1])  # times only grow
            rows = list(itertools.islice(history, start, start + count))
        trades = ",".join(
            f"[{orjson.dumps(t.price).decode()},{orjson.dumps(t.qty).decode()},{rest_time(ts)},"
            f'"{t.side[0]}","m","",{t.trade_id}]'
            for t, ts in rows
        )
        last = rows[-1][1] if rows else since
        text = f'{{"error":[],"result":{{{orjson.dumps(altname(canonical)).decode()}:[{trades}],"last":"{last}"}}}}'
        return web.Response(text=text, content_type="application/json")

    @staticmethod
    def _now_ns() -> int:
        return time.time_ns()


def _rest(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _diff(old: list[Level], new: list[Level], alive: set[str]) -> list[Level]:
    """The update that turns a client's window ``old`` into ``new``: levels the market deleted with qty
    0, then every level of ``new`` that is new or changed. Levels pushed out of the window by better
    ones are left to the client's truncation."""
    before = dict(old)
    out = [(p, ZERO) for p, _ in old if p not in alive]
    out.extend((p, q) for p, q in new if before.get(p) != q)
    return out


SIM = KrakenSim
