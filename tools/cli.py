"""The `ingest` command line. Every user mistake ends in one clear line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from ingest.errors import UserError

DESCRIPTION = """\
Market-data ingestion cluster: exchange WebSocket feeds -> correct order books -> a ZeroMQ bus ->
Redis Streams, a worker process per core (less one, for the merger and Redis), with proof that
nothing was lost.

Try it with no exchange account and no network:
  ingest run --simulate --duration 30 --verify   run against the built-in exchange simulator
  ingest tail trade.binance                      in another terminal: watch trades on the bus
  ingest plan                                    which shard carries which symbol
"""


def _settings_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--settings", "-c", default="settings.toml", metavar="PATH",
        help="settings file (default: ./settings.toml); see README 'Settings reference'",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingest", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="run the cluster: shards, merger, Redis",
        description="Start Redis (embedded by default), the merger and a shard per core but one; supervise them "
        "until stopped (Ctrl-C or SIGTERM drain everything received into Redis first).",
    )
    _settings_arg(run)
    run.add_argument(
        "--simulate",
        action="store_true",
        help="also start the exchange simulator and point every feed at it (no network needed)",
    )
    run.add_argument(
        "--duration", type=_positive_float, metavar="S", help="stop after S seconds (default: run until stopped)"
    )
    run.add_argument(
        "--verify",
        action="store_true",
        help="with --simulate: after the run compare Redis with the simulator's ground truth; the last "
        "stdout line is a JSON summary, exit status 1 unless verified",
    )
    run.add_argument(
        "--faults",
        action="store_true",
        help="with --simulate: every 2 s break one book on purpose (skipped updates, a corrupted checksum, a broken "
        "sequence chain, as each exchange allows); every break must be detected and resynced, nothing lost",
    )
    run.add_argument(
        "--chaos",
        action="store_true",
        help="with --simulate: every 3 s a fault anywhere: book faults as --faults, dropped, stalled and "
        "announced-closed connections, malformed frames, SIGKILL of a shard, of the merger or of the "
        "embedded Redis; with --verify, nothing may be lost, repeated or reordered and every book must match",
    )
    run.add_argument("--shards", type=_positive_int, metavar="N", help="override cluster.shards")

    sim = sub.add_parser(
        "sim",
        help="run the exchange simulator alone",
        description="Serve the configured feeds' exchanges on loopback with a seeded market.",
    )
    _settings_arg(sim)
    sim.add_argument("--port", type=int, help="listen port (default: simulator.port, 0 = any free port)")
    sim.add_argument("--rate", type=_positive_float, help="market events per second per symbol")

    plan = sub.add_parser("plan", help="print which shard carries which (exchange, symbol)")
    _settings_arg(plan)
    plan.add_argument("--shards", type=_positive_int, metavar="N", help="override cluster.shards")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    check = sub.add_parser("check-config", help="validate settings and print the effective values")
    check.add_argument("path", nargs="?", default="settings.toml", help="settings file (default: ./settings.toml)")
    check.add_argument("--reference", action="store_true", help="print the settings reference (Markdown) instead")

    tail = sub.add_parser(
        "tail",
        help="print live events from the bus",
        description="Subscribe to every shard's bus endpoint and print events as JSON lines.",
    )
    _settings_arg(tail)
    tail.add_argument(
        "prefix",
        nargs="?",
        default="",
        metavar="TOPIC_PREFIX",
        help="topic prefix: CHANNEL[.EXCHANGE[.SYMBOL]], e.g. trade.binance or book.binance.BTC-USDT",
    )
    tail.add_argument("--count", type=_positive_int, metavar="N", help="exit after N events")

    _bench_parser(sub)
    _record_parser(sub)
    _top_parsers(sub)

    replay = sub.add_parser(
        "replay",
        help="replay recorded sessions through the codecs and books",
        description="Feed recorded frames (and recorded REST snapshots) through the same code "
        "the shards run; print one JSON summary per symbol.",
    )
    replay.add_argument("--exchange", required=True, help="exchange of the recording (e.g. binance)")
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE", help="recording files (WebSocket and HTTP)")
    return parser


def _bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure the cluster against a seeded simulated market (and a peer)",
        description="Run the simulator, the cluster and an embedded Redis for --duration seconds and print one "
        "JSON object: messages, msgs_per_s, cpu_us_per_msg (shards + merger + parent), latency_ms (simulator to "
        "Redis commit), rss_mb, lost (verified against the simulator's truth). See BENCHMARKS.md.",
    )
    bench.add_argument("--duration", type=_positive_float, default=30.0, metavar="S", help="seconds (default: 30)")
    bench.add_argument(
        "--warmup", type=_positive_float, default=5.0, metavar="S",
        help="first seconds left out of the measurement (default: 5)",
    )  # fmt: skip
    bench.add_argument(
        "--shards", type=_positive_int, metavar="N",
        help='worker processes (default: cluster.shards "auto", one per core less one: 1 on 2 cores)',
    )  # fmt: skip
    bench.add_argument(
        "--msgs-per-s", type=_positive_float, default=10_000.0, metavar="M",
        help="messages per second the simulator sends (default: 10000). The market is built from the seed before "
        "the run (progress on stderr; ~220 bytes per message in the simulator: ~110 MB for 25 s at 20k msgs/s) "
        "and only sent during it",
    )  # fmt: skip
    bench.add_argument(
        "--max-speed", action="store_true",
        help="send the pre-built market (sized by --msgs-per-s x --duration) as fast as the clients read it, once "
        "they have fetched their book snapshots (until then 2k msgs/s; sim.books_wait_s in the JSON); the "
        "window ends when the cluster has written all of it: the highest rate the cluster takes (latency then "
        "measures queueing)",
    )  # fmt: skip
    bench.add_argument(
        "--rate", type=_positive_float, default=100.0, metavar="R",
        help="market events per second per symbol: the market's shape (R/100 book changes per depth message; "
        "with --live its pace) (default: 100)",
    )  # fmt: skip
    bench.add_argument(
        "--live", action="store_true",
        help="run the simulator's live market model instead (paced by --rate, not --msgs-per-s; its own CPU shares "
        "the cores, ~8-11k msgs/s at most here); the only way for exchanges other than binance",
    )  # fmt: skip
    bench.add_argument(
        "--exchange", default="binance",
        help="binance (default); kraken or okx need --live (the pre-built market is Binance-only)",
    )  # fmt: skip
    bench.add_argument(
        "-s", "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="a setting for the cluster, as in settings.toml, e.g. -s redis.batch_interval=0.001 (repeatable)",
    )  # fmt: skip
    bench.add_argument(
        "--symbols", type=_positive_int, default=100, metavar="K", help="simulated symbols (default: 100)"
    )
    bench.add_argument("--seed", type=int, default=7, help="market seed (default: 7)")
    bench.add_argument("--peer", choices=["cryptofeed"], help="also run this peer against the same simulated market")
    bench.add_argument(
        "--var-dir", default="var/bench", metavar="DIR", help="runtime files, wiped per run (default: var/bench)"
    )
    bench.add_argument(
        "--rss-every", type=_positive_float, default=0.0, metavar="S",
        help="also record each process's RSS every S seconds (rss_series in the JSON; for --duration 600)",
    )  # fmt: skip
    bench.add_argument("--json", action="store_true", help="print only the JSON result (no progress lines)")


def _record_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    record = sub.add_parser(
        "record",
        help="record the feeds' frames and REST responses for `ingest replay`",
        description="Run the configured feeds' connections (the shards' own code: subscriptions, snapshots, "
        "resyncs, pings; no bus, no Redis) and write everything each connection opens, sends, receives and "
        "fetches to DIR/<connection>.rec in the line format `ingest replay` reads. Progress on stderr every 5 s; "
        "at the end a summary with the `ingest replay` command of each exchange. Ctrl-C stops and leaves "
        "complete files.",
        epilog="example: ingest record --simulate --duration 10 --exchange binance --out recordings/try",
    )
    _settings_arg(record)
    record.add_argument(
        "--simulate", action="store_true",
        help="also start the exchange simulator and record from it; at the end of --duration the market is frozen "
        "and the recording catches up, so its replay ends with the simulator's final books",
    )  # fmt: skip
    record.add_argument(
        "--duration", type=_positive_float, metavar="S", help="stop after S seconds (default: run until Ctrl-C)"
    )
    record.add_argument(
        "--out", metavar="DIR", help="directory of the recording files (default: recordings/<UTC time>)"
    )
    record.add_argument(
        "--exchange", action="append", metavar="NAME",
        help="record only this exchange's feeds (repeat for more; default: every feed in the settings)",
    )  # fmt: skip


def _top_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    url_help = (
        "the cluster's status endpoint, host:port or a URL (default: settings' [metrics] listen, or with port 0 "
        "the address the running cluster wrote to {var}/metrics.addr)"
    )
    status = sub.add_parser(
        "status",
        help="one-shot summary of the running cluster (exit 0 ready, 1 not ready, 2 nothing answers)",
        description="Ask the running cluster's parent for /status and print readiness (and why not), the "
        "processes (CPU, RSS, restarts), the merger's throughput and Redis lag, and every feed.",
    )
    _settings_arg(status)
    status.add_argument("--url", metavar="URL", help=url_help)
    status.add_argument("--json", action="store_true", help="print the /status document as is, on one line")
    top = sub.add_parser(
        "top",
        help="live terminal dashboard of the running cluster",
        description="Shards and their CPU, feeds (rate, staleness, book state, gaps), merger throughput and Redis "
        "lag from the parent's /status; the top of book, a price chart and recent trades of one symbol from "
        "Redis. Keys: n/p next/previous symbol, q (or Ctrl-C) quits. Fits an 80x24 terminal.",
    )
    _settings_arg(top)
    top.add_argument("--url", metavar="URL", help=url_help)
    top.add_argument(
        "--symbol", metavar="EXCHANGE:SYMBOL", type=_exchange_symbol,
        help="the symbol whose book and trades are shown, e.g. binance:BTC-USDT (default: the first feed)",
    )  # fmt: skip
    top.add_argument(
        "--interval", type=_positive_float, default=1.0, metavar="S", help="seconds between frames (default: 1)"
    )
    top.add_argument(
        "--frames", type=_positive_int, metavar="N",
        help="print N frames one after another and exit, not full screen (for scripts and screenshots)",
    )  # fmt: skip


def _exchange_symbol(text: str) -> str:
    exchange, sep, symbol = text.partition(":")
    if not sep or not exchange or not symbol:
        raise argparse.ArgumentTypeError(f"not EXCHANGE:SYMBOL: {text!r} (e.g. binance:BTC-USDT)")
    return text


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_build()
        return _dispatch(args)
    except UserError as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _check_build() -> None:
    """An edited source whose old extension would run instead of it (`ingest.compiled`) is an error."""
    from ingest.compiled import problem

    if (said := problem()) is not None:
        raise UserError(said)


def _dispatch(args: argparse.Namespace) -> int:
    from tools import commands

    handler = {
        "run": commands.run,
        "sim": commands.sim,
        "plan": commands.plan,
        "check-config": commands.check_config,
        "tail": commands.tail,
        "replay": commands.replay,
        "bench": _bench,
        "record": _record,
        "status": commands.status,
        "top": commands.top,
    }[args.command]
    return handler(args)


def _bench(args: argparse.Namespace) -> int:
    from tools.bench import bench

    return bench(args)


def _record(args: argparse.Namespace) -> int:
    from tools.record import record

    return record(args)


def print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
