"""A consumer-group worker that survives being killed: no entry is processed zero times.

It reads the trade streams of every symbol in the settings as member ``--name`` of the group
``--group``, processes each entry (here: appends one line to ``--out`` and flushes it), then
acknowledges it. Kill it at any moment (even SIGKILL) and start it again:

- under the same name, it first gets back the entries it had read and not acknowledged;
- under another name, it claims what a dead member left pending for ``--claim-idle`` seconds.

An entry processed when the worker died before acknowledging it is processed again: at least once,
never zero times (make processing idempotent, e.g. by the entry id, for exactly-once effects).

    ingest run --simulate                                      # one terminal
    python examples/group_worker.py --out /tmp/trades.txt      # another; kill it, start it again
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import types

import redis

from bus.consumer import Group, redis_url, stream_key
from ingest.events import Trade
from ingest.settings import load

stopping = False


def _stop(signum: int, frame: types.FrameType | None) -> None:
    global stopping
    stopping = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", "-c", default="settings.toml", help="the cluster's settings file")
    parser.add_argument("--redis", help="Redis URL (default: the cluster's, from the settings)")
    parser.add_argument("--group", default="example-workers")
    parser.add_argument("--name", default="worker-1", help="this member's name in the group")
    parser.add_argument("--start", default="$", help='where a new group starts: "$" (now), "0" (the beginning), an id')
    parser.add_argument("--claim-idle", type=float, default=30.0, help="claim entries pending this long elsewhere")
    parser.add_argument("--out", required=True, help="file the processed entries are appended to")
    parser.add_argument("--idle-exit", type=float, help="exit after this many seconds without a new entry")
    parser.add_argument("--work", type=float, default=0.0, help="seconds each batch takes to process (a demo)")
    args = parser.parse_args()
    settings = load(args.settings)
    prefix = settings.redis.key_prefix
    keys = [stream_key("trade", f.exchange, s, prefix) for f in settings.feeds if "trades" in f.channels
            for s in f.symbols]  # fmt: skip
    client = redis.Redis.from_url(args.redis or redis_url(args.settings))
    group = Group(client, args.group, args.name, keys, start=args.start)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    idle = 0.0
    with open(args.out, "a", encoding="utf-8") as out:
        while not stopping:
            entries = group.read(count=500, block=0.5)
            entries += group.claim(min_idle=args.claim_idle)
            for e in entries:  # process, then acknowledge
                ev = e.event
                what = f"{ev.exchange} {ev.symbol} {ev.trade_id}" if isinstance(ev, Trade) else ev.kind
                out.write(f"{e.stream} {e.id} {what}\n")
            out.flush()
            if entries and args.work:
                time.sleep(args.work)  # slow work: a kill now leaves the batch pending, to be processed again
            group.ack(*entries)
            idle = 0.0 if entries else idle + 0.5
            if args.idle_exit is not None and idle >= args.idle_exit:
                break
    print(f"stopped; pending in the group: {sum(group.pending().values())}", file=sys.stderr)


if __name__ == "__main__":
    main()
