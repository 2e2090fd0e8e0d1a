"""Every exchange decoder, fuzzed: events out or `DecodeError`, nothing else, for any input.

The decoders are discovered from the exchange registry (`ingest.exchanges.SPECS`): each spec's
``new_codec``, every distinct codec its ``replay_codec`` gives (for the live URL and for the same host
with no path, an older protocol version), and each one's ``decode_snapshot``. Each is driven with

- arbitrary bytes and text;
- arbitrary JSON values whose keys and strings come from the exchange's own vocabulary;
- structured mutations of real valid messages (the seeds below: the real recordings in
  ``../shared/recordings/cryptofeed`` and the exchanges' documented examples used by the codec
  tests): keys dropped, added or duplicated, values swapped for another type, absurd numbers
  (huge integers, ``1e308``, ``1e999``, NaN/Infinity literals, ``"1e-9"`` prices, negatives),
  empty and enormous strings, unicode and lone surrogates, oversized arrays, deep nesting; then, on
  the text, truncation, stray and invalid UTF-8 bytes, str or bytes frames. Several frames go
  through one codec in a row, so state (Kraken's precisions, v1 channel ids) is exercised too.

Every result must be a list of canonical events, `Reconnect` or `Reply` with well-typed fields
(`check_decoded`); any exception other than `DecodeError` fails. Runs are derandomized, so CI sees
the same examples every time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import DecodeError
from ingest.events import BookDelta, BookSnapshot, BookStatus, ConnectionStatus, Trade
from ingest.exchanges import SPECS
from ingest.exchanges.base import Codec, Decoded, ExchangeSpec, Greeting, Reconnect, Reply, Resync

RECORDINGS = Path(__file__).resolve().parents[3].parent / "shared" / "recordings" / "cryptofeed"
TS = 1_700_000_000_123_456_789
INT64_MAX = 2**63 - 1

# Examples per decoder and strategy; with several frames per example, each decoder sees well over
# a thousand frames in all. INGEST_FUZZ_SCALE=N runs N times as many, randomly (a deeper search on a
# developer's machine; CI runs the same derandomized examples every time).
SCALE = int(os.environ.get("INGEST_FUZZ_SCALE", "0"))
MUTATION_EXAMPLES = 300
JSON_EXAMPLES = 100
RAW_EXAMPLES = 100


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples * max(1, SCALE),
        derandomize=not SCALE,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# -- seeds: real valid messages ----------------------------------------------------------------------


def _recorded(name: str, needles: list[str], limit: int = 1) -> list[str]:
    """Received frames of a recording holding each needle (``limit`` per needle), in file order."""
    lines = (RECORDINGS / name).read_text().splitlines()
    out: list[str] = []
    for needle in needles:
        found = [p for h, _, p in (ln.partition(": ") for ln in lines) if p and h[:1].isdigit() and needle in p]
        assert found, f"no frame with {needle!r} in {name}"
        out.extend(found[:limit])
    return out


def _trimmed(frame: str, keys: tuple[str, ...], keep: int = 3) -> str:
    """A long recorded frame with its level lists cut to ``keep`` levels (mutating 1000 levels is
    slow and adds nothing a few do not)."""

    def cut(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (v[:keep] if k in keys and isinstance(v, list) else cut(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        return value

    return json.dumps(cut(json.loads(frame)), separators=(",", ":"))


def _binance_seeds() -> list[str]:
    recorded = _recorded(
        "BINANCE.ws.1.0",
        ['"e":"depthUpdate"', '"e":"aggTrade"', "@bookTicker", '"e":"kline"', '"U":499869765'],
    )
    return [
        *(_trimmed(f, ("b", "a")) for f in recorded),
        '{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,'
        '"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}',
        '{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],'
        '"a":[["0.0026","100"]]}',
        '{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,'
        '"T":1672515782136,"m":true,"M":true}',
        '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}',
        '{"result":null,"id":1}',
        '{"result":["btcusdt@aggTrade"],"id":"ab-3"}',
        '{"code":2,"msg":"Invalid request: unknown variant","id":7}',
        '{"stream":"bnbbtc@depth5@100ms","data":{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[]}}',
    ]


def _binance_snapshots() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in (RECORDINGS / "BINANCE.http.0.0").read_text().splitlines():
        if "symbol=" not in line:
            continue
        native = line.partition("symbol=")[2].partition("&")[0]
        out.append((_trimmed(line.partition(": ")[2].partition(" header: ")[0], ("bids", "asks")), native))
    out.append(('{"code":-1121,"msg":"Invalid symbol."}', "BTCUSDT"))
    return out


KRAKEN_V2_INSTRUMENT = (
    '{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"USD","status":"enabled",'
    '"precision":4}],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online",'
    '"qty_precision":8,"qty_increment":0.00000001,"price_precision":1,"price_increment":0.1},'
    '{"symbol":"MATIC/USD","qty_precision":8,"price_precision":4}]}}'
)


def _kraken_seeds() -> list[str]:
    v1_book = _recorded("KRAKEN.ws.50.0", ['"as":[', '"c":"', '{"a":[', '{"b":['])
    v1_other = _recorded(
        "KRAKEN.ws.48.0", ['"event":"systemStatus"', '"channelName":"trade"', '"trade","', '"event":"heartbeat"']
    )
    return [
        # v2 (docs examples, as in test_kraken_codec.py)
        KRAKEN_V2_INSTRUMENT,
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,'
        '"qty":0.10000000},{"price":45283.4,"qty":1.54582015}],"asks":[{"price":45285.2,"qty":0.00100000}],'
        '"checksum":3310070434,"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
        '{"channel":"book","type":"update","data":[{"symbol":"MATIC/USD","bids":[{"price":0.5657,'
        '"qty":1098.3947558}],"asks":[],"checksum":2114181697,"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
        '{"channel":"book","type":"snapshot","data":[{"symbol":"ETH/EUR","bids":[{"price":1500.10,"qty":0.50}],'
        '"asks":[{"price":1500.25,"qty":1.5}],"checksum":1}]}',
        '{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"buy","price":0.5147,'
        '"qty":6423.46326,"ord_type":"limit","trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"},'
        '{"symbol":"MATIC/USD","side":"sell","price":0.5146,"qty":1.0,"ord_type":"market","trade_id":4665847,'
        '"timestamp":"2023-09-25T07:48:37+01:00"}]}',
        '{"channel":"heartbeat"}',
        '{"channel":"status","type":"update","data":[{"version":"2.0.0","system":"online","api_version":"v2"}]}',
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.5}]}',
        '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"ALGO/USD"},'
        '"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}',
        '{"error":"Currency pair not supported XBT/USDD","method":"subscribe","req_id":2,"success":false}',
        '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z"}',
        # v1 (the real recordings)
        *(_trimmed(f, ("as", "bs", "a", "b")) for f in v1_book),
        *v1_other,
        '{"event":"pong","reqid":42}',
        '{"errorMessage":"Currency pair not supported","event":"subscriptionStatus","pair":"XBT/USDD",'
        '"status":"error","subscription":{"name":"book"},"reqid":7}',
    ]


def _okx_seeds() -> list[str]:
    arg = '"arg":{"channel":"books","instId":"BTC-USDT"}'
    trades = '"arg":{"channel":"trades","instId":"BTC-USDT"}'
    return [
        f'{{{arg},"action":"snapshot","data":[{{"asks":[["8476.98","415","0","13"],["8477","7","0","2"]],'
        '"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"]],"ts":"1597026383085",'
        '"checksum":-855196043,"prevSeqId":-1,"seqId":123456}]}',
        f'{{{arg},"action":"update","data":[{{"asks":[["8476.98","0","0","0"]],"bids":[["8476.97","300","0","14"]],'
        '"ts":"1597026383185","checksum":0,"prevSeqId":123456,"seqId":123470}]}',
        f'{{{arg},"action":"update","data":[{{"asks":[],"bids":[["1","2","0","1"]],"ts":"6","checksum":7}}]}}',
        f'{{{trades},"data":[{{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306",'
        '"side":"buy","ts":"1630048897897","count":"3","source":"0","seqId":1234}]}',
        '{"arg":{"channel":"trades","instId":"ETH-BTC"},"data":[{"instId":"ETH-BTC","tradeId":"11","px":"0.05",'
        '"sz":"2","side":"sell","ts":"10"}]}',
        '{"id":"1512","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}',
        '{"id":"1512","event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}',
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed","connId":"a4d3ae55"}',
        '{"event":"channel-conn-count","channel":"orders","connCount":"2","connId":"a4d3ae55"}',
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"9999.99"}]}',
        "pong",
    ]


def _okx_snapshots() -> list[tuple[str, str]]:
    return [
        (
            '{"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"]],'
            '"bids":[["41006.3","0.30178218","0","2"]],"ts":"1629966436396","seqId":123}]}',
            "BTC-USDT",
        ),
        ('{"code":"51001","msg":"Instrument ID does not exist","data":[]}', "BTC-USDT"),
    ]


def _bybit_seeds() -> list[str]:
    book = '"topic":"orderbook.50.BTCUSDT"'
    return [
        f'{{{book},"ts":1672304484978,"type":"snapshot","data":{{"s":"BTCUSDT","b":[["16493.50","0.006"],'
        '["16493.00","0.100"]],"a":[["16611.00","0.029"],["16612.00","0.213"]],"u":18521288,"seq":7961638724},'
        '"cts":1672304484976}',
        f'{{{book},"type":"delta","ts":1671179923046,"data":{{"s":"BTCUSDT","b":[],"a":[["17440.50","78.857"],'
        '["17442.00","0"]],"u":13079593,"seq":22520573260},"cts":1671179923040}',
        f'{{{book},"type":"delta","ts":5,"data":{{"s":"BTCUSDT","b":[["1","2"]],"a":[],"u":1}}}}',
        '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,'
        '"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af",'
        '"BT":false},{"T":1672304486866,"s":"BTCUSDT","S":"Sell","v":"0.25","p":"16578","i":"2290000000061666327",'
        '"BT":false,"seq":1783284617}]}',
        '{"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b","req_id":"10001",'
        '"op":"subscribe"}',
        '{"success":false,"ret_msg":"error:handler not found,topic:orderbook.40.BTCUSDT","conn_id":"d4b6",'
        '"req_id":"sub1","op":"subscribe"}',
        '{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}',
        '{"req_id":"test","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}',
        '{"topic":"tickers.BTCUSDT","ts":1673853746003,"type":"snapshot","cs":2588407389,"data":{"symbol":"BTCUSDT"}}',
    ]


def _coinbase_seeds() -> list[str]:
    head = '"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z"'
    trades = '"channel":"market_trades","client_id":"","timestamp":"2025-12-31T06:00:13.715382929Z"'
    return [
        # protocols.md D: the docs' level2 snapshot, hummingbot's real update, the docs' market_trades
        # snapshot, ccxt issue #27606's real market_trades update, heartbeats, subscriptions.
        f'{{{head},"sequence_num":0,"events":[{{"type":"snapshot","product_id":"BTC-USD","updates":['
        '{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":"0.06317902"},'
        '{"side":"offer","event_time":"1970-01-01T00:00:00Z","price_level":"21922.3","new_quantity":"0.02"}]}]}',
        '{"channel":"l2_data","client_id":"","timestamp":"2024-10-08T09:10:36.120390407Z","sequence_num":14,'
        '"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid","event_time":'
        '"2024-10-08T09:10:35.171517Z","price_level":"62317.89","new_quantity":"0.032355"},{"side":"offer",'
        '"event_time":"2024-10-08T09:10:35.171517Z","price_level":"62394.77","new_quantity":"0"}]},'
        '{"type":"update","product_id":"ETH-USD","updates":[]}]}',
        '{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z","sequence_num":0,'
        '"events":[{"type":"snapshot","trades":[{"trade_id":"000000000","product_id":"ETH-USD","price":"1260.01",'
        '"size":"0.3","side":"BUY","time":"2019-08-14T20:42:27.265Z"}]}]}',
        f'{{{trades},"sequence_num":1854,"events":[{{"type":"update","trades":[{{"product_id":"BTC-USD",'
        '"trade_id":"929248663","price":"88355.58","size":"0.00003338","time":"2025-12-31T06:00:13.654578Z",'
        '"side":"BUY"},{"product_id":"BTC-USD","trade_id":"34b080bf-fcfd-445a-832b-46b5ddc65601",'
        '"price":"88355.59","size":"0.00099993","time":"2025-12-31T06:00:13.613311Z","side":"SELL"}]}]}',
        '{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:56.121961769Z","sequence_num":1855,'
        '"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",'
        '"heartbeat_counter":"3049"}]}',
        '{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:57Z","sequence_num":1857,'
        '"events":[{"current_time":"x","heartbeat_counter":3051}]}',
        '{"channel":"subscriptions","client_id":"","timestamp":"2026-04-07T14:30:00.000000Z","sequence_num":0,'
        '"events":[{"subscriptions":{"level2":["BTC-USD"],"market_trades":["BTC-USD","ETH-USD"]}}]}',
        '{"channel":"ticker","client_id":"","timestamp":"2023-02-09T20:30:37.167359596Z","sequence_num":0,'
        '"events":[{"type":"snapshot","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"21932.98"}]}]}',
        '{"type":"error","message":"Failed to subscribe","reason":"No channels provided"}',
    ]


def _coinbase_snapshots() -> list[tuple[str, str]]:
    return [
        (
            '{"pricebook":{"product_id":"BTC-USD","bids":[{"price":"21921.73","size":"0.06317902"}],'
            '"asks":[{"price":"21922.3","size":"0.02"}],"time":"2023-02-09T20:32:50.714964Z"},"last":"21922",'
            '"mid_market":"21922.015","spread_bps":"2.6","spread_absolute":"0.57"}',
            "BTC-USD",
        ),
        ('{"error":"NOT_FOUND","error_details":"product not found","message":"product not found"}', "BTC-USD"),
    ]


def _kucoin_seeds() -> list[str]:
    level2 = '{"type":"message","topic":"/market/level2:BTC-USDT","subject":"trade.l2update","data":'
    return [
        # protocols.md E'
        level2 + '{"changes":{"asks":[["18906","0.00331","14103845"]],"bids":[["18891.9","0.15688","14103847"]]},'
        '"sequenceStart":14103844,"sequenceEnd":14103847,"symbol":"BTC-USDT","time":1663747970273}}',
        level2 + '{"changes":{"asks":[["0","0","14103848"],["18906","0","14103849"]],"bids":[]},'
        '"sequenceStart":"14103848","sequenceEnd":"14103850","symbol":"BTC-USDT"}}',
        # KuCoin docs, match execution data
        '{"type":"message","topic":"/market/match:BTC-USDT","subject":"trade.l3match","data":{"sequence":'
        '"1545896669145","type":"match","symbol":"BTC-USDT","side":"buy","price":"0.08200000000000000000",'
        '"size":"0.01022222000000000000","tradeId":"5c24c5da03aa673885cd67aa","takerOrderId":'
        '"5c24c5d903aa6772d55b371e","makerOrderId":"5c2187d003aa677bd09d5c93","time":"1545913818099033203"}}',
        '{"id":"hQvf8jkno","type":"welcome"}',
        '{"id":"1545910590801","type":"pong"}',
        '{"id":"1545910660739","type":"ack"}',
        '{"id":"2","type":"error","code":404,"data":"topic /market/level2:NOPE-USDT is not found"}',
        '{"type":"message","topic":"/market/ticker:BTC-USDT","subject":"trade.ticker","data":{"price":"0.08"}}',
    ]


_COINBASE_HISTORY = [
    '{"trades":[{"trade_id":"929248659","product_id":"BTC-USD","price":"88355.58","size":"0.00006677",'
    '"time":"2025-12-31T06:00:13.45609Z","side":"BUY","exchange":"coinbase"},{"trade_id":"929248658",'
    '"product_id":"BTC-USD","price":"88355.59","size":"0.00022409","time":"2025-12-31T06:00:12.605867Z",'
    '"side":"SELL"}],"best_bid":"88355.58","best_ask":"88355.59"}',
    '{"error":"INVALID_ARGUMENT","error_details":"limit is required","message":"limit is required"}',
]


HISTORY_SEEDS: dict[str, list[str]] = {
    "kucoin": [
        '{"code":"200000","data":[{"sequence":"1545896668571","price":"0.07","size":"0.004","side":"buy",'
        '"time":1545904567062140823},{"sequence":"1545896668578","price":"0.054","size":"0.066","side":"sell",'
        '"time":1545904581619888405}]}',
        '{"code":"400100","msg":"symbol invalid"}',
    ],
    "coinbase": _COINBASE_HISTORY,
    "bybit": [
        '{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"execId":"2100000000007764263",'
        '"symbol":"BTCUSDT","price":"16618.49","size":"0.00012","side":"Buy","time":"1672052955758",'
        '"isBlockTrade":false},{"execId":"2100000000007764262","symbol":"BTCUSDT","price":"16618.5","size":"1",'
        '"side":"Sell","time":"1672052955001","isBlockTrade":false}]},"retExtInfo":{},"time":1672053054358}',
        '{"retCode":10001,"retMsg":"Not supported symbols","result":{},"retExtInfo":{},"time":1672053054358}',
    ],
    "binance": [
        '[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,'
        '"isBuyerMaker":true,"isBestMatch":true},{"id":28458,"price":"4.1","qty":"1","quoteQty":"4.1",'
        '"time":1499865549591,"isBuyerMaker":false,"isBestMatch":true}]',
        '{"code":-1121,"msg":"Invalid symbol."}',
    ],
    "kraken": [
        '{"error":[],"result":{"XXBTZUSD":[["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952],'
        '["30243.30000","0.00376960",1688669598.2804112,"s","l","",61044953]],"last":"1688671969993150842"}}',
        '{"error":["EQuery:Unknown asset pair"]}',
    ],
    "okx": [
        '{"code":"0","msg":"","data":[{"instId":"BTC-USDT","side":"sell","sz":"0.00001","source":"0",'
        '"px":"29963.2","tradeId":"242720720","ts":"1654161646974"},{"instId":"BTC-USDT","side":"buy",'
        '"sz":"0.00001","source":"0","px":"29964.1","tradeId":"242720719","ts":"1654161641568"}]}',
        '{"code":"50011","msg":"Too Many Requests","data":[]}',
    ],
}
HISTORY_SYMBOLS = {
    "kucoin": ("BTC-USDT", "BTC-USDT"),
    "coinbase": ("BTC-USD", "BTC-USD"),
    "bybit": ("BTCUSDT", "BTC-USDT"),
    "binance": ("BTCUSDT", "BTC-USDT"),
    "kraken": ("BTC/USD", "BTC-USD"),
    "okx": ("BTC-USDT", "BTC-USDT"),
}

SEEDS: dict[str, list[str]] = {
    "binance": _binance_seeds(),
    "bybit": _bybit_seeds(),
    "coinbase": _coinbase_seeds(),
    "kraken": _kraken_seeds(),
    "kucoin": _kucoin_seeds(),
    "okx": _okx_seeds(),
}
SNAPSHOT_SEEDS: dict[str, list[tuple[str, str]]] = {
    "kucoin": [
        (
            '{"code":"200000","data":{"sequence":"3262786978","time":1550653727731,"bids":[["6500.12","0.45054140"],'
            '["6500.11","0.45054140"]],"asks":[["6500.16","0.57753524"],["6500.15","0.57753524"]]}}',
            "BTC-USDT",
        ),
        ('{"code":"400100","msg":"symbol invalid"}', "BTC-USDT"),
    ],
    "coinbase": _coinbase_snapshots(),
    "bybit": [
        (
            '{"retCode":0,"retMsg":"OK","result":{"s":"BTCUSDT","a":[["65557.7","16.606555"]],"b":[["65485.47",'
            '"47.081829"]],"ts":1716863719031,"u":230704,"seq":1432604333,"cts":1716863718905},"retExtInfo":{},'
            '"time":1716863719382}',
            "BTCUSDT",
        ),
        ('{"retCode":10001,"retMsg":"Illegal category","result":{},"time":1}', "BTCUSDT"),
    ],
    "binance": _binance_snapshots(),
    "kraken": [('{"error":[],"result":{"XXBTZUSD":{"asks":[["1.0","2.0",1]],"bids":[]}}}', "BTC/USD")],
    "okx": _okx_snapshots(),
}


# -- the decoders --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoder:
    id: str
    exchange: str
    new: Callable[[], Codec]


def _bare(url: str) -> str:
    """The URL's host alone: an older protocol version's endpoint (``wss://ws.kraken.com``)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _decoders() -> list[Decoder]:
    out: list[Decoder] = []
    for name, spec in sorted(SPECS.items()):
        seen: set[type] = set()
        makers: list[Callable[[], Codec]] = [lambda spec=spec: spec.new_codec({})]
        if spec.replay_codec is not None:
            replay = spec.replay_codec
            makers += [lambda url=url, replay=replay: replay(url) for url in (spec.ws_url, _bare(spec.ws_url))]
        for make in makers:
            kind = type(make())
            if kind not in seen:
                seen.add(kind)
                out.append(Decoder(f"{name}-{kind.__name__}", name, make))
    return out


DECODERS = _decoders()
# Each exchange's REST trade history decoder, where its spec has one.
HISTORIES: list[ExchangeSpec] = [spec for _, spec in sorted(SPECS.items()) if spec.trade_history is not None]
BY_EXCHANGE: dict[str, list[Decoder]] = {}
for _d in DECODERS:
    BY_EXCHANGE.setdefault(_d.exchange, []).append(_d)


def spec_ids(spec: ExchangeSpec) -> str:
    return spec.name


# -- the contract --------------------------------------------------------------------------------------

PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _text(value: Any, what: str) -> str:
    assert type(value) is str, f"{what} is {type(value).__name__}, not str"
    value.encode("utf-8")  # a lone surrogate cannot be published
    return value


def _decimal(value: Any, what: str, *, positive: bool = False) -> Decimal:
    _text(value, what)
    assert PLAIN_DECIMAL.fullmatch(value), f"{what} is not a plain decimal: {value[:60]!r}"
    number = Decimal(value)
    assert number.is_finite()
    if positive:
        assert number > 0, f"{what} is zero"
    return number


def _int(value: Any, what: str, lo: int = -INT64_MAX - 1, hi: int = INT64_MAX) -> int:
    assert type(value) is int, f"{what} is {type(value).__name__}, not int"
    assert lo <= value <= hi, f"{what} out of range: {value}"
    return value


def _opt_int(value: Any, what: str, lo: int = -INT64_MAX - 1, hi: int = INT64_MAX) -> None:
    if value is not None:
        _int(value, what, lo, hi)


def _symbol(event: Any, exchange: str) -> None:
    assert event.exchange == exchange
    symbol = _text(event.symbol, "symbol")
    base, sep, quote = symbol.partition("-")
    assert sep and base and quote and "-" not in quote, f"symbol is not BASE-QUOTE: {symbol!r}"
    assert symbol.isprintable() and not any(c.isspace() for c in symbol), f"odd symbol {symbol!r}"
    assert _text(event.native, "native")


def _levels(levels: Any, what: str, *, deletes: bool) -> None:
    assert type(levels) is tuple, f"{what} is {type(levels).__name__}"
    for level in levels:
        assert type(level) is tuple and len(level) == 2, f"{what} holds {level!r}"
        price, qty = level
        _decimal(price, f"{what} price", positive=True)
        if not (deletes and qty == "0"):
            _decimal(qty, f"{what} qty", positive=deletes)


def check_decoded(item: Decoded, exchange: str) -> None:
    """One decoded item: the right type, every field well-typed and in range."""
    if isinstance(item, Reply):
        _text(item.request_id, "request_id")
        if item.error is not None:
            _text(item.error, "error")
        return
    if isinstance(item, Reconnect):
        _text(item.reason, "reason")
        return
    if isinstance(item, Greeting):  # the exchange greeted the connection (KuCoin's welcome)
        return
    if isinstance(item, Resync):  # a codec that tracks a per-connection sequence (Coinbase)
        _text(item.reason, "reason")
        assert type(item.natives) is tuple and all(type(n) is str for n in item.natives), item.natives
        return
    assert isinstance(item, Trade | BookSnapshot | BookDelta | BookStatus | ConnectionStatus), repr(item)
    _symbol(item, exchange)
    _int(item.ts_recv, "ts_recv")
    if isinstance(item, Trade):
        assert _text(item.trade_id, "trade_id")
        _decimal(item.price, "price", positive=True)
        _decimal(item.qty, "qty", positive=True)
        assert item.side in ("buy", "sell"), item.side
        _int(item.ts_exchange, "ts_exchange", 0)
    elif isinstance(item, BookSnapshot | BookDelta):
        delta = isinstance(item, BookDelta)
        _levels(item.bids, "bids", deletes=delta)
        _levels(item.asks, "asks", deletes=delta)
        _opt_int(item.seq, "seq")
        if isinstance(item, BookDelta):
            _opt_int(item.first_seq, "first_seq")
        _opt_int(item.checksum, "checksum", -(2**31), 2**32 - 1)
        _int(item.ts_exchange, "ts_exchange", 0)
    else:
        raise AssertionError(f"a codec produced {type(item).__name__}")


def decode_all(decoder: Decoder, frames: list[bytes | str]) -> None:
    """Feed ``frames`` to one codec in order; each must give checked items or `DecodeError`."""
    codec = decoder.new()
    for frame in frames:
        try:
            out = codec.decode(frame, TS)
        except DecodeError as exc:
            assert str(exc), "a DecodeError must say what was wrong"
            continue
        assert type(out) is list, f"decode returned {type(out).__name__}"
        for item in out:
            check_decoded(item, decoder.exchange)


def history_one(spec: ExchangeSpec, body: bytes | str) -> None:
    assert spec.trade_history is not None
    native, symbol = HISTORY_SYMBOLS[spec.name]
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        trades = spec.trade_history.decode(data, native, symbol, TS)
    except DecodeError as exc:
        assert str(exc)
        return
    assert type(trades) is list
    for trade in trades:
        assert isinstance(trade, Trade)
        check_decoded(trade, spec.name)


def snapshot_one(decoder: Decoder, body: bytes | str, native: str) -> None:
    codec = decoder.new()
    try:
        snap = codec.decode_snapshot(body, native, TS)
    except DecodeError as exc:
        assert str(exc)
        return
    assert isinstance(snap, BookSnapshot), f"decode_snapshot returned {type(snap).__name__}"
    check_decoded(snap, decoder.exchange)


# -- mutations -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text emitted as is: number literals kept digit for digit, NaN, 1e999, escapes. (Not a
    ``str`` subclass: hypothesis's shrinker mixes up drawn values of str subclasses with strings.)"""

    text: str


@dataclass
class Dup:
    """An object written with repeated keys: ``pairs`` in order."""

    pairs: list[tuple[str, Any]]


def dump(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Dup):
        return "{" + ",".join(f"{dump(k, ascii_only)}:{dump(v, ascii_only)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{dump(k, ascii_only)}:{dump(v, ascii_only)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def parse(frame: str) -> Any:
    """A seed as a tree whose numbers are `Raw` (so ``0.10000000`` survives a round trip)."""
    try:
        return json.loads(frame, parse_float=Raw, parse_int=Raw)
    except ValueError:
        return Raw(frame)  # OKX's literal "pong"


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


def get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


NASTY_NUMBERS = [
    "0", "-0", "-1", "1", "0.0", "1e308", "-1e308", "1e999", "-1e999", "1E-9", "1e-400", "2.5e-7",
    "NaN", "Infinity", "-Infinity", "9223372036854775807", "9223372036854775808", "18446744073709551616",
    "-9223372036854775809", "123456789012345678901234567890", "9" * 5000, "0." + "0" * 3000 + "1",
    "1" + "0" * 400 + ".5", "1e99999999", "1E-99999999", "0.000000000000000000000000000001", "4294967296",
    "-2147483649", "0.1234567890123456789012345678901234",
]  # fmt: skip
NUMERIC_STRINGS = [
    "", "0", "0.0", "00", "-1", "-0.5", "1e-9", "1E+3", "1e308", "NaN", "nan", "Infinity", "-inf", " 1", "1 ",
    "1.", ".5", "0x10", "1_000", "+1", "١٢٣", "²", "1.2.3", "9" * 5000, "0." + "0" * 5000 + "1", "9" * 20,
    "18446744073709551616", "9223372036854775808", "4294967296", "-1618678132.1", "1618678132.9" + "9" * 5000,
    "99999999999.5", "00000000000000000000000001",
]  # fmt: skip
NASTY_STRINGS = [
    "", "a" * 10000, "\x00", "é中😀", " ", "BTC/USD", "XBT/USD", "BTC-USDT", "BTCUSDT", "BTC-USDT-SWAP",
    "A-B/USD", "A-BUSDT", "BTC USDT", "BTC/USD/EUR", "/USD", "USDT", "book-1000", "book-²", "book-" + "9" * 5000,
    "trade", "buy", "sell", "BUY", "b", "s", "r", "snapshot", "update", "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z", "9999-12-31T23:59:60.999999999999Z", "2023-02-30T00:00:00Z",
    "2023-10-06T17:35:55.440295+99:99", "0001-01-01T00:00:00Z", "2023-10-06T17:35:55.440295",
]  # fmt: skip
# Text inserted into a string, as raw JSON (escapes included): what a symbol or an id must not contain.
STRING_INSERTS = ["\\ud800", "\\udfff", "\\u0000", "\\n", " ", "-", "/", ":", "²", "é", "\\ud83d\\ude00", '\\"']
NASTY_RAW = [
    '"\\ud800"', '"BTC\\udfff/USD"', '"\\u0000"', '"\\ud83d\\ude00"', "[" * 3000 + "]" * 3000,
    "{" + '"a":{' * 2000 + "}" * 2001, "true", "false", "null", "[]", "{}", "[[]]", '[""]', '[["1"]]',
    '[["1","2","3","4","5"]]', '[{"price":1,"qty":1}]', '{"price":"1","qty":"1"}',
]  # fmt: skip


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"-?[0-9][0-9.]*", text))


