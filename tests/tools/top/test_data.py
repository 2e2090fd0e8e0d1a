"""The dashboard's I/O: the status URL, /status over real HTTP, and a symbol's book and trades from a real Redis."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import redis

from bus import wire
from bus.embedded_redis import EmbeddedRedis, free_port
from bus.streams import StreamWriter
from ingest.events import BookDelta, BookSnapshot, BookStatus, Event, Trade
from ingest.settings import load
from tools.top.data import NoCluster, SymbolData, fetch_status, status_url

BOOK = ("binance", "BTC-USDT", "BTCUSDT")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """A plain HTTP file server (not a cluster) over a folder holding ``status`` (not JSON)."""
    (tmp_path / "status").write_text("hello, I am not a cluster\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_status_url_accepts_an_address_a_base_or_the_whole_url() -> None:
    assert status_url(None, "127.0.0.1:9464") == "http://127.0.0.1:9464/status"
    assert status_url(None, "http://10.0.0.5:9000/") == "http://10.0.0.5:9000/status"
    assert status_url(None, "https://ops.example/cluster/status") == "https://ops.example/cluster/status"


def test_nothing_listening_is_one_line_naming_the_address() -> None:
    url = f"http://127.0.0.1:{free_port()}/status"
    with pytest.raises(NoCluster) as e:
        fetch_status(url)
    assert str(e.value) == f"no cluster answers at {url} ([Errno 111] Connection refused): is `ingest run` running?"


def test_a_server_that_is_not_a_cluster_is_told_apart(web: str) -> None:
    with pytest.raises(NoCluster, match=r"answered, but not with JSON: not a cluster's status endpoint"):
        fetch_status(f"http://{web}/status")
    with pytest.raises(NoCluster, match=r"/nothing answered HTTP 404: not a cluster's status endpoint"):
        fetch_status(f"http://{web}/nothing")


def _settings(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(f'[redis]\nurl = "{url}"\n[[feeds]]\nexchange = "binance"\nsymbols = ["BTC-USDT"]\n')
    return path


def _write(client: redis.Redis, events: list[Event]) -> None:
    StreamWriter(client, "md", maxlen=10**6).write([wire.batch_body([wire.encode(e) for e in events])], [])


def test_the_book_and_the_newest_trades_come_from_redis(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    path = _settings(tmp_path, redis_server.url)
    _write(redis_client, [
        BookSnapshot(*BOOK, (("100.0", "1"), ("99.5", "2")), (("101.0", "3"),), 1, 0, 0),
        BookDelta(*BOOK, (("100.5", "4"),), (("101.0", "0"), ("102.0", "5")), 2, 2, 0, 0),
        *(Trade(*BOOK, str(i), f"100.{i}", "0.1", "buy", i, i) for i in range(1, 4)),
    ])  # fmt: skip
    data = SymbolData(load(path), "binance", "BTC-USDT", str(path))
    view = data.view(wait=10)
    assert view.problem is None and view.valid
    assert list(view.bids) == [("100.5", "4"), ("100.0", "1"), ("99.5", "2")] and list(view.asks) == [("102.0", "5")]
    assert [t.price for t in view.trades] == ["100.3", "100.2", "100.1"]
    _write(redis_client, [BookStatus(*BOOK, "resyncing", "gap", None, None, 0),
                          Trade(*BOOK, "4", "99.9", "1", "sell", 4, 4)])  # fmt: skip
    view = data.view(wait=10)
    assert not view.valid and view.trades[0].price == "99.9" and view.bids[0] == ("100.5", "4")
    data.close()


def test_a_long_book_stream_loads_in_the_background_while_trades_show(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    path = _settings(tmp_path, redis_server.url)
    deltas = [BookDelta(*BOOK, ((f"99.{i % 90 + 10}", str(i % 5 + 1)),), (), i, i, 0, 0) for i in range(2, 20_002)]
    _write(redis_client, [BookSnapshot(*BOOK, (("100.0", "1"),), (("101.0", "3"),), 1, 0, 0), *deltas,
                          Trade(*BOOK, "1", "100.5", "0.1", "buy", 1, 1)])  # fmt: skip
    data = SymbolData(load(path), "binance", "BTC-USDT", str(path))
    first = data.view()
    assert first.loading and not first.valid and first.bids == [] and [t.price for t in first.trades] == ["100.5"]
    view = data.view(wait=60)
    assert not view.loading and view.valid
    assert view.bids[0] == ("100.0", "1") and view.bids[1] == ("99.99", "5") and view.asks[0] == ("101.0", "3")
    data.close()


def test_no_redis_or_nothing_written_is_a_problem_shown_not_raised(
    tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    path = _settings(tmp_path, redis_server.url)
    view = SymbolData(load(path), "binance", "ETH-USDT", str(path)).view(wait=10)
    assert view.problem == "nothing in Redis yet under md:*:binance:ETH-USDT"
    path = _settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    view = SymbolData(load(path), "binance", "BTC-USDT", str(path)).view(wait=10)
    assert view.problem is not None and view.problem.startswith("redis: Error 111 connecting to 127.0.0.1:")
