"""The simulator's ground-truth log: what the market really did, to check a run against.

One JSON object per line (orjson), symbols canonical (``BTC-USDT``)::

    {"t":"subscribed","exchange":"binance","symbol":"BTC-USDT","next_trade_id":123,"ts":<ns>}
    {"t":"trade","exchange":..,"symbol":..,"trade_id":123,"price":"..","qty":"..","side":"buy","ts":<ns>}
    {"t":"book","exchange":..,"symbol":..,"update_id":..,"bids":[[p,q],..],"asks":[[p,q],..]}
    {"t":"frozen","ts":<ns>}

- ``subscribed`` is written the first time any client subscribes to any stream of a symbol;
  ``next_trade_id`` is the id of the first trade a client could have seen.
- ``trade`` lines follow for every trade generated after that (``side`` is the taker's), none before.
- ``book`` (best first, full book) for every subscribed symbol and then ``frozen`` are written once,
  when the simulator is frozen; a log without ``frozen`` is from a run that did not end cleanly.

Writes are buffered in memory and reach the file on `TruthLog.flush` (or when the buffer passes
`FLUSH_BYTES`, which bounds memory). `load_truth` reads a log back; it tolerates a torn last line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Key = tuple[str, str]  # (exchange, canonical symbol)
Level = tuple[str, str]
Side = Literal["buy", "sell"]

FLUSH_BYTES = 1 << 20


class TruthLog:
    """Writer of the ground-truth log. Not thread safe; one event loop owns it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")  # a new run, a new truth
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._watching: set[Key] = set()

    def watching(self, exchange: str, symbol: str) -> bool:
        """True once `subscribed` was recorded for this symbol: its trades belong in the log."""
        return (exchange, symbol) in self._watching

    def subscribed(self, exchange: str, symbol: str, next_trade_id: int, ts: int) -> bool:
        """Record the first subscription of a symbol; later calls do nothing. True if recorded."""
        if (exchange, symbol) in self._watching:
            return False
        self._watching.add((exchange, symbol))
        self._write(
            {
                "t": "subscribed",
                "exchange": exchange,
                "symbol": symbol,
                "next_trade_id": next_trade_id,
                "ts": ts,
            }
        )
        return True

    def trade(
        self, exchange: str, symbol: str, trade_id: int, price: str, qty: str, side: Side, ts: int
    ) -> None:
        """Record a trade; ignored for a symbol nobody has subscribed yet."""
        if (exchange, symbol) not in self._watching:
            return
        self._write(
            {
                "t": "trade",
                "exchange": exchange,
                "symbol": symbol,
                "trade_id": trade_id,
                "price": price,
                "qty": qty,
                "side": side,
                "ts": ts,
            }
        )

    def book(
        self, exchange: str, symbol: str, update_id: int, bids: Sequence[Level], asks: Sequence[Level]
    ) -> None:
        """Record a final book (best first on both sides), valid at ``update_id``."""
        self._write(
            {
                "t": "book",
                "exchange": exchange,
                "symbol": symbol,
                "update_id": update_id,
                "bids": [list(level) for level in bids],
                "asks": [list(level) for level in asks],
            }
        )

    def frozen(self, ts: int) -> None:
        """Record that the market stopped; nothing true happens after this line."""
        self._write({"t": "frozen", "ts": ts})

    def flush(self) -> None:
        """Write everything buffered to the file (the OS's cache; readers in other processes see it)."""
        if self._buffer:
            self._file.write(b"".join(self._buffer))
            self._buffer.clear()
            self._buffered = 0
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()

    def _write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        self._buffer.append(line)
        self._buffered += len(line)
        if self._buffered >= FLUSH_BYTES:
            self.flush()


@dataclass(frozen=True, slots=True)
class TruthTrade:
    trade_id: int
    price: str
    qty: str
    side: Side
    ts: int


@dataclass(frozen=True, slots=True)
class TruthBook:
    """A final book: bids and asks best first, valid at exchange update id ``update_id``."""

    update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass
class GroundTruth:
    """A truth log read back.

    ``subscribed`` maps each subscribed symbol to its ``next_trade_id`` at first subscription;
    ``trades`` has a (possibly empty) list for each of them, in the order generated;
    ``books`` holds the final books (empty unless the log was frozen)."""

    trades: dict[Key, list[TruthTrade]] = field(default_factory=dict)
    books: dict[Key, TruthBook] = field(default_factory=dict)
    subscribed: dict[Key, int] = field(default_factory=dict)
    frozen: bool = False
    frozen_ts: int | None = None


def load_truth(path: Path | str) -> GroundTruth:
    """Read a truth log. Trades of a symbol before its ``subscribed`` line are left out; a torn last
    line (a writer killed mid-write) is ignored, any other bad line raises ``ValueError``."""
    truth = GroundTruth()
    lines = Path(path).read_bytes().split(b"\n")
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            if n == len(lines) - 1:
                break
            raise ValueError(f"{path}:{n + 1}: not JSON") from None
        kind = rec.get("t")
        if kind == "subscribed":
            key = (rec["exchange"], rec["symbol"])
            if key not in truth.subscribed:
                truth.subscribed[key] = int(rec["next_trade_id"])
                truth.trades[key] = []
        elif kind == "trade":
            key = (rec["exchange"], rec["symbol"])
            if key in truth.trades:
                truth.trades[key].append(
                    TruthTrade(int(rec["trade_id"]), rec["price"], rec["qty"], rec["side"], int(rec["ts"]))
                )
        elif kind == "book":
            truth.books[(rec["exchange"], rec["symbol"])] = TruthBook(
                int(rec["update_id"]),
                tuple((p, q) for p, q in rec["bids"]),
                tuple((p, q) for p, q in rec["asks"]),
            )
        elif kind == "frozen":
            truth.frozen = True
            truth.frozen_ts = int(rec["ts"])
        else:
            raise ValueError(f"{path}:{n + 1}: unknown record type {kind!r}")
    return truth