def _edited(text: str, at: int, insert: str) -> Raw:
    """``text`` as a JSON string with the raw JSON ``insert`` spliced in at ``at``."""
    at = min(at, len(text))
    return Raw(json.dumps(text[:at])[:-1] + insert + json.dumps(text[at:])[1:])


def replacements(original: Any, vocab: list[str]) -> st.SearchStrategy[Any]:
    """A value to put in place of ``original``: mostly one aimed at its kind (absurd numbers for a
    number, numbers in odd spellings for a numeric string, edited text for text), else anything."""
    swaps: list[Any] = [None, True, False, [], {}, [original], {"x": original}]
    targeted: st.SearchStrategy[Any]
    if isinstance(original, Raw):
        swaps.append(original.text)  # number -> string
        targeted = st.sampled_from([Raw(n) for n in NASTY_NUMBERS])
    elif isinstance(original, str):
        swaps.append(Raw(original) if _looks_numeric(original) else Raw("1"))  # string -> number
        edits = st.builds(_edited, st.just(original), st.integers(0, len(original)), st.sampled_from(STRING_INSERTS))
        odd = NUMERIC_STRINGS if _looks_numeric(original) else NASTY_STRINGS
        targeted = st.sampled_from(odd) | edits
    elif isinstance(original, list):
        swaps += [dict(enumerate(original)), original * 500 if original else [None] * 500]
        targeted = st.sampled_from(swaps)
    elif isinstance(original, dict):
        swaps += [list(original.values()), list(original)]
        targeted = st.sampled_from(swaps)
    else:
        targeted = st.sampled_from(swaps)
    anything = st.one_of(
        st.sampled_from(swaps),
        st.sampled_from([Raw(n) for n in NASTY_NUMBERS]),
        st.sampled_from(NUMERIC_STRINGS + NASTY_STRINGS),
        st.sampled_from([Raw(r) for r in NASTY_RAW]),
        st.sampled_from(vocab),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),  # json.dumps writes NaN and Infinity as such
        st.text(max_size=30),
    )
    return st.one_of(targeted, targeted, anything)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str], vocab: list[str]) -> bytes | str:
    """A seed with structural mutations (mostly one: the rest of the frame stays valid, so the
    mutation reaches the code that reads it), then perhaps a textual one."""
    tree = parse(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 4]))):
        every = list(paths(tree))
        leaves = [p for p in every if not isinstance(get(tree, p), dict | list)] or every
        path = draw(st.sampled_from(leaves) | st.sampled_from(every))
        target = get(tree, path)
        op = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "duplicate"]))
        parent = get(tree, path[:-1]) if path else None
        if op == "drop" and isinstance(parent, dict | list):
            del parent[path[-1]]
        elif op == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(vocab))] = draw(replacements(None, vocab))
        elif op == "duplicate" and isinstance(parent, dict):
            pairs = list(parent.items())
            at = draw(st.integers(0, len(pairs)))
            pairs.insert(at, (path[-1], draw(replacements(target, vocab))))
            if len(path) > 1:
                get(tree, path[:-2])[path[-2]] = Dup(pairs)
            else:
                tree = Dup(pairs)
            break  # a Dup node is not walked further
        else:
            new = draw(replacements(target, vocab))
            if path:
                parent[path[-1]] = new
            else:
                tree = new
    text = dump(tree, draw(st.booleans()))
    how = draw(st.sampled_from(["str", "str", "bytes", "bytes", "truncate", "stray-byte", "bom"]))
    if how == "str":
        return text
    data = text.encode("utf-8", "surrogatepass")
    if how == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "stray-byte":
        at = draw(st.integers(0, len(data)))
        stray = draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80", b",", b"]", b'"']))
        return data[:at] + stray + data[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    return data


def single_mutations(seed: str) -> Iterator[bytes | str]:
    """Every single structural mutation of ``seed`` from fixed lists: each key or element dropped,
    each value replaced by every odd value of its kind (and a few of every kind), each key repeated
    with an odd value before and after it. Deterministic; random search then combines them."""
    tree = parse(seed)
    for path in list(paths(tree)):
        if not path:
            continue
        original = get(tree, path)
        values = _fixed_replacements(original)
        for value in [_DROP, *values, *(_Dup(v, before) for v in values[:3] for before in (True, False))]:
            copy = parse(seed)
            parent = get(copy, path[:-1])
            key = path[-1]
            if value is _DROP:
                del parent[key]
            elif isinstance(value, _Dup):
                if not isinstance(parent, dict):
                    continue
                pairs = list(parent.items())
                at = pairs.index((key, parent[key])) + (0 if value.before else 1)
                pairs.insert(at, (key, value.value))
                if len(path) > 1:
                    get(copy, path[:-2])[path[-2]] = Dup(pairs)
                else:
                    copy = Dup(pairs)
            else:
                parent[key] = value
            yield dump(copy, ascii_only=False)


_DROP = object()


@dataclass(frozen=True)
class _Dup:
    value: Any
    before: bool


def _fixed_replacements(original: Any) -> list[Any]:
    common: list[Any] = [None, True, False, [], {}, [original], "", Raw("-1"), Raw("1e999"), Raw('"\\ud800"')]
    if isinstance(original, Raw):
        return [*common, original.text, *(Raw(n) for n in NASTY_NUMBERS)]
    if isinstance(original, str):
        numeric = _looks_numeric(original)
        edits = [_edited(original, at, ins) for at in (0, len(original) // 2, len(original)) for ins in STRING_INSERTS]
        return [
            *common,
            *(NUMERIC_STRINGS if numeric else NASTY_STRINGS),
            *([Raw(original)] if numeric else []),
            *edits,
        ]
    if isinstance(original, list):
        return [*common, dict(enumerate(original)), original * 500 if original else [None] * 500, Raw(NASTY_RAW[4])]
    if isinstance(original, dict):
        return [*common, list(original.values()), Raw(NASTY_RAW[5])]
    return [*common, Raw("0"), "1", "true"]


def vocabulary(seeds: list[str]) -> list[str]:
    """Every key and string value of an exchange's seeds."""
    words: set[str] = set()
    for seed in seeds:
        for path in paths(tree := parse(seed)):
            words.update(p for p in path if isinstance(p, str))
            value = get(tree, path)
            if isinstance(value, str):
                words.add(value)
    return sorted(words)


def json_values(vocab: list[str]) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(vocab)
    )
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=6) | st.dictionaries(st.sampled_from(vocab) | st.text(), children),
        max_leaves=40,
    )


