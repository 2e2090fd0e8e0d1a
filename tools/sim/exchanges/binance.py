"""Binance Spot, simulated: the wire protocol of ``/work/shared/protocols.md`` section A on the model.

Paths (below the venue prefix ``/binance``):

- ``GET /stream?streams=a/b/..`` combined streams (payloads wrapped ``{"stream":..,"data":..}``);
  ``GET /ws/<stream>[/<stream>..]`` and ``GET /ws`` raw streams (bare payloads). Streams:
  ``<sym>@depth@100ms``, ``<sym>@depth``, ``<sym>@trade``, ``<sym>@aggTrade`` (lower-case symbol).
  A well-formed stream of a symbol that is not simulated is accepted and stays silent, as on Binance.
- JSON methods SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY
  (``combined``) with Binance's replies ``{"result":..,"id":..}`` and errors
  ``{"code":2,"msg":"Invalid request: ..","id":..}`` / ``{"code":3,"msg":"Invalid JSON: .."}``.
- ``GET /api/v3/depth?symbol=BTCUSDT&limit=N`` -> ``{"lastUpdateId","bids","asks"}`` (limit default
  100, above 5000 truncated to 5000, capped by the book) or HTTP 400 with a Binance error body.
- ``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=N&limit=M`` -> the trades from id N on, oldest
  first, at most M (default 500, max 1000; without fromId the newest M), each ``{"id","price","qty",
  "quoteQty","time","isBuyerMaker","isBestMatch"}``, from the venue's recent history.

Depth messages: one per clock tick per symbol that changed, aggregating that tick's updates
``U..u`` (each price once, its final quantity), so ``U == previous u + 1`` always, except after the
skip fault. Both depth cadences get every tick's message: faster than Binance's 100 ms / 1 s, which
only makes the client work harder. One ``trade`` (and ``aggTrade``) message per trade; ``m`` is true
when the taker sold.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from tools.sim.market import Level, MarketEvent, MarketTrade
from tools.sim.prebuilt import TIME
from tools.sim.venue import Connection, Venue

MAX_LIMIT = 5000
DEFAULT_LIMIT = 100
STREAM = re.compile(r"^([a-z0-9]+)@(depth@100ms|depth|trade|aggTrade)$")
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_ID = re.compile(r"^[A-Za-z0-9]{0,36}$")


def native(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTCUSDT``."""
    return symbol.replace("-", "")


def _price_key(level: tuple[str, str]) -> tuple[int, str]:
    # Prices share 8 decimals and have no leading zeros: (length, text) orders them numerically.
    return (len(level[0]), level[0])


def _format(
    fmt: Callable[[MarketTrade, str, int, int], str], trades: list[tuple[MarketTrade, int]], sym: str, ms: int
) -> list[str]:
    return [fmt(t, sym, ms, t_ms) for t, t_ms in trades]


def _trade(t: MarketTrade, sym: str, ms: int, t_ms: int) -> str:
    m = t.side == "sell"  # the buyer was the maker when the taker sold
    return orjson.dumps(
        {"e": "trade", "E": ms, "s": sym, "t": t.trade_id, "p": t.price, "q": t.qty, "T": t_ms, "m": m, "M": True}
    ).decode()


def _agg(t: MarketTrade, sym: str, ms: int, t_ms: int) -> str:
    m = t.side == "sell"
    return orjson.dumps(
        {"e": "aggTrade", "E": ms, "s": sym, "a": t.trade_id, "p": t.price, "q": t.qty, "f": t.trade_id,
         "l": t.trade_id, "T": t_ms, "m": m, "M": True}
    ).decode()  # fmt: skip


def _depth_payload(sym: str, evs: Sequence[MarketEvent], ms: int) -> bytes:
    """One depth update aggregating ``evs`` (each price once, its final quantity)."""
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    for ev in evs:
        bids.update(ev.bids)
        asks.update(ev.asks)
    return orjson.dumps(
        {
            "e": "depthUpdate",
            "E": ms,
            "s": sym,
            "U": evs[0].update_id,
            "u": evs[-1].update_id,
            "b": sorted(bids.items(), key=_price_key, reverse=True),
            "a": sorted(asks.items(), key=_price_key),
        }
    )


