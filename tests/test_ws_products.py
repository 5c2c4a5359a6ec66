"""Delivery and options connections, and the amend / cancel-by-ids calls, end to end: a bot with
no secret, the sidecar, the verifying exchange (which checks every signature on its own)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sidecar.devtools.exchange.ws_push import publish
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ws import WsBench, recv_json, ws_bench
from tests.test_ws_proxy import JUNK_AUTH, ORDER, answers, api, sub

DELIVERY, OPTIONS, FUTURES = "/v4/ws/delivery/usdt", "/v4/ws/options/usdt", "/v4/ws/usdt"
PING = {DELIVERY: "futures.ping", OPTIONS: "options.ping", FUTURES: "futures.ping"}


@pytest.fixture
async def pb(exchange: RunningExchange) -> AsyncIterator[WsBench]:
    policies: dict[str, Any] = {
        "full": "full-trading",
        "delivery": "delivery-only",
        "options": "options-only",
        "futures": "futures-only",
        "reader": "read-only",
        # Everything but amending futures orders: the deny rule names the REST twin.
        "no-amend": {
            "presets": ["full-trading"],
            "deny": [{"methods": ["PUT"], "path": "/api/v4/futures/*/orders/*"}],
        },
    }
    async with ws_bench(exchange, policies) as bench:
        yield bench


def _uid(bench: WsBench, key: str) -> str:
    return str(bench.exchange.state.accounts[bench.keys[key][0]].uid)


@pytest.mark.parametrize(
    ("key", "path", "channel"),
    [
        ("delivery", DELIVERY, "futures.orders"),
        ("full", DELIVERY, "futures.positions"),
        ("options", OPTIONS, "options.orders"),
        ("full", OPTIONS, "options.balances"),
    ],
)
async def test_a_private_delivery_or_options_subscription_is_signed_verified_and_fed(
    pb: WsBench, key: str, path: str, channel: str
) -> None:
    mark = pb.mark()
    api_key = pb.keys[key][0]
    async with aiohttp.ClientSession() as http, http.ws_connect(pb.ws_url(key, path)) as ws:
        await ws.send_str(sub(channel, [_uid(pb, key), "!all"], id=3, auth=JUNK_AUTH))
        answer = await recv_json(ws)
        assert answer["result"] == {"status": "success"} and answer["id"] == 3
        # What Gate pushes on the private channel reaches the bot unchanged.
        product = "delivery" if path == DELIVERY else "options"
        update = [{"contract": "BTC_USDT_20300331", "size": 1, "id": 77}]
        await publish(pb.exchange.state, api_key, product, "usdt", channel, update)
        pushed = await recv_json(ws)
        assert (pushed["channel"], pushed["event"], pushed["result"]) == (
            channel,
            "update",
            update,
        )
    (seen,) = pb.frames(mark)
    assert (seen.raw_path, seen.verdict, seen.api_key) == (path, "ok", api_key)
    assert "junk" not in seen.text


@pytest.mark.parametrize(
    ("key", "path", "channel", "allowed"),
    [
        ("delivery", DELIVERY, "futures.balances", True),
        ("reader", DELIVERY, "futures.orders", True),
        ("futures", DELIVERY, "futures.orders", False),
        ("options", DELIVERY, "futures.positions", False),
        ("delivery", FUTURES, "futures.orders", False),
        ("options", OPTIONS, "options.positions", True),
        ("reader", OPTIONS, "options.usertrades", True),
        ("delivery", OPTIONS, "options.orders", False),
        ("futures", OPTIONS, "options.balances", False),
    ],
    ids=[
        "delivery-only watches delivery balances",
        "read-only watches delivery orders",
        "futures-only may not watch delivery orders",
        "options-only may not watch delivery positions",
        "delivery-only may not watch perpetual futures orders",
        "options-only watches options positions",
        "read-only watches options trades",
        "delivery-only may not watch options orders",
        "futures-only may not watch options balances",
    ],
)
async def test_each_preset_reaches_its_own_products_private_channels_only(
    pb: WsBench, key: str, path: str, channel: str, allowed: bool
) -> None:
    mark = pb.mark()
    async with aiohttp.ClientSession() as http, http.ws_connect(pb.ws_url(key, path)) as ws:
        await ws.send_str(sub(channel, [_uid(pb, key), "!all"], id=5))
        answer = await recv_json(ws)
        await ws.send_str(json.dumps({"time": 1, "channel": PING[path]}))
        assert (await recv_json(ws))["channel"].endswith(".pong")  # the socket stays usable
    sent = [f for f in pb.frames(mark) if f.channel == channel]
    if allowed:
        assert answer["result"] == {"status": "success"}
        assert [(f.verdict, f.api_key) for f in sent] == [("ok", pb.keys[key][0])]
    else:
        assert answer["error"]["label"] == "SIDECAR_POLICY_DENIED" and answer["id"] == 5
        assert sent == []  # never reached the exchange


@pytest.mark.parametrize(
    ("key", "path", "channel", "req_param"),
    [
        ("full", DELIVERY, "futures.login", {}),
        ("delivery", DELIVERY, "futures.order_place", {"contract": "BTC_USDT_20300331", "size": 1}),
        ("full", DELIVERY, "futures.order_cancel", {"order_id": "1"}),
        ("full", OPTIONS, "options.login", {}),
        ("options", OPTIONS, "options.order_place", {"contract": "BTC_USDT-20300331-60000-C"}),
    ],
)
async def test_a_trading_api_frame_on_delivery_or_options_is_refused_not_signed(
    pb: WsBench, key: str, path: str, channel: str, req_param: dict[str, Any]
) -> None:
    # Gate has no trading API there: signing such a frame would only hand Gate a signature.
    mark = pb.mark()
    async with aiohttp.ClientSession() as http, http.ws_connect(pb.ws_url(key, path)) as ws:
        await ws.send_str(api(channel, req_param, "x-1", id=9))
        error = await recv_json(ws, answers("x-1"))
        await ws.send_str(json.dumps({"time": 1, "channel": PING[path]}))
        assert (await recv_json(ws))["channel"].endswith(".pong")
    assert error["error"]["label"] == "SIDECAR_POLICY_DENIED" and error["id"] == 9
    assert "no trading API on" in error["error"]["message"]
    assert error["header"]["status"] == "403" and error["data"]["errs"]["label"]
    assert [f.channel for f in pb.frames(mark)] == [PING[path]]


async def _call(
    ws: aiohttp.ClientWebSocketResponse, channel: str, req_param: Any, req_id: str
) -> dict[str, Any]:
    await ws.send_str(api(channel, req_param, req_id))
    return await recv_json(ws, answers(req_id))


async def test_spot_orders_are_amended_and_cancelled_by_ids_with_verified_signatures(
    pb: WsBench,
) -> None:
    mark, (api_key, _) = pb.mark(), pb.keys["full"]
    account = pb.exchange.state.accounts[api_key]
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(pb.ws_url("full")) as ws,
    ):
        await ws.send_str(sub("spot.orders", ["BTC_USDT"]))
        await recv_json(ws, lambda d: d.get("event") == "subscribe")
        first = (await _call(ws, "spot.order_place", ORDER, "p-1"))["data"]["result"]
        second = (await _call(ws, "spot.order_place", ORDER, "p-2"))["data"]["result"]
        amend = {"order_id": first["id"], "currency_pair": "BTC_USDT", "price": "59000"}
        amend["amount"] = "0.002"
        amended = (await _call(ws, "spot.order_amend", amend, "a-1"))["data"]["result"]
        assert (amended["id"], amended["price"], amended["amount"]) == (
            first["id"],
            "59000",
            "0.002",
        )
        update = await recv_json(
            ws, lambda d: d.get("event") == "update" and d["result"][0]["event"] == "update"
        )
        assert update["result"][0]["price"] == "59000"  # spot.orders saw the amend
        ids = [{"currency_pair": "BTC_USDT", "id": o["id"]} for o in (first, second)]
        ids.append({"currency_pair": "BTC_USDT", "id": "404"})
        results = (await _call(ws, "spot.order_cancel_ids", ids, "c-1"))["data"]["result"]
    assert [(r["id"], r["succeeded"]) for r in results] == [
        (first["id"], True),
        (second["id"], True),
        ("404", False),
    ]
    assert {account.spot_orders[o["id"]]["status"] for o in (first, second)} == {"cancelled"}
    signed = [f for f in pb.frames(mark) if f.event == "api"]
    assert [f.channel for f in signed][-2:] == ["spot.order_amend", "spot.order_cancel_ids"]
    assert all(f.verdict == "ok" and f.api_key == api_key for f in signed)


async def test_futures_orders_are_amended_and_cancelled_by_ids_and_a_deny_on_the_twin_holds(
    pb: WsBench,
) -> None:
    resting = {"contract": "BTC_USDT", "size": 2, "price": "100", "tif": "gtc"}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(pb.ws_url("full", FUTURES)) as ws:
            first = (await _call(ws, "futures.order_place", resting, "p-1"))["data"]["result"]
            second = (await _call(ws, "futures.order_place", resting, "p-2"))["data"]["result"]
            amend = {"order_id": str(first["id"]), "size": 5, "price": "101"}
            amended = (await _call(ws, "futures.order_amend", amend, "a-1"))["data"]["result"]
            assert (amended["size"], amended["price"], amended["left"]) == (5, "101", 5)
            ids = [str(first["id"]), str(second["id"])]
            cancelled = await _call(ws, "futures.order_cancel_ids", ids, "c-1")
            assert [r["succeeded"] for r in cancelled["data"]["result"]] == [True, True]
        account = pb.exchange.state.accounts[pb.keys["full"][0]]
        assert {o["finish_as"] for o in account.futures_orders.values()} == {"cancelled"}
        # A key whose rules deny PUT /futures/*/orders/* may cancel by ids but never amend.
        mark = pb.mark()
        async with http.ws_connect(pb.ws_url("no-amend", FUTURES)) as ws:
            placed = (await _call(ws, "futures.order_place", resting, "n-1"))["data"]["result"]
            amend = {"order_id": str(placed["id"]), "price": "99"}
            refused = await _call(ws, "futures.order_amend", amend, "n-2")
            cancel = await _call(ws, "futures.order_cancel_ids", [str(placed["id"])], "n-3")
    assert refused["error"]["label"] == "SIDECAR_POLICY_DENIED"
    assert refused["error"]["message"].endswith("(denied by deny[0])")
    assert cancel["data"]["result"][0]["succeeded"] is True
    sent = [f.channel for f in pb.frames(mark)]
    assert sent == ["futures.order_place", "futures.order_cancel_ids"]
    assert all(f.verdict == "ok" for f in pb.frames(mark))
