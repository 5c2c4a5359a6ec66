"""``mode: warn`` in a running sidecar in front of the verifying exchange: every refusal case of
the guard suite (tests/test_guards.py's table, as tests/test_guards_e2e.py runs it enforced)
reaches the exchange and is audited and counted as ``would_deny``; policy refusals too, REST and
WebSocket; withdrawals and other locked endpoints, the cancel-only brake, requests the guards
cannot read (``order_shape``) and rate budgets stay enforced."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import gate_api
import pytest

from sidecar.policy.mode import ALWAYS_ENFORCED_GUARDS
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import scrape
from tests.fixtures_sidecar import env_key, make_config, running_sidecar
from tests.fixtures_ws import WsBench, recv_json, ws_upstream
from tests.test_guards import LIMITS, fut
from tests.test_guards_e2e import _groups, admin, send


def _audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.__dict__["audit"] for r in caplog.records if r.name == "sidecar.audit"]


def _raw(body: object) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str) and body == "not json":
        return body.encode()
    return json.dumps(body).encode()


@pytest.mark.parametrize(("limits", "cases"), list(_groups()), ids=[g[0] for g in _groups()])
async def test_every_refusal_of_the_guard_suite_reaches_the_exchange_and_is_audited_would_deny(
    exchange: RunningExchange,
    caplog: pytest.LogCaptureFixture,
    limits: str,
    cases: list[tuple[Any, ...]],
) -> None:
    entry, environ, api_key, secret = env_key(
        "bot", "full-trading", guards={**LIMITS, **json.loads(limits)}, mode="warn"
    )
    exchange.state.add_key(api_key, secret)
    refused = enforced = 0
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        for name, target, body, _, guard, message in cases:
            seen = len(exchange.state.requests)
            with caplog.at_level(logging.INFO, logger="sidecar.audit"):
                status, doc = await send(sidecar, target, _raw(body))
            method, _, path = target.partition(" ")
            reached = [
                r for r in exchange.state.requests[seen:]
                if r.method == method and r.raw_path == path.partition("?")[0]
            ]  # fmt: skip
            if guard in ALWAYS_ENFORCED_GUARDS:  # unreadable input is refused in warn mode too
                assert not reached and status in (400, 403), (name, status, doc)
                assert _audit(caplog)[-1]["guard"] == guard, name
                enforced += 1
                continue
            assert reached and all(r.verdict == "ok" for r in reached), (name, status, doc)
            assert not isinstance(doc, dict) or doc.get("label") != "SIDECAR_GUARD_DENIED", name
            line = _audit(caplog)[-1]
            if guard is None:
                assert line["decision"] == "allow" and line["would_deny"] is None, name
            else:
                refused += 1
                assert line["decision"] == "would_deny", (name, line)
                assert line["would_deny"].startswith(f"guard {guard}: "), (name, line)
                assert message in line["would_deny"], (name, line)
                assert line["guard"] is None, name  # not counted as a guard denial
        samples = await scrape(sidecar.admin_url)
    counted = sum(
        value
        for (metric, labels), value in samples.items()
        if metric == "gate_sidecar_would_deny_total" and ("kind", "guard") in labels
    )
    assert counted == refused
    denied = sum(v for (m, _), v in samples.items() if m == "gate_sidecar_guard_denials_total")
    assert denied == enforced


async def test_policy_refusals_pass_but_locked_calls_the_brake_and_budgets_stay_enforced(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    budget = {"gate_defaults": False,
              "overrides": [{"group": "spot-order-place", "limit": 2, "per_s": 60}]}  # fmt: skip
    deny = [{"methods": ["GET"], "path": "/api/v4/futures/*/positions"}]
    entry, environ, api_key, secret = env_key(
        "bot", {"presets": ["futures-only"], "deny": deny}, mode="warn", rate_limit=budget
    )
    exchange.state.add_key(api_key, secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        spot = json.dumps({"currency_pair": "BTC_USDT", "side": "buy", "amount": "1",
                           "price": "100"}).encode()  # fmt: skip
        with caplog.at_level(logging.INFO, logger="sidecar.audit"):
            status, _ = await send(sidecar, "POST /api/v4/spot/orders", spot)
            assert status == 201  # no rule of futures-only allows it: forwarded in warn mode
            line = _audit(caplog)[-1]
            assert line["decision"] == "would_deny"
            assert line["would_deny"].startswith("policy no rule allows it: POST /api/v4/spot/")
            status, _ = await send(sidecar, "GET /api/v4/futures/usdt/positions", None)
            assert status == 200  # a deny rule: forwarded too, named
            assert _audit(caplog)[-1]["would_deny"].startswith("policy deny[0]: ")
            # Locked: fund movements stay refused, and never reach the exchange.
            for target, body in (
                ("POST /api/v4/withdrawals", {"currency": "USDT", "amount": "1", "address": "x"}),
                ("POST /api/v4/withdrawals/push", {"currency": "USDT", "amount": "1"}),
                ("POST /api/v4/wallet/sub_account_transfers", {"currency": "USDT"}),
            ):
                seen = len(exchange.state.requests)
                status, doc = await send(sidecar, target, json.dumps(body).encode())
                assert status == 403 and doc["label"] == "SIDECAR_POLICY_DENIED", target
                assert "locked" in doc["message"] and exchange.state.requests[seen:] == []
                assert _audit(caplog)[-1]["decision"] == "deny"
            # The rate budget: the third spot order is refused, warn mode or not.
            assert (await send(sidecar, "POST /api/v4/spot/orders", spot))[0] == 201
            status, doc = await send(sidecar, "POST /api/v4/spot/orders", spot)
            assert status == 429 and doc["label"] == "SIDECAR_RATE_LIMITED"
            # The cancel-only brake stays enforced.
            assert (await admin(sidecar, "POST", "bot"))[0] == 200
            order = json.dumps(fut()).encode()
            seen = len(exchange.state.requests)
            status, doc = await send(sidecar, "POST /api/v4/futures/usdt/orders", order)
            assert status == 403 and "cancel_only is on" in doc["message"]
            assert exchange.state.requests[seen:] == []
        samples = await scrape(sidecar.admin_url)
    policy = {
        dict(labels)["name"]: value
        for (metric, labels), value in samples.items()
        if metric == "gate_sidecar_would_deny_total" and ("kind", "policy") in labels
    }
    assert policy["no rule allows it"] == 3  # the spot order, twice more before the budget
    assert any(name.startswith("deny[0]") for name in policy)


async def test_a_websocket_frame_a_guard_would_refuse_is_signed_and_forwarded_in_warn_mode(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    entry, environ, api_key, secret = env_key(
        "bot", "futures-only", guards={"max_order_size": 5}, mode="warn"
    )
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], upstream={"ws": ws_upstream(exchange)})
    async with running_sidecar(config, environ) as sidecar:
        wb = WsBench(exchange, sidecar, {"bot": (api_key, secret)})
        big = {"contract": "BTC_USDT", "size": 50, "price": "60000", "tif": "gtc"}
        frame = {"time": 1, "channel": "futures.order_place", "event": "api",
                 "payload": {"req_id": "r1", "req_param": big}}  # fmt: skip
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(wb.ws_url("bot", "/v4/ws/usdt")) as ws,
        ):
            with caplog.at_level(logging.INFO, logger="sidecar.audit"):
                await ws.send_str(json.dumps(frame))
                answer = await recv_json(
                    ws, lambda d: d.get("request_id") == "r1" and d.get("ack") is not True
                )
        assert answer["header"]["status"] == "200", answer
        lines = [r.__dict__["audit"] for r in caplog.records if r.getMessage() == "ws frame"]
        assert lines[-1]["decision"] == "sign"
        assert lines[-1]["would_deny"].startswith("guard max_order_size: max_order_size 5 < size")
        samples = await scrape(sidecar.admin_url)
    key = ("gate_sidecar_would_deny_total",
           (("key", "bot"), ("kind", "guard"), ("name", "max_order_size")))  # fmt: skip
    assert samples[key] == 1


async def test_an_unpriced_market_order_and_an_sdk_bots_large_order_pass_in_warn_mode(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    guards = {"instruments": ["BTC_USDT", "SOL_USDT"], "max_notional": 1000, "max_order_size": 100}
    entry, environ, api_key, secret = env_key("bot", "full-trading", guards=guards, mode="warn")
    exchange.state.add_key(api_key, secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        seen = len(exchange.state.requests)
        with caplog.at_level(logging.INFO, logger="sidecar.audit"):
            # A market the exchange has no price for (test_guards_e2e: refused, saying why).
            body = json.dumps(fut("SOL_USDT", price="0", tif="ioc")).encode()
            status, _ = await send(sidecar, "POST /api/v4/futures/usdt/orders", body)
        assert any(
            r.raw_path == "/api/v4/futures/usdt/orders" for r in exchange.state.requests[seen:]
        )
        assert status != 403
        assert "max_notional: no last price for SOL_USDT" in _audit(caplog)[-1]["would_deny"]

        def sdk_order() -> Any:
            client = gate_api.ApiClient(gate_api.Configuration(host=sidecar.url("bot") + "/api/v4"))
            order = gate_api.FuturesOrder(contract="BTC_USDT", size=250, price="60000")
            return gate_api.FuturesApi(client).create_futures_order("usdt", order)

        placed = await asyncio.to_thread(sdk_order)  # enforced: GateApiException 403
        assert str(placed.size) == "250" and placed.status == "open"
