"""Rolling windows in running sidecars in front of the verifying exchange: a full window answers
403 SIDECAR_GUARD_DENIED naming the window, its use and limit, with Retry-After; a WebSocket
order gets the same as an error frame with every id; two sidecars sharing one window through
redis-server never let more through than its limits, also when Redis stops mid-run (each then
holds its share)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from sidecar.runtime.reload import apply_config
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import scrape
from tests.fixtures_redis import RedisServer
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.fixtures_ws import WsBench, recv_json, ws_upstream

JSON = {"Content-Type": "application/json"}
ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "100"}  # 100 USDT


async def post(sidecar: RunningSidecar, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(sidecar.url("bot") + path, data=json.dumps(body), headers=JSON) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.json()


def placed(exchange: RunningExchange, api_key: str) -> int:
    """Spot orders the exchange placed for this key (batch orders each count)."""
    return sum(
        1
        for account_key, account in exchange.state.accounts.items()
        if account_key == api_key
        for _ in account.spot_orders.values()
    )


async def test_a_full_window_is_refused_naming_it_with_retry_after_and_batches_count_each(
    exchange: RunningExchange,
) -> None:
    windows = [{"per_s": 60, "max_orders": 5}, {"per_s": 3600, "max_notional": 350}]
    entry, environ, api_key, secret = env_key("bot", "spot-only", guards={"windows": windows})
    exchange.state.add_key(api_key, secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        assert (await post(sidecar, "/api/v4/spot/batch_orders", [ORDER, ORDER]))[0] == 200
        assert (await post(sidecar, "/api/v4/spot/orders", ORDER))[0] == 201
        status, headers, doc = await post(sidecar, "/api/v4/spot/orders", ORDER)
        assert status == 403 and doc["label"] == "SIDECAR_GUARD_DENIED", doc
        assert doc["message"].startswith(
            "bot: windows[1].max_notional: 300 of 350 notional used in the last 3600 s, and "
            "this call adds 100; enough frees up in "
        ), doc
        assert 3590 <= int(headers["Retry-After"]) <= 3600
        assert placed(exchange, api_key) == 3
        small = {**ORDER, "amount": "0.1"}  # 10 USDT: fits the notional, and orders 4 and 5
        assert (await post(sidecar, "/api/v4/spot/orders", small))[0] == 201
        assert (await post(sidecar, "/api/v4/spot/orders", small))[0] == 201
        status, headers, doc = await post(sidecar, "/api/v4/spot/orders", small)
        assert status == 403 and "windows[0].max_orders: 5 of 5 orders used" in doc["message"]
        assert 55 <= int(headers["Retry-After"]) <= 60
        assert placed(exchange, api_key) == 5
        samples = await scrape(sidecar.admin_url)
    windowed = (
        "gate_sidecar_guard_denials_total",
        (("guard", "windows[0].max_orders"), ("key", "bot")),
    )
    assert samples[windowed] == 1


async def test_a_websocket_order_over_a_window_gets_an_error_frame_with_every_id(
    exchange: RunningExchange,
) -> None:
    windows = [{"per_s": 60, "max_orders": 1, "instruments": ["BTC_USDT"]}]
    entry, environ, api_key, secret = env_key("bot", "futures-only", guards={"windows": windows})
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], upstream={"ws": ws_upstream(exchange)})
    order = {"contract": "BTC_USDT", "size": 1, "price": "60000", "tif": "gtc"}
    async with running_sidecar(config, environ) as sidecar:
        wb = WsBench(exchange, sidecar, {"bot": (api_key, secret)})
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("bot", "/v4/ws/usdt")) as ws,
        ):
            for req_id in ("a", "b"):
                payload = {"req_id": req_id, "req_param": order}
                await ws.send_str(json.dumps({"time": 1, "id": 7, "channel": "futures.order_place",
                                              "event": "api", "payload": payload}))  # fmt: skip
            seen: list[dict[str, Any]] = []
            first = await recv_json(
                ws, lambda d: d.get("request_id") == "a" and not d.get("ack"), seen=seen
            )
            second = next((d for d in seen if d.get("request_id") == "b"), None)
            if second is None:
                second = await recv_json(ws, lambda d: d.get("request_id") == "b")
        assert first["header"]["status"] == "200"
        assert second["header"]["status"] == "403" and second["id"] == 7
        assert second["data"]["errs"]["label"] == "SIDECAR_GUARD_DENIED"
        assert "windows[0].max_orders: 1 of 1 orders used" in second["data"]["errs"]["message"]
        frames = [f for f in exchange.state.ws_frames if f.channel == "futures.order_place"]
        assert len(frames) == 1  # the refused one never left


@contextlib.asynccontextmanager
async def two_replicas(
    exchange: RunningExchange, redis_url: str, windows: list[dict[str, Any]]
) -> AsyncIterator[tuple[RunningSidecar, RunningSidecar, str]]:
    rate_limit = {"gate_defaults": False, "shared": redis_url, "replicas": 2}
    entry, environ, api_key, secret = env_key(
        "bot", "spot-only", guards={"windows": windows}, rate_limit=rate_limit
    )
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry])
    async with running_sidecar(config, environ) as one, running_sidecar(config, environ) as two:
        yield one, two, api_key


async def burst(sidecar: RunningSidecar, count: int, body: Any = ORDER) -> list[int]:
    answers = await asyncio.gather(
        *(post(sidecar, "/api/v4/spot/orders", body) for _ in range(count))
    )
    return [status for status, _, _ in answers]


async def test_two_sidecars_share_one_window_through_redis_and_hold_their_share_without_it(
    exchange: RunningExchange, redis_server: RedisServer
) -> None:
    windows = [{"per_s": 600, "max_orders": 10}, {"per_s": 600, "max_notional": 1600}]
    async with two_replicas(exchange, redis_server.url, windows) as (one, two, api_key):
        # Together, at once: never more than max_orders (10), whoever sends.
        first = await asyncio.gather(burst(one, 9), burst(two, 9))
        passed = [statuses.count(201) for statuses in first]
        assert sum(passed) == 10 and all(p > 0 for p in passed), first
        assert placed(exchange, api_key) == 10

    # A fresh window: max_notional shared, then Redis stops mid-run.
    redis_server.client().flushall()
    windows = [{"per_s": 600, "max_orders": 100}, {"per_s": 600, "max_notional": 1000}]
    async with two_replicas(exchange, redis_server.url, windows) as (one, two, api_key):
        for sidecar in (one, two, one, two, one, two):  # 600 of 1000, 300 each
            assert (await burst(sidecar, 1))[0] == 201
        redis_server.stop()
        # Each replica now judges by its own share, 1000 / 2 = 500, counting its own 300.
        second = await asyncio.gather(burst(one, 4), burst(two, 4))
        assert [statuses.count(201) for statuses in second] == [2, 2], second
        assert placed(exchange, api_key) == 10  # 1000 of 1000 notional: never more
        for sidecar in (one, two):
            samples = await scrape(sidecar.admin_url)
            assert samples[("gate_sidecar_windows_fallback", (("key", "bot"),))] == 1


async def test_a_reload_switches_the_mode_and_keeps_an_unchanged_window(
    exchange: RunningExchange,
) -> None:
    entry, environ, api_key, secret = env_key(
        "bot", "spot-only", guards={"windows": [{"per_s": 600, "max_orders": 2}]}
    )
    exchange.state.add_key(api_key, secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        assert await burst(sidecar, 2) == [201, 201]
        assert (await burst(sidecar, 1)) == [403]
        await apply_config(sidecar.sidecar, make_config(exchange.url, [{**entry, "mode": "warn"}]))
        assert (await burst(sidecar, 1)) == [201]  # forwarded, and counted: 3 of 2
        await apply_config(sidecar.sidecar, make_config(exchange.url, [entry]))
        status, _, doc = await post(sidecar, "/api/v4/spot/orders", ORDER)
        assert status == 403 and "windows[0].max_orders: 3 of 2 orders used" in doc["message"]
        assert placed(exchange, api_key) == 3
