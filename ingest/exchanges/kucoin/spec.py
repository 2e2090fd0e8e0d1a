"""The `ExchangeSpec` for KuCoin spot: every KuCoin fact the generic runner needs.

- **Where to connect**: before each session, ``POST /api/v1/bullet-public`` (no auth) for a token and
  a server (`ingest.exchanges.kucoin.endpoint`); the session connects to
  ``<endpoint>?token=..&connectId=..`` and waits for ``welcome`` before it sends anything
  (``greeting``).
- **Keepalive**: ``{"id":"ping","type":"ping"}`` every ``pingInterval`` of the bullet answer, whether or
  not data flows (``app_ping_periodic``: KuCoin counts the client's pings, not its traffic); silence
  past ``pingInterval + pingTimeout`` is a dead session. KuCoin has no WebSocket protocol pings.
- **Subscriptions**: after ``welcome``, one ``subscribe`` per topic and batch of at most 100 symbols
  (``/market/level2:BTC-USDT,ETH-USDT``, ``/market/match:..``), each acknowledged (``response``).
  KuCoin counts each symbol of a topic as a subscription, 300 at most per connection [OSS: KuCoin
  FAQ, as cited by clients], hence ``max_streams_per_connection``.
- **Books**: ``/market/level2`` carries changes of the whole book with ``sequenceStart``/``sequenceEnd``;
  they are calibrated against a REST snapshot's ``sequence`` (`KucoinRule`). The snapshot is the
  public ``/api/v1/market/orderbook/level2_100``: ``level2_20`` is shallower for the same cost, and
  the full book (``/api/v3/market/orderbook/level2``) needs an API key. A gap resyncs that symbol
  alone from a fresh snapshot. *Limitation*: the snapshot holds 100 levels a side while the updates
  cover the whole book, so beyond the 100th level the book knows only levels that changed since the
  snapshot, and when levels near the top go, a level deeper than 100 that existed all along may come
  into the top 100 unseen. A book is exact wherever the exchange's book has at most 100 levels a side
  (the simulator's have ``[simulator] levels``, 50 by default); for deeper real books, trust the top
  levels only until the next resync. No truncation is applied (``truncate_to_depth`` false): a
  level deeper than 100 that changed is real and is kept.
- **A silent book** (a feed's ``symbol_timeout``; KuCoin sends nothing for a book that does not
  change, so there is no default) is revived by unsubscribing and subscribing its level2 topic.
- **Trades**: ``/market/match`` fills; ``trade_id`` is the match's ``sequence``, which the REST
  ``/api/v1/market/histories`` (the last 100 trades) also carries, so trades missed while no session
  was up are backfilled from it as far as it reaches (`ingest.exchanges.kucoin.history`).
- **Rotation**: a token is valid 24 h and KuCoin drops a connection after about 24 h; a session is
  replaced make before break after 23 h (``session_life``), an hour of margin for a slow handover.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ingest.exchanges.base import Channel, ExchangeSpec, Subscription
from ingest.exchanges.kucoin.codec import EXCHANGE, LEVEL2_TOPIC, MATCH_TOPIC, KucoinCodec
from ingest.exchanges.kucoin.endpoint import BULLET
from ingest.exchanges.kucoin.history import HISTORY
from ingest.exchanges.kucoin.sequence import KucoinRule
from ingest.exchanges.kucoin.symbols import canonical_symbol, native_symbol

SYMBOLS_PER_TOPIC = 100  # KuCoin's limit on the symbols one subscribe names
SNAPSHOT_DEPTH = 100
SESSION_LIFE_S = 23 * 3600.0
PING = '{"id":"ping","type":"ping"}'
# Topic prefix per canonical channel.
TOPICS: dict[Channel, str] = {"book": LEVEL2_TOPIC, "trades": MATCH_TOPIC}


def topics(natives: Sequence[str], channels: Sequence[Channel]) -> list[str]:
    """``["/market/level2:BTC-USDT,ETH-USDT", "/market/match:BTC-USDT,ETH-USDT"]``: per channel, the
    symbols in batches of at most 100."""
    out: list[str] = []
    for channel in channels:
        for i in range(0, len(natives), SYMBOLS_PER_TOPIC):
            out.append(TOPICS[channel] + ",".join(natives[i : i + SYMBOLS_PER_TOPIC]))
    return out


def connect_url(ws_url: str, sub: Subscription) -> str:
    """Unused: the bullet answer says where each session connects (``endpoint_request``)."""
    return ws_url


def subscribe_frames(sub: Subscription) -> list[str]:
    """One acknowledged ``subscribe`` per topic, ids ``"1"``, ``"2"``.. (unique on the connection)."""
    return [
        orjson.dumps(
            {"id": str(n), "type": "subscribe", "topic": topic, "privateChannel": False, "response": True}
        ).decode()
        for n, topic in enumerate(topics(sub.natives, sub.channels), start=1)
    ]


def resubscribe_frames(native: str, sub: Subscription) -> list[str]:
    """Unsubscribe, then subscribe, the level2 topic of one symbol: revives a book stream that went
    silent (a REST snapshot follows). Ids name the symbol, so the acks can be told apart."""
    topic = TOPICS["book"] + native
    return [
        orjson.dumps({"id": f"{prefix}-{native}", "type": kind, "topic": topic, "privateChannel": False,
                      "response": True}).decode()
        for prefix, kind in (("unsub", "unsubscribe"), ("resub", "subscribe"))
    ]  # fmt: skip


def snapshot_url(rest_url: str, native: str) -> str:
    return f"{rest_url.rstrip('/')}/api/v1/market/orderbook/level2_{SNAPSHOT_DEPTH}?symbol={native}"


SPEC = ExchangeSpec(
    name=EXCHANGE,
    ws_url="wss://ws-api-spot.kucoin.com",
    rest_url="https://api.kucoin.com",
    max_streams_per_connection=300,
    snapshot_source="rest",
    native_symbol=native_symbol,
    canonical_symbol=canonical_symbol,
    connect_url=connect_url,
    subscribe_frames=subscribe_frames,
    snapshot_url=snapshot_url,
    new_codec=KucoinCodec,
    sequence_rule=KucoinRule(),
    # The bullet answer's pingInterval / pingTimeout override these (18 s and 18 + 10 s today).
    ping_interval=18.0,
    liveness_timeout=28.0,
    ws_ping=False,
    app_ping=PING,
    app_ping_interval=18.0,
    app_ping_periodic=True,
    greeting=True,
    endpoint_request=BULLET,
    resubscribe_frames=resubscribe_frames,
    session_life=SESSION_LIFE_S,
    trade_ids_contiguous=False,
    trade_history=HISTORY,
)
