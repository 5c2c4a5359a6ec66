"""What real clients raise when the sidecar refuses: the official Python SDK (gate-api) and
ccxt, pointed at a sidecar whose key has guards and a rate budget, get Gate-style errors.

- gate-api raises ``GateApiException`` with ``status``, ``label`` and ``message`` read from the
  sidecar's JSON (403 ``SIDECAR_GUARD_DENIED``, 429 ``SIDECAR_RATE_LIMITED``; the 429's
  ``Retry-After`` is in ``exc.headers``);
- ccxt knows no ``SIDECAR_*`` label: its gate module raises ``ExchangeError`` for any JSON
  error whose label it does not know, before it looks at the HTTP status, so the 403 *and* the
  429 both surface as ``ExchangeError`` (not ``RateLimitExceeded``) with the sidecar's body in
  the message: a ccxt bot tells them apart by the label in ``str(exc)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import gate_api
import pytest
from gate_api.exceptions import GateApiException

from tests.clients.harness import DUMMY_KEY, DUMMY_SECRET
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.test_clients import CCXT_OPTIONS, point_ccxt_at

# ccxt is imported by the functions that use it, not here: importing it costs each pytest
# worker about 1.8 s at collection, for a handful of tests (marker `ccxt`; `make test-lowest`
# leaves ccxt out and deselects them).

GUARDS = {"instruments": ["BTC_USDT"], "max_order_size": 100}
RATE = {
    "gate_defaults": False,
    "overrides": [{"group": "spot-order-place", "limit": 1, "per_s": 60}],
}


@pytest.fixture
async def guarded(exchange: RunningExchange) -> AsyncIterator[RunningSidecar]:
    entry, environ, api_key, secret = env_key("bot", "full-trading", guards=GUARDS, rate_limit=RATE)
    exchange.state.add_key(api_key, secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        yield sidecar


def sdk_refusals(base_url: str) -> dict[str, Any]:
    client = gate_api.ApiClient(gate_api.Configuration(host=base_url + "/api/v4"))
    futures, spot = gate_api.FuturesApi(client), gate_api.SpotApi(client)
    seen: dict[str, Any] = {}
    try:
        futures.create_futures_order(
            "usdt", gate_api.FuturesOrder(contract="BTC_USDT", size=250, price="60000")
        )
    except GateApiException as exc:
        seen["guard"] = (type(exc).__name__, exc.status, exc.label, exc.message)
    order = gate_api.Order(currency_pair="BTC_USDT", side="buy", amount="0.001", price="100")
    spot.create_order(order)  # the budget's one request
    try:
        spot.create_order(order)
    except GateApiException as exc:
        seen["rate"] = (type(exc).__name__, exc.status, exc.label, exc.headers.get("Retry-After"))
    return seen


async def test_the_official_sdk_raises_gate_api_exception_with_the_sidecar_labels(
    guarded: RunningSidecar,
) -> None:
    seen = await asyncio.to_thread(sdk_refusals, guarded.url("bot"))
    assert seen["guard"] == (
        "GateApiException",
        403,
        "SIDECAR_GUARD_DENIED",
        "bot: max_order_size 100 < size 250 in body.size",
    )
    assert seen["rate"] == ("GateApiException", 429, "SIDECAR_RATE_LIMITED", "60")


def ccxt_refusals(base_url: str) -> dict[str, Any]:
    import ccxt

    exchange = point_ccxt_at(
        ccxt.gate({"apiKey": DUMMY_KEY, "secret": DUMMY_SECRET, "options": CCXT_OPTIONS}),
        base_url + "/api/v4",
    )
    exchange.load_markets()
    seen: dict[str, Any] = {}
    try:
        exchange.create_order("ETH/USDT:USDT", "limit", "buy", 1, 3000)
    except ccxt.BaseError as exc:
        seen["guard"] = (type(exc).__name__, str(exc))
    exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 100)  # the budget's one request
    try:
        exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 100)
    except ccxt.BaseError as exc:
        seen["rate"] = (type(exc).__name__, isinstance(exc, ccxt.NetworkError), str(exc))
    return seen


@pytest.mark.ccxt
async def test_ccxt_raises_exchange_error_carrying_the_sidecar_labels(
    guarded: RunningSidecar,
) -> None:
    seen = await asyncio.to_thread(ccxt_refusals, guarded.url("bot"))
    name, text = seen["guard"]
    assert name == "ExchangeError" and "SIDECAR_GUARD_DENIED" in text
    assert "instrument ETH_USDT (body.contract) is not in instruments [BTC_USDT]" in text
    name, retriable, text = seen["rate"]
    assert (name, retriable) == ("ExchangeError", False) and "SIDECAR_RATE_LIMITED" in text


def sdk_leverage_settings(base_url: str) -> dict[str, Any]:
    client = gate_api.ApiClient(gate_api.Configuration(host=base_url + "/api/v4"))
    margin, unified = gate_api.MarginApi(client), gate_api.UnifiedApi(client)

    def set_margin(leverage: str) -> None:
        order = gate_api.MarginMarketLeverage(currency_pair="BTC_USDT", leverage=leverage)
        margin.set_user_market_leverage(order)

    def set_unified(leverage: str) -> None:
        setting = gate_api.UnifiedLeverageSetting(currency="BTC", leverage=leverage)
        unified.set_user_leverage_currency_setting(setting)

    seen: dict[str, Any] = {}
    for name, call in (("margin", set_margin), ("unified", set_unified)):
        try:
            call("8")
        except GateApiException as exc:
            seen[name] = (exc.status, exc.label, exc.message)
        call("3")  # within max_leverage: Gate's 204
    seen["read back"] = [s.to_dict() for s in unified.get_user_leverage_currency_setting()]
    return seen


async def test_the_official_sdk_sets_margin_and_unified_leverage_only_within_max_leverage(
    exchange: RunningExchange,
) -> None:
    guards = {"max_leverage": 5}
    entry, environ, api_key, secret = env_key("bot", "full-trading", guards=guards)
    exchange.state.add_key(api_key, secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        seen = await asyncio.to_thread(sdk_leverage_settings, sidecar.url("bot"))
    refused = "bot: max_leverage 5 < leverage 8 in body.leverage"
    assert seen["margin"] == (403, "SIDECAR_GUARD_DENIED", refused)
    assert seen["unified"] == (403, "SIDECAR_GUARD_DENIED", refused)
    assert seen["read back"] == [{"currency": "BTC", "leverage": "3"}]
    assert exchange.state.accounts[api_key].leverage == {"margin/BTC_USDT": "3", "unified/BTC": "3"}
    leverage_calls = [r for r in exchange.state.verified(api_key) if "/leverage/" in r.raw_path]
    assert len(leverage_calls) == 3  # the two refused settings never reached the exchange
