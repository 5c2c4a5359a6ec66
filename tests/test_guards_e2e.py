"""The trading guards in a running sidecar, in front of the verifying exchange: every refused
order is answered 403 SIDECAR_GUARD_DENIED (SIDECAR_GUARD_UNREAD for a write no guard reads, 400
SIDECAR_GUARD_AMBIGUOUS for a query Gate could read two ways) and never reaches the exchange;
market orders are priced from the exchange's public tickers; the cancel-only brake switches on
the admin listener, by SIGUSR1 and across reloads; audit lines and metrics name the guard."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from sidecar.config import Config
from sidecar.runtime.reload import apply_config
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import scrape
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.test_guards import CASES, LIMITS, fut
from tests.test_ops_process import _write_config, sidecar_process


def guarded(
    exchange: RunningExchange, guards: dict[str, Any], policy: str = "full-trading"
) -> tuple[Config, dict[str, str], str]:
    entry, environ, api_key, secret = env_key("bot", policy, guards=guards)
    exchange.state.add_key(api_key, secret)
    return make_config(exchange.url, [entry]), environ, api_key


JSON = {"Content-Type": "application/json"}


async def send(
    sidecar: RunningSidecar, target: str, body: bytes | None, key: str = "bot"
) -> tuple[int, dict[str, Any]]:
    method, _, path = target.partition(" ")
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, URL(sidecar.url(key) + path, encoded=True), data=body, headers=JSON
        ) as resp,
    ):
        return resp.status, json.loads(await resp.read() or b"{}")


# The guards that answer otherwise than 403 SIDECAR_GUARD_DENIED.
LABELS = {"allow_unread": ("SIDECAR_GUARD_UNREAD", 403)}


def _groups() -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """The pure table's cases grouped by their limits: one sidecar per group."""
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for case in CASES:
        if "quotes" in case[3]:
            continue  # a missing price is tested below against a market the exchange lacks
        groups.setdefault(json.dumps(case[3], sort_keys=True), []).append(case)
    yield from groups.items()


@pytest.mark.parametrize(("limits", "cases"), list(_groups()), ids=[g[0] for g in _groups()])
async def test_every_refused_order_is_403_and_never_reaches_the_exchange(
    exchange: RunningExchange, limits: str, cases: list[tuple[Any, ...]]
) -> None:
    config, environ, _api_key = guarded(exchange, {**LIMITS, **json.loads(limits)})
    async with running_sidecar(config, environ) as sidecar:
        for name, target, body, _, guard, message in cases:
            raw = (
                None
                if body is None
                else (body.encode() if body == "not json" else json.dumps(body).encode())
            )
            seen = len(exchange.state.requests)
            status, doc = await send(sidecar, target, raw)
            method, _, path = target.partition(" ")
            reached = [
                r for r in exchange.state.requests[seen:]
                if r.method == method and r.raw_path == path.partition("?")[0]
            ]  # fmt: skip
            if guard is None:
                assert status != 403 and reached, name
                assert all(r.verdict == "ok" for r in reached), name
            else:
                label, want = LABELS.get(guard, ("SIDECAR_GUARD_DENIED", 403))
                if "is given twice" in message:  # a query parameter Gate could read two ways
                    label, want = "SIDECAR_GUARD_AMBIGUOUS", 400
                assert status == want, (name, doc)
                assert doc["label"] == label and message in doc["message"], name
                assert reached == [], f"{name}: a refused order reached the exchange"


async def test_a_market_order_without_a_price_is_refused_saying_why(
    exchange: RunningExchange,
) -> None:
    limits = {"instruments": ["SOL_USDT"], "max_notional": 1000}  # a market the exchange lacks
    config, environ, api_key = guarded(exchange, limits)
    async with running_sidecar(config, environ) as sidecar:
        body = json.dumps(fut("SOL_USDT", price="0", tif="ioc")).encode()
        status, doc = await send(sidecar, "POST /api/v4/futures/usdt/orders", body)
        assert status == 403 and doc["label"] == "SIDECAR_GUARD_DENIED"
        assert "max_notional: no last price for SOL_USDT (tickers unavailable" in doc["message"]
        assert "contract multiplier" not in doc["message"] or "unavailable" in doc["message"]
        assert not exchange.state.verified(api_key)


async def test_market_prices_are_fetched_once_and_cached(exchange: RunningExchange) -> None:
    config, environ, _api_key = guarded(exchange, {"max_notional": 50000})
    async with running_sidecar(config, environ) as sidecar:
        for _ in range(3):
            body = json.dumps(fut(size=10, price="0", tif="ioc")).encode()
            status, _ = await send(sidecar, "POST /api/v4/futures/usdt/orders", body)
            assert status == 201  # 10 x 60000 x 0.0001 = 60 <= 50000
        public = [r.raw_path for r in exchange.state.requests if r.verdict == "public"]
        assert public.count("/api/v4/futures/usdt/tickers") == 1
        assert public.count("/api/v4/futures/usdt/contracts/BTC_USDT") == 1


async def admin(sidecar: RunningSidecar, method: str, key: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{sidecar.admin_url}/keys/{key}/cancel-only") as resp,
    ):
        return resp.status, await resp.json()


