"""Issue 17's guard and budget findings, from the bot's side, against a raw upstream that records
what reaches "Gate": writes the guards cannot read are refused (or opted in), per-endpoint
budgets count per template, sells and fat-fingered prices are priced at the market, and a
guarded query parameter given twice is refused. Every refusal is a ``SIDECAR_*`` answer, an
audit line and a metric, and nothing refused reaches the upstream."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.fixtures_ops import scrape
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.raw_upstream import RawUpstream, Reply, Seen

TICKER = json.dumps([{"currency_pair": "BTC_USDT", "contract": "BTC_USDT", "last": "60000"}])
CONTRACT = json.dumps({"name": "BTC_USDT", "quanto_multiplier": "0.0001", "type": "direct"})


def gate(seen: Seen, before: int) -> Reply:
    """Public prices for the guards; anything else is answered ``{"ok":true}``."""
    path = seen.target.partition("?")[0]
    if path.endswith("/tickers"):
        return Reply(body=TICKER.encode())
    if "/contracts/" in path:
        return Reply(body=CONTRACT.encode())
    return Reply()


@pytest.fixture
async def upstream() -> AsyncIterator[RawUpstream]:
    server = RawUpstream(script=gate)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def private(upstream: RawUpstream) -> list[str]:
    """What reached "Gate", market data left out: ``METHOD target``."""
    return [
        f"{s.method} {s.target}"
        for s in upstream.seen
        if not s.target.partition("?")[0].endswith("/tickers") and "/contracts/" not in s.target
    ]


def sidecar_for(upstream: RawUpstream, **entry: Any) -> tuple[Any, dict[str, str]]:
    key, environ, _api_key, _secret = env_key("bot", "full-trading", **entry)
    return make_config(upstream.url, [key]), environ


async def send(
    sidecar: RunningSidecar, target: str, body: object = None
) -> tuple[int, dict[str, Any]]:
    method, _, path = target.partition(" ")
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, URL(sidecar.url("bot") + path, encoded=True), data=data, headers=headers
        ) as resp,
    ):
        return resp.status, json.loads(await resp.read() or b"{}")


GUARDS: dict[str, object] = {"instruments": ["BTC_USDT"], "max_order_size": 1, "max_notional": 100}
BIG = {"currency": "BTC", "amount": "100", "currency_pair": "ETH_USDT", "sell_currency": "BTC",
       "sell_amount": "100", "buy_currency": "USDT", "symbol": "ETH_USDT", "qty": "100",
       "side": "buy", "type": "borrow"}  # fmt: skip
UNREAD = [
    "POST /api/v4/flash_swap/orders",
    "POST /api/v4/crossex/orders",
    "PUT /api/v4/crossex/orders/1",
    "POST /api/v4/alpha/orders",
    "POST /api/v4/tradfi/orders",
    "POST /api/v4/earn/dual/orders",
    "POST /api/v4/loan/multi_collateral/orders",
    "POST /api/v4/unified/loans",
    "POST /api/v4/wallet/transfers",
]


async def test_writes_no_guard_reads_are_refused_with_an_audit_line_and_a_metric(
    upstream: RawUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    config, environ = sidecar_for(upstream, guards=GUARDS)
    async with running_sidecar(config, environ) as sidecar:
        with caplog.at_level(logging.INFO, logger="sidecar.audit"):
            for target in UNREAD:
                status, doc = await send(sidecar, target, BIG)
                assert status == 403, (target, doc)
                assert doc["label"] == "SIDECAR_GUARD_UNREAD", (target, doc)
                assert "guards.allow_unread" in doc["message"]
            status, doc = await send(sidecar, "POST /api/v4/margin/uni/loans", BIG)
            assert status == 403 and doc["label"] == "SIDECAR_GUARD_DENIED"
            assert (
                "instrument ETH_USDT (body.currency_pair) is not in instruments" in doc["message"]
            )
        assert private(upstream) == [], "a refused write reached the upstream"
        audit = [r.__dict__["audit"] for r in caplog.records if r.name == "sidecar.audit"]
        assert [a["guard"] for a in audit] == ["allow_unread"] * len(UNREAD) + ["instruments"]
        samples = await scrape(sidecar.admin_url)
        denials = ("gate_sidecar_guard_denials_total", (("guard", "allow_unread"), ("key", "bot")))
        assert samples[denials] == len(UNREAD)
        # Reads, cancels and a margin loan of a listed market still pass.
        assert (await send(sidecar, "GET /api/v4/flash_swap/orders"))[0] == 200
        assert (await send(sidecar, "DELETE /api/v4/crossex/orders/1"))[0] == 200
        loan = {**BIG, "currency_pair": "BTC_USDT"}
        assert (await send(sidecar, "POST /api/v4/margin/uni/loans", loan))[0] == 200
        assert private(upstream) == [
            "GET /api/v4/flash_swap/orders",
            "DELETE /api/v4/crossex/orders/1",
            "POST /api/v4/margin/uni/loans",
        ]


async def test_an_opted_in_write_reaches_the_upstream_and_no_other(upstream: RawUpstream) -> None:
    guards: dict[str, object] = {**GUARDS, "allow_unread": ["POST /api/v4/flash_swap/orders"]}
    config, environ = sidecar_for(upstream, guards=guards)
    async with running_sidecar(config, environ) as sidecar:
        assert (await send(sidecar, "POST /api/v4/flash_swap/orders", BIG))[0] == 200
        status, doc = await send(sidecar, "POST /api/v4/crossex/orders", BIG)
        assert status == 403 and doc["label"] == "SIDECAR_GUARD_UNREAD"
    assert private(upstream) == ["POST /api/v4/flash_swap/orders"]


@pytest.mark.parametrize(
    "template",
    ["GET /api/v4/options/orders/{}", "DELETE /api/v4/delivery/usdt/orders/{}",
     "PUT /api/v4/crossex/orders/{}"],
)  # fmt: skip
async def test_varying_ids_pass_3_of_8_against_a_per_endpoint_limit_of_3(
    upstream: RawUpstream, template: str
) -> None:
    rate = {"overrides": [{"group": "other-private", "limit": 3, "per_s": 60}]}
    config, environ = sidecar_for(upstream, rate_limit=rate)
    async with running_sidecar(config, environ) as sidecar:
        statuses = [
            (await send(sidecar, template.format(1000 + i), {} if "PUT" in template else None))[0]
            for i in range(8)
        ]
    assert statuses.count(200) == 3 and statuses.count(429) == 5, statuses
    assert len(private(upstream)) == 3


SELL = {"currency_pair": "BTC_USDT", "side": "sell", "amount": "1", "price": "0.0001"}


async def test_a_sell_far_below_the_market_is_weighed_at_the_last_trade(
    upstream: RawUpstream,
) -> None:
    config, environ = sidecar_for(upstream, guards={"max_notional": 100})
    async with running_sidecar(config, environ) as sidecar:
        status, doc = await send(sidecar, "POST /api/v4/spot/orders", SELL)
        assert status == 403 and doc["label"] == "SIDECAR_GUARD_DENIED"
        assert "notional 60000 (a sell priced at the last trade 60000" in doc["message"]
        for price in ("1", "1e-30"):
            order = {"contract": "BTC_USDT", "size": -100, "price": price}
            status, doc = await send(sidecar, "POST /api/v4/futures/usdt/orders", order)
            assert status == 403 and "notional 600 (a sell priced at the last" in doc["message"]
        small = {**SELL, "amount": "0.001"}
        assert (await send(sidecar, "POST /api/v4/spot/orders", small))[0] == 200
    assert private(upstream) == ["POST /api/v4/spot/orders"]


async def test_a_fat_fingered_limit_price_is_refused_either_side(upstream: RawUpstream) -> None:
    config, environ = sidecar_for(upstream, guards={"max_price_deviation_pct": 10})
    async with running_sidecar(config, environ) as sidecar:
        for price, side in (("90000", "above"), ("6000", "below")):
            order = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": price}
            status, doc = await send(sidecar, "POST /api/v4/spot/orders", order)
            assert status == 403 and doc["label"] == "SIDECAR_GUARD_DENIED"
            assert f"% {side} the last trade 60000" in doc["message"]
        futures = {"contract": "BTC_USDT", "size": "1", "price": "600000"}
        status, doc = await send(sidecar, "POST /api/v4/futures/usdt/orders", futures)
        assert status == 403 and "max_price_deviation_pct 10 < 900" in doc["message"]
        near = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "61000"}
        assert (await send(sidecar, "POST /api/v4/spot/orders", near))[0] == 200
    assert private(upstream) == ["POST /api/v4/spot/orders"]


LEVERAGE = "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage"


async def test_a_guarded_query_parameter_given_twice_is_a_bad_request(
    upstream: RawUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    config, environ = sidecar_for(upstream, guards={"max_leverage": 10})
    async with running_sidecar(config, environ) as sidecar:
        with caplog.at_level(logging.INFO, logger="sidecar.audit"):
            for query in ("leverage=5&Leverage=100", "leverage=5&leverage%00=100",
                          "leverage=5&leverage=100"):  # fmt: skip
                status, doc = await send(sidecar, f"{LEVERAGE}?{query}")
                assert status == 400 and doc["label"] == "SIDECAR_GUARD_AMBIGUOUS", (query, doc)
        audit = [r.__dict__["audit"] for r in caplog.records if r.name == "sidecar.audit"]
        assert [a["guard"] for a in audit] == ["order_shape"] * 3
        status, doc = await send(sidecar, f"{LEVERAGE}?leverage=-100")
        assert status == 403 and "leverage -100 in query leverage" in doc["message"]
        assert (await send(sidecar, f"{LEVERAGE}?leverage=5"))[0] == 200
    assert private(upstream) == [f"{LEVERAGE}?leverage=5"]
