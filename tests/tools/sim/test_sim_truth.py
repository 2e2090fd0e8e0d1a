"""The ground-truth log: written, flushed on demand, read back."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tools.sim.truth import TruthBook, TruthLog, TruthTrade, load_truth


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "truth" / "run.jsonl"
    log = TruthLog(path)
    log.trade("binance", "BTC-USDT", 9, "1.00000000", "2.00000000", "buy", 1)  # before subscription
    assert not log.watching("binance", "BTC-USDT")
    assert log.subscribed("binance", "BTC-USDT", 10, 2)
    assert not log.subscribed("binance", "BTC-USDT", 11, 3)  # only the first counts
    assert log.watching("binance", "BTC-USDT")
    log.subscribed("binance", "ETH-USDT", 500, 3)
    log.trade("binance", "BTC-USDT", 10, "43210.12000000", "0.50000000", "buy", 4)
    log.trade("binance", "BTC-USDT", 11, "43210.11000000", "0.00100000", "sell", 5)
    log.trade("binance", "SOL-USDT", 1, "1.00000000", "1.00000000", "sell", 5)  # never subscribed
    log.book(
        "binance", "BTC-USDT", 77, [("43210.11000000", "1.00000000")], [("43210.12000000", "2.00000000")]
    )
    log.frozen(6)
    assert path.read_bytes() == b""  # buffered until flushed
    log.flush()
    log.close()

    truth = load_truth(path)
    assert truth.frozen and truth.frozen_ts == 6
    assert truth.subscribed == {("binance", "BTC-USDT"): 10, ("binance", "ETH-USDT"): 500}
    assert truth.trades == {
        ("binance", "BTC-USDT"): [
            TruthTrade(10, "43210.12000000", "0.50000000", "buy", 4),
            TruthTrade(11, "43210.11000000", "0.00100000", "sell", 5),
        ],
        ("binance", "ETH-USDT"): [],
    }
    assert truth.books == {
        ("binance", "BTC-USDT"): TruthBook(
            77, (("43210.11000000", "1.00000000"),), (("43210.12000000", "2.00000000"),)
        )
    }
    first = orjson.loads(path.read_bytes().split(b"\n")[0])
    assert first == {
        "t": "subscribed",
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "next_trade_id": 10,
        "ts": 2,
    }


def test_reader_leaves_out_trades_before_subscription_and_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [
        {"t": "trade", "exchange": "binance", "symbol": "BTC-USDT", "trade_id": 1, "price": "1.00000000",
         "qty": "1.00000000", "side": "buy", "ts": 1},
        {"t": "subscribed", "exchange": "binance", "symbol": "BTC-USDT", "next_trade_id": 2, "ts": 2},
        {"t": "trade", "exchange": "binance", "symbol": "BTC-USDT", "trade_id": 2, "price": "1.00000000",
         "qty": "1.00000000", "side": "sell", "ts": 3},
    ]  # fmt: skip
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + b'{"t":"trade","exch')
    truth = load_truth(path)
    assert not truth.frozen and truth.books == {}
    assert [t.trade_id for t in truth.trades[("binance", "BTC-USDT")]] == [2]


def test_reader_rejects_a_bad_line_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"t":"frozen","ts":1}\nnot json\n{"t":"frozen","ts":2}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl:2"):
        load_truth(path)


def test_large_buffers_flush_by_themselves(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    log = TruthLog(path)
    log.subscribed("binance", "BTC-USDT", 0, 0)
    for i in range(20_000):
        log.trade("binance", "BTC-USDT", i, "43210.12000000", "0.50000000", "buy", i)
    assert path.stat().st_size > 0  # bounded memory: the buffer went to the file on its own
    log.close()
    assert len(load_truth(path).trades[("binance", "BTC-USDT")]) == 20_000
