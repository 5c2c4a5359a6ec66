"""Rate budgets for the WebSocket trading API, through the sidecar: each signed ``event: "api"``
call spends the key's budget for the group of its REST twin (Gate counts both against the same
per-UID limits), one budget for REST and WebSocket together; an over-budget frame is answered
with an error frame carrying ``SIDECAR_RATE_LIMITED`` and every id the bot sent, and never
leaves. Logins spend nothing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sidecar.gate.ratelimits import ws_rate_headers
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import scrape
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.fixtures_ws import WsBench, recv_json, ws_upstream

JSON = {"Content-Type": "application/json"}
ORDER = {"contract": "BTC_USDT", "size": 1, "price": "60000", "tif": "gtc"}


def api(channel: str, req_param: Any, req_id: str, **extra: Any) -> str:
    payload = {"req_id": req_id, "req_param": req_param}
    return json.dumps({"time": 1, "channel": channel, "event": "api", "payload": payload, **extra})


def answers(req_id: str) -> Any:
    return lambda d: d.get("request_id") == req_id and d.get("ack") is not True


@contextlib.asynccontextmanager
async def budgeted(
    exchange: RunningExchange, policy: str, overrides: list[dict[str, Any]] | None, **extra: Any
) -> AsyncIterator[WsBench]:
    """A key whose budget is ``overrides`` alone (None: Gate's defaults)."""
    rate_limit = {} if overrides is None else {"gate_defaults": False, "overrides": overrides}
    entry, environ, api_key, secret = env_key("bot", policy, rate_limit=rate_limit, **extra)
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], upstream={"ws": ws_upstream(exchange)})
    async with running_sidecar(config, environ) as sidecar:
        yield WsBench(exchange, sidecar, {"bot": (api_key, secret)})


async def test_websocket_orders_spend_the_rest_budget_and_an_over_budget_frame_gets_every_id_back(
    exchange: RunningExchange,
) -> None:
    place = [{"group": "futures-order-place", "limit": 3, "per_s": 60}]
    async with budgeted(exchange, "futures-only", place) as wb:
        mark = wb.mark()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("bot", "/v4/ws/usdt")) as ws,
        ):
            await ws.send_str(api("futures.login", {}, "login"))  # spends nothing
            assert (await recv_json(ws, answers("login")))["header"]["status"] == "200"
            results = []
            for n in range(5):
                frame = api("futures.order_place", ORDER, f"o-{n}", id=100 + n, request_id=f"o-{n}")
                await ws.send_str(frame)
                results.append(await recv_json(ws, answers(f"o-{n}")))
            # The same budget: a REST order finds it spent too.
            async with http.post(
                wb.sidecar.url("bot") + "/api/v4/futures/usdt/orders",
                data=json.dumps(ORDER),
                headers=JSON,
            ) as resp:
                rest_status, rest_retry = resp.status, resp.headers.get("Retry-After")
        samples = await scrape(wb.sidecar.admin_url)
    assert [r["header"]["status"] for r in results] == ["200", "200", "200", "429", "429"]
    for n, refused in enumerate(results[3:], start=3):
        assert refused["id"] == 100 + n and refused["request_id"] == f"o-{n}"
        assert refused["channel"] == "futures.order_place" and refused["event"] == "api"
        assert refused["ack"] is False
        message = "rate budget futures-order-place (3 per 60s) of key bot is spent; retry in 20s"
        label = "SIDECAR_RATE_LIMITED"
        assert refused["error"] == {"code": 429, "label": label, "message": message}
        assert refused["data"]["errs"] == {"label": label, "message": message}
    sent = [json.loads(f.text)["payload"]["req_id"] for f in wb.frames(mark)]
    assert sent == ["login", "o-0", "o-1", "o-2"]  # the refused frames never left
    assert (rest_status, rest_retry) == (429, "20")
    group = (("group", "futures-order-place"), ("key", "bot"))
    assert samples[("gate_sidecar_rate_limited_total", group)] == 3  # 2 frames + 1 request
    reason = (("key", "bot"), ("reason", "rate_limited"))
    assert samples[("gate_sidecar_ws_denied_frames_total", reason)] == 2


