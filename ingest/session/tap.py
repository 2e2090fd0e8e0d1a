"""A tap on a feed's wire: what a connection opened, sent, received and fetched, with exact times.

`FeedConnection` takes an optional `Tap` (``None`` by default: the shards pay one ``is None`` check
per frame). Every session of the connection reports to it, in the order the event loop handles
things: ``opened`` when a WebSocket is up, ``sent`` for every frame written to it (subscriptions,
pings, resubscriptions), ``received`` for every frame read (with the very ``ts_recv`` the codec is
given), ``http`` for every REST response body read (snapshots, trade history, token requests).
What a tap does with them is I/O and lives outside ``ingest`` (``tools/record.py`` writes recordings).
"""

from __future__ import annotations

from typing import Protocol


class Tap(Protocol):
    def opened(self, url: str, ts: int) -> None: ...

    def sent(self, url: str, ts: int, text: str) -> None: ...

    def received(self, ts: int, data: str | bytes) -> None: ...

    def http(self, url: str, ts: int, body: bytes) -> None: ...