async def test_the_admin_switches_cancel_only_and_metrics_and_audit_show_it(
    exchange: RunningExchange, caplog: pytest.LogCaptureFixture
) -> None:
    config, environ, _api_key = guarded(exchange, {})
    order = json.dumps(fut()).encode()
    async with running_sidecar(config, environ) as sidecar:
        assert (await send(sidecar, "POST /api/v4/futures/usdt/orders", order))[0] == 201
        assert await admin(sidecar, "POST", "bot") == (
            200, {"key": "bot", "cancel_only": True, "changed": True}
        )  # fmt: skip
        samples = await scrape(sidecar.admin_url)
        assert samples[("gate_sidecar_cancel_only", (("key", "bot"),))] == 1
        with caplog.at_level(logging.INFO, logger="sidecar.audit"):
            status, doc = await send(sidecar, "POST /api/v4/futures/usdt/orders", order)
        assert status == 403 and "cancel_only is on (switched on by admin at" in doc["message"]
        audit = [r for r in caplog.records if r.name == "sidecar.audit"]
        assert audit[-1].__dict__["audit"]["guard"] == "cancel_only"
        closing = json.dumps(fut(size=0, close=True)).encode()
        assert (await send(sidecar, "POST /api/v4/futures/usdt/orders", closing))[0] == 201
        status, _ = await send(
            sidecar, "DELETE /api/v4/futures/usdt/orders?contract=BTC_USDT", None
        )
        assert status == 200
        assert (await send(sidecar, "GET /api/v4/futures/usdt/positions", None))[0] == 200
        assert (await admin(sidecar, "DELETE", "bot"))[1]["changed"] is True
        assert (await send(sidecar, "POST /api/v4/futures/usdt/orders", order))[0] == 201
        samples = await scrape(sidecar.admin_url)
        assert samples[("gate_sidecar_cancel_only", (("key", "bot"),))] == 0
        denial = ("gate_sidecar_guard_denials_total", (("guard", "cancel_only"), ("key", "bot")))
        assert samples[denial] == 1
        assert samples[("gate_sidecar_denials_total", (("key", "bot"), ("reason", "guard")))] == 1
        status, doc = await admin(sidecar, "POST", "nobody")
        assert status == 404 and doc["label"] == "SIDECAR_NOT_FOUND"


async def test_a_reload_keeps_the_run_time_brake_unless_the_file_changes_it(
    exchange: RunningExchange,
) -> None:
    entry, environ, api_key, secret = env_key("bot", "full-trading", guards={})
    exchange.state.add_key(api_key, secret)
    order = json.dumps(fut()).encode()
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        await admin(sidecar, "POST", "bot")
        # An unrelated change (a new size limit): the brake stays on.
        await apply_config(
            sidecar.sidecar, make_config(exchange.url, [{**entry, "guards": {"max_order_size": 5}}])
        )
        status, doc = await send(sidecar, "POST /api/v4/futures/usdt/orders", order)
        assert status == 403 and doc["message"].startswith("bot: cancel_only is on")
        # The file says cancel_only: true, then false: the file's value applies each time.
        for value, expected in ((True, 403), (False, 201)):
            guards = {"max_order_size": 5, "cancel_only": value}
            await apply_config(
                sidecar.sidecar, make_config(exchange.url, [{**entry, "guards": guards}])
            )
            assert (await send(sidecar, "POST /api/v4/futures/usdt/orders", order))[0] == expected
        too_big = json.dumps(fut(size=6)).encode()
        status, doc = await send(sidecar, "POST /api/v4/futures/usdt/orders", too_big)
        assert status == 403 and "max_order_size 5 < size 6" in doc["message"]


async def test_sigusr1_puts_every_key_of_a_process_in_cancel_only(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    entries, environ = [], {}
    for name in ("alpha", "beta"):
        entry, env, api_key, secret = env_key(name, "futures-only")
        exchange.state.add_key(api_key, secret)
        entries.append(entry)
        environ.update(env)
    config = tmp_path / "sidecar.yaml"
    _write_config(config, exchange, entries)
    order = json.dumps(fut()).encode()
    async with sidecar_process(config, environ) as sp, aiohttp.ClientSession() as http:
        urls = sp.urls()
        for url in urls.values():
            async with http.post(
                url + "/api/v4/futures/usdt/orders", data=order, headers=JSON
            ) as resp:
                assert resp.status == 201
        sp.send(signal.SIGUSR1)
        await sp.wait_line(
            lambda d: d.get("msg") == "cancel-only brake engaged" and d["key"] == "beta"
        )
        for url in urls.values():
            async with http.post(
                url + "/api/v4/futures/usdt/orders", data=order, headers=JSON
            ) as resp:
                doc = await resp.json()
                assert resp.status == 403 and "switched on by SIGUSR1" in doc["message"]


async def test_a_websocket_trading_frame_gets_the_same_verdict_as_its_rest_twin(
    exchange: RunningExchange,
) -> None:
    from sidecar.config.guards import GuardsConfig
    from sidecar.policy.guards import Guards
    from sidecar.proxy.brake import Brake
    from sidecar.proxy.forwarder import UpstreamConfig
    from sidecar.proxy.guarding import ws_refusal
    from sidecar.proxy.lean_forwarder import LeanForwarder
    from sidecar.proxy.market import Market

    forwarder = LeanForwarder(UpstreamConfig(base_url=exchange.url))
    guards, brake, market = Guards(GuardsConfig(**LIMITS)), Brake("bot"), Market(forwarder)
    try:
        big = await ws_refusal(guards, brake, market, "futures.order_place", "usdt", fut(size=250))
        assert big is not None and big.message == "max_order_size 100 < size 250 in body.size"
        market_order = fut(size=1, price="0", tif="ioc")  # priced from the exchange's ticker
        ok = await ws_refusal(guards, brake, market, "futures.order_place", "usdt", market_order)
        assert ok is None
        brake.switch(True, "admin")
        status = {"order_id": "1"}
        assert (
            await ws_refusal(guards, brake, market, "futures.order_status", "usdt", status) is None
        )
        refused = await ws_refusal(guards, brake, market, "futures.order_place", "usdt", fut())
        assert refused is not None and refused.guard == "cancel_only"
    finally:
        await market.close()
        await forwarder.close()