# -- the tests -----------------------------------------------------------------------------------------


def test_every_exchange_has_seeds_and_every_seed_decodes() -> None:
    """A new exchange cannot slip past the fuzzing: it needs seeds, and the seeds must be valid."""
    assert set(SEEDS) == set(SPECS) == set(SNAPSHOT_SEEDS)
    assert {spec.name for spec in HISTORIES} <= set(HISTORY_SEEDS)
    for spec in HISTORIES:
        assert spec.trade_history is not None
        native, symbol = HISTORY_SYMBOLS[spec.name]
        assert spec.trade_history.decode(HISTORY_SEEDS[spec.name][0].encode(), native, symbol, TS)
    for exchange, seeds in SEEDS.items():
        for seed in seeds:
            ok = 0
            for decoder in BY_EXCHANGE[exchange]:
                try:
                    decoder.new().decode(seed, TS)
                    ok += 1
                except DecodeError:
                    pass
            assert ok, f"no {exchange} decoder accepts the seed {seed[:120]!r}"


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.id)
def test_every_single_mutation_of_every_seed(decoder: Decoder) -> None:
    """One codec, fed the valid seeds and then every single mutation of each: all failures are
    reported together (the random tests below stop at the first)."""
    codec = decoder.new()
    failures: list[str] = []
    count = 0
    for seed in SEEDS[decoder.exchange]:
        for frame in [seed, *single_mutations(seed)]:
            count += 1
            try:
                out = codec.decode(frame, TS)
                assert type(out) is list, f"decode returned {type(out).__name__}"
                for item in out:
                    check_decoded(item, decoder.exchange)
            except DecodeError as exc:
                if not str(exc):
                    failures.append(f"an empty DecodeError for {frame[:300]!r}")
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {str(exc)[:200]} <- {frame[:300]!r}")
    assert count > 1000
    assert not failures, f"{len(failures)} of {count} frames:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.id)
