"""The consumer API: read the cluster's events from the bus (live) or from Redis Streams (durable).

Live, from the bus (every shard's endpoint, topic prefixes, canonical events)::

    from bus.consumer import endpoints, subscribe
    for event in subscribe(endpoints("settings.toml"), "trade.binance."):
        print(event.symbol, event.price, event.qty)

    async for event in asubscribe(endpoints(), "bar."):   # asyncio
        ...

Durable, from Redis: plain reads from the latest or any id, and consumer groups (at least once)::

    from bus.consumer import Group, redis_url, stream_key
    client = redis.Redis.from_url(redis_url("settings.toml"))  # the embedded Redis too
    group = Group(client, "my-group", "worker-1", [stream_key("trade", "binance", "BTC-USDT")])
    while True:
        entries = group.read()                 # own unacked entries first (after a restart), then new ones
        entries += group.claim(min_idle=30.0)   # what a dead consumer left pending
        for e in entries:
            handle(e.event)
        group.ack(*entries)

A book kept from its stream::

    book = LiveBook(client, "binance", "BTC-USDT").load()
    while True:
        book.update(block=1.0)
        print(book.valid, book.best())
"""

from bus.consumer.book import BookState, LiveBook
from bus.consumer.live import AsyncSubscription, Subscription, asubscribe, subscribe
from bus.consumer.streams import Entry, Group, StreamReader, decode_entry, stream_key
from bus.consumer.where import endpoints, redis_url

__all__ = [
    "AsyncSubscription",
    "BookState",
    "Entry",
    "Group",
    "LiveBook",
    "StreamReader",
    "Subscription",
    "asubscribe",
    "decode_entry",
    "endpoints",
    "redis_url",
    "stream_key",
    "subscribe",
]
