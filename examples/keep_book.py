"""Keep an order book from its Redis stream and print its top every second.

    ingest run --simulate                               # one terminal
    python examples/keep_book.py binance BTC-USDT       # another
"""

from __future__ import annotations

import argparse
import time

import redis

from bus.consumer import LiveBook, redis_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exchange")
    parser.add_argument("symbol", help='canonical, e.g. "BTC-USDT"')
    parser.add_argument("--settings", "-c", default="settings.toml", help="the cluster's settings file")
    parser.add_argument("--redis", help="Redis URL (default: the cluster's, from the settings)")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--seconds", type=float, help="stop after this long")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis or redis_url(args.settings))
    book = LiveBook(client, args.exchange, args.symbol).load()
    started = time.monotonic()
    while args.seconds is None or time.monotonic() - started < args.seconds:
        shown = time.monotonic()
        while time.monotonic() - shown < 1.0:
            book.update(block=0.2)
        bids, asks = book.depth(args.levels)
        state = "valid" if book.valid else "NOT VALID (resyncing)"
        print(f"{args.exchange} {args.symbol} seq={book.seq} {state} entry={book.last_id}", flush=True)
        print("  bids " + "  ".join(f"{q}@{p}" for p, q in bids), flush=True)
        print("  asks " + "  ".join(f"{q}@{p}" for p, q in asks), flush=True)


if __name__ == "__main__":
    main()
