"""The exchange simulator server: seeded markets behind each exchange's real wire protocol.

One aiohttp server (one port) serves every simulated exchange under ``/<exchange>/...`` (WebSocket
and REST; the exchange module owns the paths below its prefix) and the control API under ``/_sim``:

- ``POST /_sim/fault`` ``{"kind":
  "drop"|"stall"|"notice"|"garble"|"forget"|"mute"|"skip"|"corrupt"|"chain"|"restart", "exchange": ..,
  "symbol": optional, "seconds": for stall and notice, "count": for the others}`` -> ``{"ok": true,
  "affected": n}`` (400 + ``{"error"}``): *drop* aborts the TCP connections (all of the exchange's,
  or those carrying the symbol) with no WebSocket close frame; *stall* makes them send nothing at
  all for ``seconds`` (no data, no pings, no pong replies; data generated meanwhile is held and sent
  afterwards, within the back-pressure bound); *notice* (exchanges that announce a close: the module
  has an ``announce_close(conn)``) sends the exchange's announcement on those connections and closes
  them cleanly ``seconds`` later (default 2; OKX warns about 60 s ahead); *forget* empties the REST
  trade history of the symbol (all if none is named), so trades missed just before cannot be
  backfilled; *mute* (exchanges whose simulator can silence one book, with a ``mute(conn, symbol)``)
  silences the symbol's book on the connections carrying it, with nothing said, until the client
  resubscribes it (a stuck stream only the per-symbol liveness check can see); *garble* sends
  ``count`` malformed frames (broken JSON, binary, absurd numbers) on the connections; *skip* makes
  the next book updates of the symbol (all symbols if none is named) leave out ``count`` update ids
  whose changes the market did make, so a client must resync; *corrupt* (exchanges that checksum
  their books: the exchange module has a ``corrupt(symbol, count)``) makes the next ``count`` book
  updates of the symbol (all symbols if none is named) carry a wrong checksum; *chain* (exchanges
  whose updates name the previous one, with a ``chain(symbol, count)``) makes the next ``count``
  book updates of the symbol name a predecessor that was never sent, their changes intact, so only
  the chain check can tell; *restart* (exchanges that announce a restart of their book service, with
  a ``restart(symbol, count)``) restarts the symbol's book service ``count`` times: the exchange's
  restart signal and a fresh book, which the client must take in place of its own.
- ``POST /_sim/freeze`` -> what `Simulator.freeze` returns; ``GET /_sim/status`` -> `Simulator.status`.

Generic code never names an exchange: `EXCHANGES` is discovered from `tools.sim.exchanges`, whose modules provide an
`ExchangeSim` built from a `Venue` (see `tools.sim.venue`: connections, back-pressure, keepalive).

The market clock runs every ~10 ms and steps each symbol ``rate * elapsed`` times (fractional
carry), so the event sequence is the seed's, whatever the timing. Freezing stops the clock (no new
market data; what is already queued is still delivered) and writes the final books to the truth log.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ingest import logs
from ingest.settings import SimulatorSettings
from tools.sim import prebuilt
from tools.sim.exchanges import discover
from tools.sim.market import MarketEvent, SymbolMarket
from tools.sim.playback import Player
from tools.sim.prebuilt import FrameFormat, Progress, ReplaySpec
from tools.sim.truth import TruthLog
from tools.sim.venue import Connection, ExchangeSim, Venue

log = logging.getLogger(__name__)

TICK = 0.01
MAX_CATCH_UP = 1.0  # seconds of market time one clock tick may generate after a pause
FAULT_KINDS = ("drop", "stall", "notice", "garble", "forget", "mute", "skip", "corrupt", "chain", "restart")
GARBLE = ('{"garbled":', b"\x00\xff binary garbage", "[1,2", '{"e":"trade","p":-1e999}')
NOTICE_SECONDS = 2.0
# Faults only some exchanges' simulators offer (as a method of that name), and why one cannot.
_OFFERED = {
    "corrupt": "sends no book checksum to corrupt",
    "chain": "has no sequence chain to break",
    "restart": "announces no service restarts",
    "mute": "cannot silence one book",
    "announce_close": "announces no closes",
}


_LIVE_ONLY = ("skip", "corrupt", "chain", "restart", "mute")  # faults that change frames as they are made

# The one place that names exchanges: name -> the module's `ExchangeSim` factory.
EXCHANGES: dict[str, Callable[[Venue], ExchangeSim]] = discover()


class Simulator:
    """The simulator: markets, exchange protocols, the truth log, faults. See the module docstring."""

    def __init__(
        self,
        settings: SimulatorSettings,
        feeds: dict[str, list[str]],
        truth_path: Path,
        ping_interval: float = 20.0,
        pong_timeout: float = 60.0,
        *,
        max_send_buffer: int = 8 << 20,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        replay: ReplaySpec | None = None,
        progress: Progress | None = None,
    ) -> None:
        """``options``: per exchange, settings its module reads from `Venue.options` (and validates);
        by default the settings' ``options`` table. ``replay``: send a market pre-built here (see
        `tools.sim.prebuilt`; ``progress`` hears how the building goes) instead of running the live
        clock; ``ValueError`` if an exchange's simulator cannot pre-build."""
        if options is None:  # the settings' table may name exchanges this run does not simulate
            options = {e: o for e, o in settings.options.items() if e in feeds}
        unknown = sorted(set(feeds) - set(EXCHANGES))
        if unknown:
            raise ValueError(f"no simulator for exchange(s) {unknown} (known: {sorted(EXCHANGES)})")
        if set(options) - set(feeds):
            raise ValueError(f"options for exchange(s) not simulated: {sorted(set(options) - set(feeds))}")
        self.settings = settings
        self.truth = TruthLog(truth_path)
        self.venues: dict[str, Venue] = {}
        self._sims: dict[str, ExchangeSim] = {}
        self._markets: dict[str, dict[str, SymbolMarket]] = {}  # the live clock's
        for exchange, symbols in feeds.items():
            markets = {
                s: SymbolMarket(s, settings.seed, settings.levels, settings.trade_ratio) for s in symbols
            }
            venue = Venue(
                exchange, markets, self.truth, ping_interval, pong_timeout, max_send_buffer, options.get(exchange)
            )
            self.venues[exchange] = venue
            self._markets[exchange] = markets
            self._sims[exchange] = EXCHANGES[exchange](venue)
        self._players = [self._prebuild(e, replay, progress) for e in self.venues] if replay is not None else []
        self._carry = {(e, s): 0.0 for e, v in self.venues.items() for s in v.markets}
        self._faults: list[dict[str, Any]] = []
        self._closing: set[asyncio.Task[None]] = set()  # connections an announced close will end
        self._runner: web.AppRunner | None = None
        self._clock: asyncio.Task[None] | None = None
        self._frozen: dict[str, Any] | None = None
        self._port = 0

    def _prebuild(self, exchange: str, spec: ReplaySpec, progress: Progress | None) -> Player:
        sim, venue = self._sims[exchange], self.venues[exchange]
        make, wrap = getattr(sim, "prebuilt", None), getattr(sim, "wrap", None)
        if make is None or wrap is None:
            able = sorted(e for e, f in EXCHANGES.items() if hasattr(f, "prebuilt"))
            raise ValueError(f"the {exchange} simulator cannot pre-build its market (those that can: {able})")
        fmt: FrameFormat = make(spec.trade_stream)
        s = self.settings
        store = prebuilt.build(
            fmt, list(venue.markets), seed=s.seed, levels=s.levels, trade_ratio=s.trade_ratio, rate=s.rate,
            messages=spec.messages, progress=progress,
        )  # fmt: skip
        venue.markets = store.views
        return Player(venue, store, fmt, wrap, spec.msgs_per_s)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, and start the market clock."""
        app = web.Application()
        for name, sim in self._sims.items():
            app.add_routes(sim.routes(f"/{name}"))
        app.add_routes(
            [
                web.post("/_sim/fault", self._http_fault),
                web.post("/_sim/freeze", self._http_freeze),
                web.get("/_sim/status", self._http_status),
            ]
        )
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._clock = asyncio.create_task(self._run_clock())

    async def freeze(self) -> dict[str, Any]:
        """Stop the market, write the final books of the subscribed symbols and the frozen marker to
        the truth log (flushed). Idempotent. Returns ``{"books": {exchange: {symbol: update_id}},
        "last_trade_ids": {exchange: {symbol: last trade id}}}`` for every simulated symbol."""
        if self._frozen is not None:
            return self._frozen
        if self._clock is not None:
            self._clock.cancel()
            await asyncio.gather(self._clock, return_exceptions=True)
        for exchange, venue in self.venues.items():
            for symbol, market in venue.markets.items():
                if self.truth.watching(exchange, symbol):
                    bids, asks = market.book(venue.book_depth.get(symbol))
                    self.truth.book(exchange, symbol, market.update_id, bids, asks)
        self.truth.frozen(time.time_ns())
        self.truth.flush()
        self._frozen = {
            "books": {e: {s: m.update_id for s, m in v.markets.items()} for e, v in self.venues.items()},
            "last_trade_ids": {
                e: {s: m.last_trade_id for s, m in v.markets.items()} for e, v in self.venues.items()
            },
        }
        return self._frozen

    async def stop(self) -> None:
        """Stop the clock, close every connection with a close frame, stop listening, close the log.
        Does not freeze: call `freeze` first for a complete truth log."""
        if self._clock is not None:
            self._clock.cancel()
            await asyncio.gather(self._clock, return_exceptions=True)
        await asyncio.gather(*(c.close() for v in self.venues.values() for c in list(v.connections)))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.truth.close()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"{host}:{self._port}"

    def ws_url(self, exchange: str) -> str:
        """``ws://host:port/<exchange>``: the exchange's WebSocket base (the client appends its path)."""
        return f"ws://{self.base_url}/{exchange}"

    def rest_url(self, exchange: str) -> str:
        """``http://host:port/<exchange>``: the exchange's REST base."""
        return f"http://{self.base_url}/{exchange}"

    @property
    def control_url(self) -> str:
        """``http://host:port/_sim``: append ``/fault``, ``/freeze``, ``/status``."""
        return f"http://{self.base_url}/_sim"

    def urls(self) -> dict[str, Any]:
        return {
            "ws_url": {e: self.ws_url(e) for e in self.venues},
            "rest_url": {e: self.rest_url(e) for e in self.venues},
            "control_url": self.control_url,
        }

    # -- faults and status -----------------------------------------------------------------------

    def fault(
        self,
        kind: str,
        exchange: str,
        symbol: str | None = None,
        seconds: float | None = None,
        count: int | None = None,
    ) -> dict[str, Any]:
        """Inject a fault (see the module docstring). Raises ``ValueError`` for a bad request."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        venue = self.venues.get(exchange)
        if venue is None:
            raise ValueError(f"unknown exchange {exchange!r} (simulated: {', '.join(self.venues)})")
        if symbol is not None and symbol not in venue.markets:
            raise ValueError(f"{exchange} does not simulate {symbol!r}")
        if self._players and kind in _LIVE_ONLY:
            raise ValueError(f"no {kind} fault on a pre-built market (its frames are made before they are sent)")
        targets = [c for c in venue.connections if symbol is None or symbol in c.subs.values()]
        if kind == "drop":
            for conn in targets:
                conn.abort()
            affected = len(targets)
        elif kind in ("stall", "notice"):
            if kind == "notice" and seconds is None:
                seconds = NOTICE_SECONDS
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
                raise ValueError(f"{kind} needs seconds > 0")
            announce = getattr(self._sims[exchange], "announce_close", None)
            if kind == "notice" and announce is None:
                raise ValueError(f"{exchange} {_OFFERED['announce_close']}")
            for conn in targets:
                if announce is not None and kind == "notice":
                    announce(conn)
                    self._closing.add(asyncio.get_running_loop().create_task(_close_later(conn, float(seconds))))
                    self._closing = {t for t in self._closing if not t.done()}
                else:
                    conn.stall(float(seconds))
            affected = len(targets)
        elif kind == "garble":
            n = 1 if count is None else count
            for conn in targets:
                for i in range(n):
                    conn.send(GARBLE[i % len(GARBLE)])
            affected = len(targets)
        elif kind == "mute":
            mute = getattr(self._sims[exchange], "mute", None)
            if mute is None:
                raise ValueError(f"{exchange} {_OFFERED['mute']}")
            if symbol is None:
                raise ValueError("mute needs a symbol")
            for conn in targets:
                mute(conn, symbol)
            affected = len(targets)
        elif kind == "forget":
            symbols = [symbol] if symbol is not None else list(venue.markets)
            for s in symbols:
                venue.forget_trades(s)
            affected = len(symbols)
        else:
            n = 1 if count is None else count
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"{kind} needs a whole count >= 1")
            inject = getattr(self._sims[exchange], kind, None)  # skip: every exchange; the others: some
            if inject is None:
                raise ValueError(f"{exchange} {_OFFERED[kind]}")
            symbols = [symbol] if symbol is not None else list(venue.markets)
            for s in symbols:
                inject(s, n)
            affected = len(symbols)
        record = {"kind": kind, "exchange": exchange, "symbol": symbol, "seconds": seconds, "count": count}
        self._faults.append(record | {"affected": affected, "ts": time.time_ns()})
        log.info("fault %s", record)
        return {"ok": True, "affected": affected}

    def status(self) -> dict[str, Any]:
        return {
            "frozen": self._frozen is not None,
            "settings": asdict(self.settings),
            "exchanges": {
                e: v.status() | self._sims[e].status() | {"connection_faults": self._connection_faults(e)}
                for e, v in self.venues.items()
            },
            "faults": list(self._faults),
        } | ({"replay": {p.venue.name: p.status() for p in self._players}} if self._players else {})

    def _connection_faults(self, exchange: str) -> list[str]:
        sim = self._sims[exchange]
        offered = [("notice", "announce_close"), ("mute", "mute")]
        return ["drop", "stall", "garble", *(kind for kind, method in offered if getattr(sim, method, None))]

    # -- internals -------------------------------------------------------------------------------

    async def _run_clock(self) -> None:
        try:
            if self._players:
                await asyncio.gather(*(p.play() for p in self._players))
            else:
                await self._clock_loop()
        except asyncio.CancelledError:
            raise
        except Exception:  # a dead clock would look like a quiet market: say so loudly
            log.exception("the market clock failed; the simulated markets have stopped")
            raise

    async def _clock_loop(self) -> None:
        loop = asyncio.get_running_loop()
        rate = self.settings.rate
        last, last_ns = loop.time(), time.time_ns()
        flushed = last
        while True:
            await asyncio.sleep(TICK)
            now, now_ns = loop.time(), time.time_ns()
            elapsed = min(now - last, MAX_CATCH_UP)
            for exchange, venue in self.venues.items():
                batch: dict[str, list[MarketEvent]] = {}
                for symbol, market in self._markets[exchange].items():
                    due = self._carry[(exchange, symbol)] + rate * elapsed
                    n = int(due)
                    self._carry[(exchange, symbol)] = due - n
                    if n == 0:
                        continue
                    # Spread the tick's events over the time it covers, for realistic timestamps.
                    events = [market.step(last_ns + (now_ns - last_ns) * (i + 1) // n) for i in range(n)]
                    venue.record_trades(symbol, events)
                    if self.truth.watching(exchange, symbol):
                        for ev in events:
                            t = ev.trade
                            if t is not None:
                                self.truth.trade(
                                    exchange, symbol, t.trade_id, t.price, t.qty, t.side, ev.ts_ns
                                )
                    batch[symbol] = events
                if batch:
                    self._sims[exchange].publish(now_ns, batch)
            last, last_ns = now, now_ns
            if now - flushed >= 1.0:  # keep the log nearly current in case the process is killed
                self.truth.flush()
                flushed = now

    async def _http_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=orjson.loads)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            allowed = {"kind", "exchange", "symbol", "seconds", "count"}
            extra = sorted(set(body) - allowed)
            if extra:
                raise ValueError(f"unknown field(s) {extra}")
            result = self.fault(**body)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, status=400)
        return _json(result)

    async def _http_freeze(self, request: web.Request) -> web.Response:
        return _json(await self.freeze())

    async def _http_status(self, request: web.Request) -> web.Response:
        return _json(self.status())


async def _close_later(conn: Connection, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await conn.close()


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def serve_forever(
    settings: SimulatorSettings,
    feeds: dict[str, list[str]],
    truth_path: Path,
    ready: Callable[[dict[str, Any]], None] | None = None,
    *,
    stop: asyncio.Event | None = None,
    ping_interval: float = 20.0,
    pong_timeout: float = 60.0,
    replay: ReplaySpec | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run a simulator until ``stop`` is set or the task is cancelled, then freeze and stop it.
    ``ready`` gets `Simulator.urls` once it listens. Returns what `Simulator.freeze` returned."""
    sim = Simulator(settings, feeds, truth_path, ping_interval, pong_timeout, replay=replay, progress=progress)
    await sim.start()
    try:
        if ready is not None:
            ready(sim.urls())
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        frozen = await sim.freeze()
        await sim.stop()
    return frozen