class BinanceFrames:
    """Pre-built frames (`tools.sim.prebuilt.FrameFormat`): the live ``publish``'s payloads, with the
    send time left to stamp. ``trade_stream``: ``trade`` or ``aggTrade``, the one trade stream built
    (a client subscribing the other gets no trades from a pre-built market)."""

    rest_books = True  # GET /api/v3/depth

    def __init__(self, trade_stream: str) -> None:
        formats = {"trade": _trade, "aggTrade": _agg}
        if trade_stream not in formats:
            raise ValueError(f"binance pre-builds trade streams {sorted(formats)}, not {trade_stream!r}")
        self._stream = trade_stream
        self._format = formats[trade_stream]

    def streams(self, symbol: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        low = native(symbol).lower()
        return (f"{low}@depth@100ms", f"{low}@depth"), (f"{low}@{self._stream}",)

    def depth(self, symbol: str, events: Sequence[MarketEvent]) -> bytes:
        return _depth_payload(native(symbol), events, TIME)

    def trades(self, symbol: str, events: Sequence[MarketEvent]) -> list[bytes]:
        sym = native(symbol)
        return [self._format(ev.trade, sym, TIME, TIME).encode() for ev in events if ev.trade is not None]

    def read_depth(self, payload: bytes) -> tuple[int, list[Level], list[Level]]:
        d = orjson.loads(payload)
        return int(d["u"]), [(p, q) for p, q in d["b"]], [(p, q) for p, q in d["a"]]

    def read_trade(self, payload: bytes) -> MarketTrade:
        d = orjson.loads(payload)
        return MarketTrade(int(d.get("t", d.get("a"))), d["p"], d["q"], "sell" if d["m"] else "buy")


class _RequestError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class BinanceSim:
    """The Binance protocol for one `Venue`; see the module docstring."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self._by_native = {native(s): s for s in venue.markets}  # upper-case native -> canonical
        self._combined: dict[int, bool] = {}  # connection id -> wrap payloads
        self._skip: dict[str, int] = {}  # symbol -> update ids still to leave out
        self.skipped: dict[str, int] = {}  # symbol -> update ids left out so far
        self._muted: set[tuple[int, str]] = set()  # (connection id, stream) the mute fault silenced

    # -- ExchangeSim -----------------------------------------------------------------------------

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [
            web.get(f"{prefix}/stream", self._combined_stream),
            web.get(f"{prefix}/ws", self._raw_stream),
            web.get(f"{prefix}/ws/{{streams:.+}}", self._raw_stream),
            web.get(f"{prefix}/api/v3/depth", self._depth),
            web.get(f"{prefix}/api/v3/historicalTrades", self._historical_trades),
        ]

    def skip(self, symbol: str, count: int) -> None:
        self._skip[symbol] = self._skip.get(symbol, 0) + count

    def mute(self, conn: Connection, symbol: str) -> None:
        """The mute fault: the symbol's depth stream goes silent on this connection until it is
        subscribed again."""
        self._muted.update((conn.id, s) for s, sym in conn.subs.items() if sym == symbol and "@depth" in s)

    def announce_close(self, conn: Connection) -> None:
        """``serverShutdown``, which Binance sends before a server goes down."""
        data = {"e": "serverShutdown", "E": time.time_ns() // 1_000_000}
        wrapped = {"stream": "!serverShutdown", "data": data} if self._combined.get(conn.id, True) else data
        conn.send(orjson.dumps(wrapped).decode())

    def prebuilt(self, trade_stream: str) -> BinanceFrames:
        """The format of a pre-built market (`tools.sim.prebuilt`)."""
        return BinanceFrames(trade_stream)

    def wrap(self, conn: Connection, stream: str, payload: bytes) -> bytes:
        """A pre-built payload as ``conn`` gets it on ``stream`` (combined streams: wrapped)."""
        if self._combined.get(conn.id, True):
            return b'{"stream":"%s","data":%s}' % (stream.encode(), payload)
        return payload

    def status(self) -> dict[str, Any]:
        return {"skipped": dict(self.skipped), "skip_pending": {s: n for s, n in self._skip.items() if n}}

    def publish(self, ts_ns: int, events: Mapping[str, Sequence[MarketEvent]]) -> None:
        ms = ts_ns // 1_000_000
        # stream name -> raw payloads in order, or what makes them (trades: only if a connection asks)
        payloads: dict[str, list[str] | partial[list[str]]] = {}
        for symbol, evs in events.items():
            sym = native(symbol)
            low = sym.lower()
            depth = self._depth_update(symbol, sym, evs, ms)
            if depth is not None:
                payloads[f"{low}@depth@100ms"] = payloads[f"{low}@depth"] = [depth.decode()]
            trades = [(ev.trade, ev.ts_ns // 1_000_000) for ev in evs if ev.trade is not None]
            if trades:
                payloads[f"{low}@trade"] = partial(_format, _trade, trades, sym, ms)
                payloads[f"{low}@aggTrade"] = partial(_format, _agg, trades, sym, ms)
        if not payloads:
            return
        wrapped: dict[str, list[str]] = {}  # stream -> combined-stream texts, made on first use
        for conn in list(self.venue.connections):
            combined = self._combined.get(conn.id, True)
            for stream in conn.subs:
                if self._muted and (conn.id, stream) in self._muted:
                    continue
                items = payloads.get(stream)
                if items is None:
                    continue
                if isinstance(items, partial):
                    items = payloads[stream] = items()
                if combined:
                    texts = wrapped.get(stream)
                    if texts is None:
                        # Stream names are validated ([a-z0-9@A-Za-z]), so they need no JSON escaping.
                        texts = wrapped[stream] = [f'{{"stream":"{stream}","data":{p}}}' for p in items]
                    items = texts
                for text in items:
                    conn.send(text)

    def _depth_update(self, symbol: str, sym: str, evs: Sequence[MarketEvent], ms: int) -> bytes | None:
        pending = self._skip.get(symbol, 0)
        if pending:
            n = min(pending, len(evs))
            evs = evs[n:]  # the market made these changes; the wire will never show them
            self._skip[symbol] = pending - n
            self.skipped[symbol] = self.skipped.get(symbol, 0) + n
        if not evs:
            return None
        return _depth_payload(sym, evs, ms)

    # -- WebSocket -------------------------------------------------------------------------------

    def _stream_symbol(self, stream: str) -> str:
        """The canonical symbol of a stream name (the native name if not simulated)."""
        match = STREAM.match(stream)
        if match is None:
            raise _RequestError(2, "Invalid request: invalid stream")
        sym = match.group(1).upper()
        return self._by_native.get(sym, sym)

    async def _combined_stream(self, request: web.Request) -> web.StreamResponse:
        streams = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._serve(request, streams, combined=True)

    async def _raw_stream(self, request: web.Request) -> web.StreamResponse:
        streams = [s for s in request.match_info.get("streams", "").split("/") if s]
        return await self._serve(request, streams, combined=False)

    async def _serve(self, request: web.Request, streams: list[str], combined: bool) -> web.StreamResponse:
        try:
            symbols = [self._stream_symbol(s) for s in streams]
        except _RequestError as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=400)
        conn = await self.venue.accept(request)
        self._combined[conn.id] = combined
        for stream, symbol in zip(streams, symbols, strict=True):
            self.venue.subscribe(conn, stream, symbol)
        try:
            await conn.run(self._on_text)
        finally:
            self._combined.pop(conn.id, None)
        return conn.ws

    def _on_text(self, conn: Connection, text: str) -> None:
        request_id: Any = None
        try:
            try:
                req = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise _RequestError(3, f"Invalid JSON: {exc}") from None
            if not isinstance(req, dict):
                raise _RequestError(2, "Invalid request: expected an object")
            request_id = req.get("id")
            if not (request_id is None or _valid_id(request_id)):
                request_id = None
                raise _RequestError(
                    2,
                    "Invalid request: request ID must be an integer, a string of "
                    "at most 36 letters and digits, or null",
                )
            result = self._method(conn, req)
        except _RequestError as exc:
            err: dict[str, Any] = {"code": exc.code, "msg": exc.msg}
            if request_id is not None:
                err["id"] = request_id
            conn.send(orjson.dumps(err).decode())
            return
        conn.send(orjson.dumps({"result": result, "id": request_id}).decode())

    def _method(self, conn: Connection, req: dict[str, Any]) -> Any:
        method = req.get("method")
        if "method" not in req:
            raise _RequestError(2, "Invalid request: missing field `method`")
        if method not in _METHODS:
            raise _RequestError(
                2, f"Invalid request: unknown variant `{method}`, expected one of {', '.join(_METHODS)}"
            )
        params = req.get("params", [])
        if not isinstance(params, list):
            raise _RequestError(2, "Invalid request: params must be a list")
        if method == "LIST_SUBSCRIPTIONS":
            return list(conn.subs)
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not params or params[0] != "combined":
                raise _RequestError(0, "Unknown property")
            if method == "GET_PROPERTY":
                return self._combined.get(conn.id, True)
            if len(params) != 2 or not isinstance(params[1], bool):
                raise _RequestError(1, "Invalid value type: expected Boolean")
            self._combined[conn.id] = params[1]
            return None
        if not params:
            raise _RequestError(2, "Invalid request: missing field `params`")
        if not all(isinstance(s, str) for s in params):
            raise _RequestError(2, "Invalid request: stream names must be strings")
        symbols = [self._stream_symbol(s) for s in params]  # validate all before changing any
        for stream, symbol in zip(params, symbols, strict=True):
            self._muted.discard((conn.id, stream))
            if method == "SUBSCRIBE":
                self.venue.subscribe(conn, stream, symbol)
            else:
                conn.subs.pop(stream, None)
        return None

    # -- REST ------------------------------------------------------------------------------------

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        if not symbol:
            return _error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        raw_limit = request.query.get("limit", str(DEFAULT_LIMIT))
        if not raw_limit.isdigit() or len(raw_limit) > 20:
            return _error(
                -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."
            )
        canonical = self._by_native.get(symbol)
        if canonical is None:
            return _error(-1121, "Invalid symbol.")
        limit = min(max(int(raw_limit), 1), MAX_LIMIT)
        market = self.venue.markets[canonical]
        # No await between reading the id and the book: they describe the same instant.
        bids, asks = market.book(limit)
        body = {"lastUpdateId": market.update_id, "bids": bids, "asks": asks}
        self.venue.books_served.add(canonical)
        return web.Response(body=orjson.dumps(body), content_type="application/json")


    async def _historical_trades(self, request: web.Request) -> web.Response:
        q = request.query
        canonical = self._by_native.get(q.get("symbol", ""))
        if canonical is None:
            return _error(-1121, "Invalid symbol.")
        raw_limit, raw_from = q.get("limit", "500"), q.get("fromId")
        if not raw_limit.isdigit() or (raw_from is not None and not raw_from.isdigit()):
            return _error(-1100, "Illegal characters found in a parameter.")
        limit = min(max(int(raw_limit), 1), 1000)
        trades = self.venue.history(canonical, None if raw_from is None else int(raw_from), limit)
        body = [
            {
                "id": t.trade_id,
                "price": t.price,
                "qty": t.qty,
                "quoteQty": f"{Decimal(t.price) * Decimal(t.qty):.8f}",
                "time": ts // 1_000_000,
                "isBuyerMaker": t.side == "sell",
                "isBestMatch": True,
            }
            for t, ts in trades
        ]
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and _ID.match(value) is not None


def _error(code: int, msg: str) -> web.Response:
    return web.Response(
        body=orjson.dumps({"code": code, "msg": msg}), status=400, content_type="application/json"
    )


SIM = BinanceSim
