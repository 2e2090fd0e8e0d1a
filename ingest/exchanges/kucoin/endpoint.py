"""KuCoin's public bullet token: where, and how, each session connects (`EndpointRequest`).

``POST /api/v1/bullet-public`` (no auth, no body) answers (protocols.md E')::

    {"code":"200000","data":{"token":"..","instanceServers":[{"endpoint":"wss://ws-api-spot.kucoin.com/",
     "encrypt":true,"protocol":"websocket","pingInterval":18000,"pingTimeout":10000}]}}

The session connects to ``<endpoint>?token=<token>&connectId=<connect id>`` (the connect id unique per
session; KuCoin's ``welcome`` echoes it), pings every ``pingInterval`` ms and is dead after
``pingInterval + pingTimeout`` ms of silence (a ping went out at most ``pingInterval`` into the silence
and its pong is due ``pingTimeout`` later). The values are the server's, whatever they are (older
captures show 50000 ms). Pure.
"""

from __future__ import annotations

from urllib.parse import quote

from ingest.errors import DecodeError
from ingest.exchanges.base import Endpoint, EndpointRequest
from ingest.exchanges.fields import loads_object
from ingest.exchanges.kucoin import messages as m

PATH = "/api/v1/bullet-public"
MAX_INTERVAL_MS = 24 * 3600 * 1000  # an interval longer than a token's life is nonsense


def bullet_url(rest_url: str) -> str:
    return f"{rest_url.rstrip('/')}{PATH}"


def decode_bullet(body: bytes, connect_id: str) -> Endpoint:
    """The `Endpoint` of the first ``websocket`` server of a bullet answer; `DecodeError` for a
    refusal, a body without a token or such a server, or intervals KuCoin would never send."""
    try:
        bullet = m.parse_bullet(m.parse_response(loads_object(body), "bullet-public"))
        if not bullet.token:
            raise DecodeError("bullet answer with an empty token")
        servers = [s for s in bullet.instanceServers if s.protocol == "websocket"]
        if not servers:
            raise DecodeError("bullet answer without a websocket server")
        server = servers[0]
        if not server.endpoint.startswith(("wss://", "ws://")):
            raise DecodeError(f"bullet endpoint is not a WebSocket URL: {server.endpoint[:80]!r}")
        for name, value in (("pingInterval", server.pingInterval), ("pingTimeout", server.pingTimeout)):
            if not 0 < value <= MAX_INTERVAL_MS:
                raise DecodeError(f"bullet {name} out of range: {value}")
    except DecodeError as exc:
        raise DecodeError(str(exc), body) from None
    sep = "&" if "?" in server.endpoint else "?"
    url = f"{server.endpoint}{sep}token={quote(bullet.token, safe='')}&connectId={quote(connect_id, safe='')}"
    return Endpoint(
        url=url,
        ping_interval=server.pingInterval / 1000,
        liveness_timeout=(server.pingInterval + server.pingTimeout) / 1000,
    )


BULLET = EndpointRequest(url=bullet_url, decode=decode_bullet)
