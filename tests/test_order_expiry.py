"""Order expiry (``guards.order_ttl_ms``): order placements carry ``x-gate-exptime`` = Gate's now
(the skew-corrected clock) + the TTL, REST and WebSocket; a bot's earlier value is kept, a later
one lowered, one that is not epoch milliseconds refused; an order held back past its TTL is
refused by the exchange and never placed late."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from sidecar.gate.exptime import BadExptime, stamped, takes_exptime
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.fixtures_ws import WsBench, recv_json, ws_upstream

JSON = {"Content-Type": "application/json"}
ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "100"}


def test_the_deadline_keeps_an_earlier_value_and_lowers_a_later_one() -> None:
    assert stamped(1_000_000, 3000, None) == 1_003_000
    assert stamped(1_000_000, 3000, "1001000") == 1_001_000
    assert stamped(1_000_000, 3000, 1_009_000) == 1_003_000
    for bad in ("soon", "-5", "1.5", True, 3.0, ""):
        with pytest.raises(BadExptime):
            stamped(1_000_000, 3000, bad)


def test_only_placements_and_amends_are_stamped() -> None:
    assert takes_exptime("POST", "/api/v4/spot/orders")
    assert takes_exptime("POST", "/api/v4/spot/batch_orders")
    assert takes_exptime("PATCH", "/api/v4/spot/orders/123")
    assert takes_exptime("POST", "/api/v4/futures/usdt/orders")
    assert takes_exptime("PUT", "/api/v4/futures/usdt/orders/9")
    assert not takes_exptime("DELETE", "/api/v4/spot/orders/123")  # a late cancel is wanted
    assert not takes_exptime("GET", "/api/v4/spot/orders")
    assert not takes_exptime("POST", "/api/v4/futures/usdt/batch_cancel_orders")


async def send(
    sidecar: RunningSidecar,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, sidecar.url("bot") + path, data=json.dumps(body),
                     headers={**JSON, **(headers or {})}) as resp,
    ):  # fmt: skip
        return resp.status, await resp.json()


def sent_exptime(exchange: RunningExchange, path: str) -> int:
    last = [r for r in exchange.state.requests if r.raw_path == path][-1]
    return int(last.headers["x-gate-exptime"])


async def test_rest_placements_carry_the_deadline_on_gates_clock(
    exchange: RunningExchange,
) -> None:
    exchange.state.clock_offset_s = 30.0  # Gate's clock runs 30 s ahead of ours
    entry, environ, api_key, secret = env_key("bot", "spot-only", guards={"order_ttl_ms": 3000})
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], clock={"sync": True})
    async with running_sidecar(config, environ) as sidecar:
        status, doc = await send(sidecar, "POST", "/api/v4/spot/orders", ORDER)
        assert status == 201, doc  # stamped on our clock it would have expired 27 s ago
        gate_now = exchange.state.now() * 1000
        # The sidecar knows Gate's clock to within half its sync request's round trip
        # (sidecar.gate.clock): milliseconds, but more on a busy machine. A stamp on our own clock
        # would be 30 s off.
        sync_error_ms = 250
        assert (
            gate_now
            < sent_exptime(exchange, "/api/v4/spot/orders")
            <= (gate_now + 3000 + sync_error_ms)
        )
        earlier = str(int(gate_now + 1500))
        await send(sidecar, "POST", "/api/v4/spot/orders", ORDER, {"X-Gate-Exptime": earlier})
        assert sent_exptime(exchange, "/api/v4/spot/orders") == int(earlier)  # kept
        later = str(int(gate_now + 60_000))
        await send(sidecar, "POST", "/api/v4/spot/orders", ORDER, {"x-gate-exptime": later})
        assert sent_exptime(exchange, "/api/v4/spot/orders") <= gate_now + 3500  # lowered
        seen = len(exchange.state.requests)
        status, doc = await send(sidecar, "POST", "/api/v4/spot/orders", ORDER,
                                 {"x-gate-exptime": "soon"})  # fmt: skip
        assert status == 400 and doc["label"] == "SIDECAR_BAD_REQUEST"
        assert "epoch milliseconds" in doc["message"] and exchange.state.requests[seen:] == []
        order_id = next(iter(exchange.state.accounts[api_key].spot_orders))
        await send(sidecar, "DELETE", f"/api/v4/spot/orders/{order_id}?currency_pair=BTC_USDT",
                   None)  # fmt: skip
        cancel = exchange.state.requests[-1]
        assert cancel.method == "DELETE" and "x-gate-exptime" not in cancel.headers


async def test_an_order_held_back_past_its_ttl_is_refused_and_never_placed(
    exchange: RunningExchange,
) -> None:
    entry, environ, api_key, secret = env_key("bot", "spot-only", guards={"order_ttl_ms": 400})
    exchange.state.add_key(api_key, secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        exchange.state.delays["/api/v4/spot/orders"] = 1.0  # a queue between bot and Gate
        started = time.monotonic()
        status, doc = await send(sidecar, "POST", "/api/v4/spot/orders", ORDER)
        assert time.monotonic() - started >= 1.0
        assert status == 400 and doc["label"] == "REQUEST_EXPIRED", doc
        assert exchange.state.accounts[api_key].spot_orders == {}  # never placed late
        exchange.state.delays["/api/v4/spot/orders"] = 0.1  # within the TTL: placed
        status, _ = await send(sidecar, "POST", "/api/v4/spot/orders", ORDER)
        assert status == 201 and len(exchange.state.accounts[api_key].spot_orders) == 1


async def test_websocket_placements_carry_req_header_and_a_late_one_is_refused(
    exchange: RunningExchange,
) -> None:
    entry, environ, api_key, secret = env_key("bot", "futures-only", guards={"order_ttl_ms": 400})
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], upstream={"ws": ws_upstream(exchange)})
    order = {"contract": "BTC_USDT", "size": 1, "price": "60000", "tif": "gtc"}
    async with running_sidecar(config, environ) as sidecar:
        wb = WsBench(exchange, sidecar, {"bot": (api_key, secret)})
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("bot", "/v4/ws/usdt")) as ws,
        ):
            frame = {"time": 1, "channel": "futures.order_place", "event": "api",
                     "payload": {"req_id": "in-time", "req_param": order,
                                 "req_header": {"X-Gate-Exptime": "1"}}}  # fmt: skip
            await ws.send_str(json.dumps(frame))  # the bot's own (past) value is kept: refused
            answer = await recv_json(ws, lambda d: d.get("request_id") == "in-time")
            assert answer["header"]["status"] == "400"
            assert answer["data"]["errs"]["label"] == "REQUEST_EXPIRED"
            sent = json.loads(exchange.state.ws_frames[-1].text)
            assert sent["payload"]["req_header"] == {"x-gate-exptime": "1"}
            frame["payload"] = {"req_id": "fresh", "req_param": order}
            await ws.send_str(json.dumps(frame))
            answer = await recv_json(
                ws, lambda d: d.get("request_id") == "fresh" and not d.get("ack")
            )
            assert answer["header"]["status"] == "200", answer
            stamp = int(json.loads(exchange.state.ws_frames[-1].text)["payload"]["req_header"]
                        ["x-gate-exptime"])  # fmt: skip
            assert time.time() * 1000 < stamp <= time.time() * 1000 + 400
            exchange.state.delays["ws:futures.order_place"] = 1.0
            frame["payload"] = {"req_id": "late", "req_param": order}
            await ws.send_str(json.dumps(frame))
            answer = await recv_json(ws, lambda d: d.get("request_id") == "late", timeout=10)
            assert answer["data"]["errs"]["label"] == "REQUEST_EXPIRED"
        futures = exchange.state.accounts[api_key].futures_orders
        assert len(futures) == 1  # only the one sent in time