def run_process(
    settings: SimulatorSettings | Mapping[str, Any],
    feeds: dict[str, list[str]],
    truth_path: Path | str,
    ready_file: Path | str,
    ping_interval: float = 20.0,
    pong_timeout: float = 60.0,
    replay: ReplaySpec | None = None,
) -> None:
    """Run a simulator as the whole of a process (a `multiprocessing` target or a CLI command).

    Uses uvloop when importable. Once listening, writes ``{"ws_url": {exchange: url}, "rest_url":
    {..}, "control_url": .., "pid": ..}`` to ``ready_file`` atomically (temp file + rename). On
    SIGTERM or SIGINT it freezes the truth log, closes every connection and returns. With ``replay``
    it pre-builds the market first, writing ``{"built": n, "wanted": m}`` to ``<ready_file>.progress``
    as it goes (atomically too)."""
    logs.configure(process="sim")  # its lines (JSON, or console on a terminal) share the parent's stderr
    sim_settings = settings if isinstance(settings, SimulatorSettings) else SimulatorSettings(**settings)
    ready_path = Path(ready_file)

    def write_atomic(path: Path, body: dict[str, Any]) -> None:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(body))
        os.replace(tmp, path)

    def write_ready(info: dict[str, Any]) -> None:
        # What is built by now (a pre-built market's millions of frames) lives to the end: out of the
        # collector's sight, its full passes do not walk it (one such pass stalled the sending 70 ms).
        gc.freeze()
        write_atomic(ready_path, info | {"pid": os.getpid()})

    def progress(built: int, wanted: int) -> None:
        write_atomic(ready_path.with_name(ready_path.name + ".progress"), {"built": built, "wanted": wanted})

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)  # handlers only set the event; main does the work
        await serve_forever(
            sim_settings,
            feeds,
            Path(truth_path),
            write_ready,
            stop=stop,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            replay=replay,
            progress=progress,
        )

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
