"""Print trades from the bus as they happen.

    ingest run --simulate                                  # one terminal
    python examples/print_trades.py                        # another: every trade
    python examples/print_trades.py trade.binance.BTC-USDT # one symbol (any topic prefix)
"""

from __future__ import annotations

import argparse

from bus.consumer import endpoints, subscribe
from ingest.events import Trade, TradeGap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefix", nargs="?", default="trade.", help="topic prefix (default: trade.)")
    parser.add_argument("--settings", "-c", default="settings.toml", help="the cluster's settings file")
    parser.add_argument("--count", type=int, help="stop after this many trades")
    args = parser.parse_args()
    seen = 0
    with subscribe(endpoints(args.settings), args.prefix) as sub:
        for event in sub:
            if isinstance(event, Trade):
                print(f"{event.exchange:8} {event.symbol:10} {event.side:4} {event.qty} @ {event.price}"
                      f"  id={event.trade_id}", flush=True)  # fmt: skip
                seen += 1
            elif isinstance(event, TradeGap):
                print(f"{event.exchange:8} {event.symbol:10} LOST ids {event.gap_from}..{event.gap_to}", flush=True)
            if args.count is not None and seen >= args.count:
                return


if __name__ == "__main__":
    main()