@fuzz_settings(MUTATION_EXAMPLES)
@given(data=st.data())
def test_mutated_real_messages(decoder: Decoder, data: st.DataObject) -> None:
    seeds = SEEDS[decoder.exchange]
    vocab = VOCAB[decoder.exchange]
    frames = data.draw(st.lists(mutated(seeds, vocab) | st.sampled_from(seeds), min_size=1, max_size=3))
    decode_all(decoder, frames)


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.id)
@fuzz_settings(JSON_EXAMPLES)
@given(data=st.data())
def test_arbitrary_json(decoder: Decoder, data: st.DataObject) -> None:
    value = data.draw(json_values(VOCAB[decoder.exchange]))
    text = json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    decode_all(decoder, [text, text.encode("utf-8", "surrogatepass")])


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.id)
@fuzz_settings(RAW_EXAMPLES)
@given(frame=st.binary(max_size=400) | st.text(max_size=400))
def test_arbitrary_bytes_and_text(decoder: Decoder, frame: bytes | str) -> None:
    decode_all(decoder, [frame])


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.id)
@fuzz_settings(MUTATION_EXAMPLES)
@given(data=st.data())
def test_snapshot_bodies(decoder: Decoder, data: st.DataObject) -> None:
    seeds = SNAPSHOT_SEEDS[decoder.exchange]
    bodies = [body for body, _ in seeds]
    native = data.draw(st.sampled_from([n for _, n in seeds]))
    body = data.draw(
        mutated(bodies, SNAPSHOT_VOCAB[decoder.exchange]) | st.sampled_from(bodies) | st.binary(max_size=200)
    )
    snapshot_one(decoder, body, native)


@pytest.mark.parametrize("spec", HISTORIES, ids=spec_ids)
def test_every_single_mutation_of_trade_history_bodies(spec: ExchangeSpec) -> None:
    failures: list[str] = []
    for seed in HISTORY_SEEDS[spec.name]:
        for body in [seed, *single_mutations(seed)]:
            try:
                history_one(spec, body)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {str(exc)[:200]} <- {body[:300]!r}")
    assert not failures, f"{len(failures)} bodies:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("spec", HISTORIES, ids=spec_ids)
@fuzz_settings(MUTATION_EXAMPLES)
@given(data=st.data())
def test_trade_history_bodies(spec: ExchangeSpec, data: st.DataObject) -> None:
    seeds = HISTORY_SEEDS[spec.name]
    body = data.draw(mutated(seeds, vocabulary(seeds)) | st.binary(max_size=200) | st.text(max_size=200))
    history_one(spec, body)


VOCAB = {name: vocabulary(seeds) for name, seeds in SEEDS.items()}
SNAPSHOT_VOCAB = {name: vocabulary([b for b, _ in seeds]) for name, seeds in SNAPSHOT_SEEDS.items()}
