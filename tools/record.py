"""`ingest record`: capture the configured feeds' wire traffic as recordings `ingest replay` reads.

The feeds' connections run for real in this one process, the very `FeedConnection` and `Session`
code a shard runs (subscriptions, REST snapshots, resyncs, pings, backfills), without a bus or Redis.
Each connection gets a `RecordingFile` as its tap (``ingest/session/tap.py``), which writes everything
its sessions open, send, receive and fetch, one record a line (`tools.recording.format_record`), to
``<out>/<connection id>.rec``. Lines are written whole, so a stop at any moment (Ctrl-C included)
leaves complete files. Each connection records once: ``redundancy`` is set to 1, since a recording
wants each frame once and ``ingest replay`` merges every file it is given.

With ``--simulate`` the simulator runs beside it (as for ``ingest run --simulate``); at the end of
``--duration`` the market is frozen and the recording catches up (every book valid and the wire
quiet) before it stops, so the replayed books equal the simulator's final ones.

Progress goes to stderr every few seconds; the summary at the end (stderr too) names the files and
the ``ingest replay`` command for each exchange.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import structlog

from ingest import logs
from ingest.errors import UserError
from ingest.events import BookDelta, BookSnapshot, Event, Trade
from ingest.session.connection import FeedConnection
from ingest.settings import Settings
from shards.plan import make_plan
from shards.worker import connections_for
from tools.commands import feed_symbols, load_settings  # the settings helpers every command shares
from tools.recording import HttpResponse, Opened, Received, Record, Sent, format_record
from tools.sim.process import SimulatorProcess

log = structlog.get_logger("record")

PROGRESS_S = 5.0
QUIET_S = 0.5  # after the freeze: the wire this long silent (and every book valid) means caught up
CATCH_UP_S = 15.0  # the longest the recording waits for that


@dataclass(slots=True)
class Counts:
    """What one file (or one exchange's files) holds."""

    frames: int = 0  # frames received
    sent: int = 0
    http: int = 0  # REST responses
    opened: int = 0  # WebSocket sessions
    bytes: int = 0  # bytes written
    trades: int = 0  # trades the connections published
    book_messages: int = 0  # book snapshots and deltas they published

    def add(self, other: Counts) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class RecordingFile:
    """A `Tap` writing one connection's records to one file (whole lines, binary mode)."""

    def __init__(self, path: Path, exchange: str) -> None:
        self.path = path
        self.exchange = exchange
        self.counts = Counts()
        self._file: IO[bytes] | None = path.open("xb")

    def opened(self, url: str, ts: int) -> None:
        self.counts.opened += 1
        self._write(Opened(url, ts))

    def sent(self, url: str, ts: int, text: str) -> None:
        self.counts.sent += 1
        self._write(Sent(url, ts, text))

    def received(self, ts: int, data: str | bytes) -> None:
        self.counts.frames += 1
        self._write(Received(ts, data))

    def http(self, url: str, ts: int, body: bytes) -> None:
        self.counts.http += 1
        self._write(HttpResponse(url, ts, body.decode("utf-8", "replace")))

    def _write(self, record: Record) -> None:
        if self._file is None:  # closed: a late callback of a connection being stopped
            return
        line = (format_record(record) + "\n").encode()
        self._file.write(line)
        self.counts.bytes += len(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class Recording:
    """A finished (or stopped) recording: its files by connection id, its duration."""

    out: Path
    files: dict[str, RecordingFile]
    seconds: float = 0.0
    interrupted: bool = False
    frozen: bool = False
    published: dict[str, Counts] = field(default_factory=dict)  # trades and book messages, by exchange

    def by_exchange(self) -> dict[str, Counts]:
        out: dict[str, Counts] = {}
        for f in self.files.values():
            out.setdefault(f.exchange, Counts()).add(f.counts)
        for exchange, counts in self.published.items():
            out.setdefault(exchange, Counts()).add(counts)
        return out


class Recorder:
    """Runs the connections of ``settings``' feeds with a `RecordingFile` each, under ``out``."""

    def __init__(self, settings: Settings, out: Path) -> None:
        feeds = tuple(dataclasses.replace(f, redundancy=1) for f in settings.feeds)
        self.settings = dataclasses.replace(settings, feeds=feeds)
        self.out = out
        plan = make_plan(self.settings.feeds, 1)
        self.files: dict[str, RecordingFile] = {}
        self.published: dict[str, Counts] = {}
        self.conns = connections_for(self.settings, 0, plan.shards[0], self._publish)
        taken = [self._path(c).name for c in self.conns if self._path(c).exists()]
        if taken:
            raise UserError(f"--out {out}: already holds a recording ({taken[0]}); give another directory")

    def _path(self, conn: FeedConnection) -> Path:
        return self.out / f"{conn.conn_id}.rec"

    def _publish(self, event: Event) -> None:
        """What the connections publish is only counted (by exchange, for the summary)."""
        counts = self.published.get(event.exchange)
        if counts is None:
            counts = self.published[event.exchange] = Counts()
        if isinstance(event, Trade):
            counts.trades += 1
        elif isinstance(event, BookDelta | BookSnapshot):
            counts.book_messages += 1

    async def run(
        self,
        duration: float | None,
        freeze: Callable[[], Awaitable[object]] | None = None,
        progress: Callable[[Recording, float], None] | None = None,
    ) -> Recording:
        """Record until ``duration`` seconds passed (or forever), SIGINT/SIGTERM, or every connection
        failed for good. ``freeze`` (the simulator's) is called at the end of the duration, and the
        recording then catches up before it stops. ``progress`` is called every `PROGRESS_S`."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        result = Recording(self.out, self.files, published=self.published)
        started = loop.time()
        tasks: list[asyncio.Task[None]] = []
        try:
            for conn in self.conns:
                file = self.files[conn.conn_id] = RecordingFile(self._path(conn), conn.spec.name)
                conn.tap = file
                tasks.append(asyncio.create_task(self._run_conn(conn), name=conn.conn_id))
            stopper = asyncio.create_task(stop.wait())
            everything = [stopper, *tasks]
            while not stop.is_set() and not all(t.done() for t in tasks):
                left = None if duration is None else duration - (loop.time() - started)
                if left is not None and left <= 0:
                    break
                wait = PROGRESS_S if left is None else min(PROGRESS_S, left)
                await asyncio.wait(everything, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                everything = [t for t in everything if not t.done()]
                if progress is not None and not stop.is_set() and wait == PROGRESS_S:
                    progress(result, loop.time() - started)
            result.interrupted = stop.is_set()
            stopper.cancel()
            if freeze is not None and not result.interrupted:
                try:
                    await freeze()
                except OSError as e:  # the simulator is gone: what was recorded stays as it is
                    log.warning("the simulator could not be frozen", error=str(e))
                else:
                    result.frozen = True
                    await self._catch_up(stop)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for conn in self.conns:
                await conn.close()
            for file in self.files.values():
                file.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        result.seconds = loop.time() - started
        return result

    async def _run_conn(self, conn: FeedConnection) -> None:
        try:
            await conn.run()
        except Exception as e:  # a fatal refusal: the other connections record on
            log.error("connection failed for good", exchange=conn.spec.name, connection=conn.conn_id, error=repr(e))

    async def _catch_up(self, stop: asyncio.Event) -> None:
        """Wait until every book is valid and nothing arrived for `QUIET_S` (at most `CATCH_UP_S`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_S

        def seen() -> int:
            return sum(f.counts.frames + f.counts.http for f in self.files.values())

        last, quiet_since = seen(), loop.time()
        while not stop.is_set() and loop.time() < deadline:
            await asyncio.sleep(0.05)
            now, count = loop.time(), seen()
            if count != last:
                last, quiet_since = count, now
            ready = all(c.latest is not None and c.latest.ready.is_set() for c in self.conns)
            if ready and now - quiet_since >= QUIET_S:
                return
        log.warning("the recording did not catch up with the frozen market", waited_s=CATCH_UP_S)


# -- the command ------------------------------------------------------------------------------------


def record(args: argparse.Namespace) -> int:
    settings = only_exchanges(load_settings(args.settings), args.exchange or ())
    out = out_dir(args.out)
    logs.configure(settings.log.level, settings.log.format, process="record")
    recorder = Recorder(settings, out)  # checks ``out`` before anything starts
    simulator: SimulatorProcess | None = None
    try:
        if args.simulate:
            truth = settings.var_path / "sim" / "truth.jsonl"
            simulator = SimulatorProcess(settings.simulator, feed_symbols(settings), truth).start()
            recorder = Recorder(simulator.point_feeds(settings), out)
        print(f"# recording {len(recorder.conns)} connections into {out}", file=sys.stderr, flush=True)
        result = _run_loop(recorder.run(args.duration, _freezer(simulator), _progress))
    finally:
        if simulator is not None:
            simulator.stop()
    sys.stderr.write(summary(result))
    sys.stderr.flush()
    return 0


def _freezer(simulator: SimulatorProcess | None) -> Callable[[], Awaitable[object]] | None:
    if simulator is None:
        return None
    frozen = simulator

    async def freeze() -> object:
        return await asyncio.get_running_loop().run_in_executor(None, frozen.freeze)

    return freeze


def _run_loop(main: Any) -> Recording:
    try:
        import uvloop

        result: Recording = uvloop.run(main)
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        result = asyncio.run(main)
    return result


def only_exchanges(settings: Settings, names: Sequence[str]) -> Settings:
    """The settings with only the feeds of ``names`` (all if empty); a name without a feed is a
    `UserError`."""
    known = sorted({f.exchange for f in settings.feeds})
    if not known:
        raise UserError(f"{settings.source}: no [[feeds]] tables: nothing to record")
    for name in names:
        if name not in known:
            raise UserError(f"--exchange {name}: no feed of it in {settings.source} (feeds: {', '.join(known)})")
    if not names:
        return settings
    return dataclasses.replace(settings, feeds=tuple(f for f in settings.feeds if f.exchange in names))


def out_dir(given: str | None) -> Path:
    """The output directory (default ``recordings/<UTC time>``), created; `UserError` if not writable."""
    path = Path(given) if given else Path("recordings") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    probe = path / ".ingest-record-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UserError(f"--out {path}: cannot write there: {e.strerror or e}") from None
    return path


def _progress(result: Recording, elapsed: float) -> None:
    parts = [f"{ex} frames={c.frames} bytes={_size(c.bytes)}" for ex, c in sorted(result.by_exchange().items())]
    print(f"# {elapsed:6.1f}s " + " | ".join(parts), file=sys.stderr, flush=True)


def summary(result: Recording) -> str:
    """The one-screen summary: per exchange its files, frames, REST responses, bytes, what it
    published, and the command that replays it."""
    how = "interrupted" if result.interrupted else "market frozen, caught up" if result.frozen else "done"
    lines = [f"# recorded {result.seconds:.1f}s into {result.out} ({how})"]
    lines.append(f"# {'exchange':<10} {'files':>5} {'sessions':>8} {'frames':>9} {'http':>6} {'bytes':>9} "
                 f"{'trades':>8} {'book msgs':>9}")  # fmt: skip
    per = result.by_exchange()
    for ex, c in sorted(per.items()):
        files = sum(1 for f in result.files.values() if f.exchange == ex)
        lines.append(f"# {ex:<10} {files:>5} {c.opened:>8} {c.frames:>9} {c.http:>6} {_size(c.bytes):>9} "
                     f"{c.trades:>8} {c.book_messages:>9}")  # fmt: skip
    for ex in sorted(per):
        if per[ex].opened == 0:
            lines.append(f"# {ex}: no session connected (is its ws_url reachable?)")
    lines.append("# replay with:")
    for ex in sorted(per):
        paths = [str(f.path) for f in result.files.values() if f.exchange == ex]
        lines.append("ingest replay --exchange " + shlex.join([ex, *paths]))
    return "\n".join(lines) + "\n"


def _size(n: int) -> str:
    if n < 1000:
        return f"{n}B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f}{unit}"
