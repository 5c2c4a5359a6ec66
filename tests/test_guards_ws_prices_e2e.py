"""The price guards on the WebSocket trading API, from the bot's side, against the verifying
exchange: a futures sell priced 1 is weighed at the last trade, a fat-fingered limit price is
refused either side, and neither leaves; an order near the market does. The same guard code as
REST (``sidecar/proxy/guarding.py``)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.fixtures_ws import WsBench, recv_json, ws_upstream
from tests.test_ws_budget import answers, api

ORDER = {"contract": "BTC_USDT", "size": 1, "price": "60000", "tif": "gtc"}


async def test_websocket_orders_are_priced_at_the_market_and_fat_fingers_never_leave(
    exchange: RunningExchange,
) -> None:
    guards = {"max_notional": 70, "max_price_deviation_pct": 10}
    entry, environ, api_key, secret = env_key("fut", "futures-only", guards=guards)
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], upstream={"ws": ws_upstream(exchange)})
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("p-1", {**ORDER, "size": -100, "price": "1"}, "a sell priced at the last trade 60000"),
        ("p-2", {**ORDER, "size": -100, "price": "1e-30"}, "a sell priced at the last trade"),
        ("p-3", {**ORDER, "price": "600000"}, "% above the last trade 60000"),
        ("p-4", {**ORDER, "price": "6000"}, "% below the last trade 60000"),
    ]
    async with running_sidecar(config, environ) as sidecar:
        wb = WsBench(exchange, sidecar, {"fut": (api_key, secret)})
        mark = wb.mark()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("fut", "/v4/ws/usdt")) as ws,
        ):
            for req_id, order, message in cases:
                await ws.send_str(api("futures.order_place", order, req_id))
                refused = await recv_json(ws, answers(req_id))
                assert refused["error"]["label"] == "SIDECAR_GUARD_DENIED", refused
                assert message in refused["error"]["message"], refused
            await ws.send_str(api("futures.order_place", {**ORDER, "price": "61000"}, "p-5"))
            placed = await recv_json(ws, answers("p-5"))
    assert placed["header"]["status"] == "200", placed
    sent = [json.loads(f.text)["payload"]["req_id"] for f in wb.frames(mark)]
    assert sent == ["p-5"]  # the refused orders never reached the exchange
