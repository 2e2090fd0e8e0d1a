"""OKX's REST trade history (``GET /api/v5/market/history-trades``) over the venue's recent trades:
``type`` 1 pages by trade id, 2 by time; ``after`` older than, ``before`` newer than; newest first."""

from __future__ import annotations

import orjson
from aiohttp import web

from tools.sim.market import MarketTrade
from tools.sim.venue import Venue

HISTORY_LIMIT = 100  # OKX's largest ``limit`` for /api/v5/market/history-trades


async def history_trades(venue: Venue, request: web.Request) -> web.Response:
    q = request.query
    inst = q.get("instId", "")
    if inst not in venue.markets:
        return _rest_error("51001", "Instrument ID doesn't exist.")
    params: dict[str, int | None] = {}
    for name, default in (("type", "1"), ("after", None), ("before", None), ("limit", str(HISTORY_LIMIT))):
        raw = q.get(name, default)
        if raw is not None and not raw.isdigit():
            return _rest_error("51000", f"Parameter {name} error")
        params[name] = None if raw is None else int(raw)
    kind, after, before, limit = params["type"], params["after"], params["before"], params["limit"]
    if kind not in (1, 2):
        return _rest_error("51000", "Parameter type error")
    if limit is None or limit < 1:
        return _rest_error("51000", "Parameter limit error")
    limit = min(limit, HISTORY_LIMIT)

    def key(entry: tuple[MarketTrade, int]) -> int:
        return entry[0].trade_id if kind == 1 else entry[1] // 1_000_000

    rows = [e for e in venue.trades[inst] if (after is None or key(e) < after) and (before is None or key(e) > before)]
    rows = rows[:limit] if before is not None and after is None else rows[-limit:]
    data = [
        {
            "instId": inst,
            "side": t.side,
            "sz": t.qty,
            "px": t.price,
            "tradeId": str(t.trade_id),
            "ts": str(ts // 1_000_000),
            "source": "0",
        }
        for t, ts in reversed(rows)
    ]
    return web.Response(body=orjson.dumps({"code": "0", "msg": "", "data": data}), content_type="application/json")


def _rest_error(code: str, msg: str) -> web.Response:
    return web.Response(body=orjson.dumps({"code": code, "msg": msg, "data": []}), content_type="application/json")