async def test_logins_spend_nothing_and_reads_spend_their_twins_group(
    exchange: RunningExchange,
) -> None:
    other = [{"group": "spot-other", "limit": 1, "per_s": 60}]
    async with (
        budgeted(exchange, "spot-only", other) as wb,
        aiohttp.ClientSession() as http,
        http.ws_connect(wb.ws_url("bot")) as ws,
    ):
        for n in range(3):  # a login's twin is GET /spot/orders (spot-other): not charged
            await ws.send_str(api("spot.login", {}, f"l-{n}"))
            assert (await recv_json(ws, answers(f"l-{n}")))["header"]["status"] == "200"
        listing = {"currency_pair": "BTC_USDT", "status": "open"}
        await ws.send_str(api("spot.order_list", listing, "r-1"))
        assert (await recv_json(ws, answers("r-1")))["header"]["status"] == "200"
        await ws.send_str(api("spot.order_list", listing, "r-2"))
        refused = await recv_json(ws, answers("r-2"))
    assert refused["error"]["label"] == "SIDECAR_RATE_LIMITED"
    assert "rate budget spot-other (1 per 60s)" in refused["error"]["message"]


async def test_a_frame_a_guard_refuses_spends_no_budget(exchange: RunningExchange) -> None:
    place = [{"group": "futures-order-place", "limit": 1, "per_s": 60}]
    guards = {"max_order_size": 5}
    async with (
        budgeted(exchange, "futures-only", place, guards=guards) as wb,
        aiohttp.ClientSession() as http,
        http.ws_connect(wb.ws_url("bot", "/v4/ws/usdt")) as ws,
    ):
        await ws.send_str(api("futures.order_place", {**ORDER, "size": 50}, "big"))
        assert (await recv_json(ws, answers("big")))["error"]["label"] == "SIDECAR_GUARD_DENIED"
        await ws.send_str(api("futures.order_place", ORDER, "small"))
        assert (await recv_json(ws, answers("small")))["header"]["status"] == "200"
        samples = await scrape(wb.sidecar.admin_url)
    denial = ("gate_sidecar_guard_denials_total", (("guard", "max_order_size"), ("key", "bot")))
    assert samples[denial] == 1  # WebSocket refusals count by guard like REST ones


async def test_a_spot_websocket_order_passes_a_settle_guard(exchange: RunningExchange) -> None:
    guards = {"settle": ["usdt"], "instruments": ["BTC_USDT"]}
    order = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "60000"}
    async with (
        budgeted(exchange, "spot-only", [], guards=guards) as wb,
        aiohttp.ClientSession() as http,
        http.ws_connect(wb.ws_url("bot")) as ws,
    ):
        await ws.send_str(api("spot.order_place", order, "s-1"))
        placed = await recv_json(ws, answers("s-1"))
    assert placed["header"]["status"] == "200", placed  # a spot connection has no settle


WS_ANSWERS = [
    ({"header": {"x_gate_ratelimit_requests_remain": 9, "x_gate_ratelimit_limit": 10,
                 "x_gat_ratelimit_reset_timestamp": 1736408263764}},
     [("X-Gate-RateLimit-Requests-Remain", "9"),
      ("X-Gate-RateLimit-Reset-Timestamp", "1736408263764")]),
    ({"header": {"x_gate_ratelimit_limit": 10, "x_gate_ratelimit_reset_timestamp": 5}},
     [("X-Gate-RateLimit-Requests-Remain", "0"), ("X-Gate-RateLimit-Reset-Timestamp", "5")]),
    ({"header": {"status": "200", "channel": "spot.login"}}, None),
    ({"header": "nonsense"}, None),
    ("not an object", None),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "headers"), WS_ANSWERS)
def test_gates_count_in_a_websocket_answer_reads_as_its_rest_headers(
    answer: object, headers: list[tuple[str, str]] | None
) -> None:
    # Gate hides a count of 0: a cap without a count means none remain.
    assert ws_rate_headers(answer) == headers


async def test_gates_count_in_websocket_answers_tightens_the_budget(
    exchange: RunningExchange,
) -> None:
    exchange.state.rates.limit = 2  # the exchange reports 2 per 10 s for each channel
    async with budgeted(exchange, "futures-only", None) as wb:
        mark = wb.mark()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("bot", "/v4/ws/usdt")) as ws,
        ):
            statuses = []
            for n in range(4):
                await ws.send_str(api("futures.order_place", ORDER, f"t-{n}"))
                statuses.append((await recv_json(ws, answers(f"t-{n}")))["header"]["status"])
    # Gate's defaults allow 100 a second; after Gate said none remain, the sidecar holds the
    # bucket until Gate's reset instead of sending what Gate would refuse.
    assert statuses == ["200", "200", "429", "429"]
    assert [json.loads(f.text)["payload"]["req_id"] for f in wb.frames(mark)] == ["t-0", "t-1"]
