"""WebSocket signing with a transit key: Vault computes every SIGN, the sidecar never holds the
secret, and the verifying exchange accepts the subscription, the login and the order."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_transit import Transit
from tests.fixtures_ws import recv_json, ws_upstream
from tests.test_transit_e2e import sidecar_with, transit_entry
from tests.test_ws_proxy import ORDER, answers, api, sub


async def test_a_transit_key_signs_subscriptions_and_the_trading_api(
    exchange: RunningExchange, transit: Transit, tmp_path: Path
) -> None:
    api_key, secret = exchange.new_key()
    await transit.aimport("gate-ws-bot", secret)
    policy = transit.policy("gate-ws-bot")
    entries = [transit_entry(transit, "gate-ws-bot", api_key=api_key)]
    received: list[str] = []
    upstream = {"ws": ws_upstream(exchange)}
    async with sidecar_with(
        exchange, transit, tmp_path, entries, [policy], upstream=upstream
    ) as sidecar:
        url = sidecar.url("bot").replace("http://", "ws://") + "/ws/v4/"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_str(sub("spot.orders", ["BTC_USDT"]))
            received.append(json.dumps(await recv_json(ws)))
            await ws.send_str(api("spot.login", "", "t-1"))
            received.append(json.dumps(await recv_json(ws, answers("t-1"))))
            await ws.send_str(api("spot.order_place", ORDER, "t-2"))
            placed = await recv_json(ws, answers("t-2"))
            received.append(json.dumps(placed))
    assert placed["header"]["status"] == "200"
    frames = exchange.state.ws_frames
    assert [(f.channel, f.verdict, f.api_key) for f in frames] == [
        ("spot.orders", "ok", api_key),
        ("spot.login", "ok", api_key),
        ("spot.order_place", "ok", api_key),
    ]
    assert not [text for text in received if secret in text]
