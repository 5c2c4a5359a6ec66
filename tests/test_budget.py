"""Rate budgets: Gate's limits per endpoint group as token buckets, local or shared in a real
Redis; 429 SIDECAR_RATE_LIMITED with a correct Retry-After; Gate's own headers tighten them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sidecar.config import Config
from sidecar.errors import ConfigError
from sidecar.gate.ratelimits import Bucket, group_for, take, tighten
from sidecar.proxy.budget.local import LocalStore
from sidecar.proxy.budget.redis_store import RedisStore, StoreUnavailable
from sidecar.runtime.reload import apply_config
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import scrape
from tests.fixtures_redis import RedisServer
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar

ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "100"}

GROUPS = [
    ("POST", "/api/v4/spot/orders", "spot-order-place"),
    ("PATCH", "/api/v4/spot/orders/12", "spot-order-place"),
    ("DELETE", "/api/v4/spot/orders/12", "spot-order-cancel"),
    ("GET", "/api/v4/spot/orders", "spot-other"),
    ("GET", "/api/v4/spot/tickers", "public"),
    ("POST", "/api/v4/futures/usdt/batch_orders", "futures-order-place"),
    ("PUT", "/api/v4/futures/usdt/orders/5", "futures-order-place"),
    ("POST", "/api/v4/futures/usdt/batch_cancel_orders", "futures-order-cancel"),
    ("GET", "/api/v4/futures/usdt/contracts/BTC_USDT", "public"),
    ("GET", "/api/v4/futures/usdt/positions", "futures-other"),
    ("POST", "/api/v4/delivery/usdt/orders", "delivery-order-place"),
    ("POST", "/api/v4/options/orders", "options-order-place"),
    ("POST", "/api/v4/withdrawals", "wallet-withdraw"),
    ("POST", "/api/v4/wallet/transfers", "wallet-transfer"),
    ("GET", "/api/v4/wallet/total_balance", "wallet-other"),
    ("GET", "/api/v4/earn/uni/lends", "other-private"),
]


@pytest.mark.parametrize(("method", "path", "group"), GROUPS)
def test_each_endpoint_counts_against_its_gate_group(method: str, path: str, group: str) -> None:
    assert group_for(method, path).name == group


def test_a_bucket_passes_its_capacity_then_says_when_the_next_token_comes() -> None:
    bucket = None
    for _ in range(3):
        result = take(bucket, 3, 1.0, 100.0)
        assert result.allowed
        bucket = result.bucket
    refused = take(bucket, 3, 1.0, 100.0)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(1.0)
    assert take(refused.bucket, 3, 1.0, 101.0).allowed  # one second later: one token


def test_gate_saying_none_remain_holds_the_bucket_until_its_reset() -> None:
    bucket = tighten(None, 10, 10.0, 50.0, remaining=0, reset_in_s=2.0)
    assert not take(bucket, 10, 10.0, 51.5).allowed
    assert take(bucket, 10, 10.0, 52.0).allowed
    assert tighten(Bucket(8, 50.0), 10, 10.0, 50.0, remaining=3, reset_in_s=None).tokens == 3


async def test_the_redis_script_keeps_the_same_arithmetic_as_the_local_bucket(
    redis_server: RedisServer,
) -> None:
    shared = RedisStore(redis_server.url, 1.0)
    local = LocalStore()
    try:
        for store in (local, shared):
            results = [(await store.take("b", 4, 0.01)).allowed for _ in range(6)]
            assert results == [True] * 4 + [False] * 2, store
            refused = await store.take("b", 4, 0.01)
            assert refused.retry_after_s == pytest.approx(100.0, rel=0.01)
            await store.tighten("t", 10, 10.0, 0, 2.0)
            held = await store.take("t", 10, 10.0)
            assert not held.allowed and 1.5 < held.retry_after_s <= 2.0, store
    finally:
        await shared.close()


async def test_an_unreachable_redis_raises_store_unavailable_quickly() -> None:
    store = RedisStore("unix:///tmp/no-such-redis.sock", 0.2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await store.take("b", 1, 1.0)
    assert time.monotonic() - started < 2 and "Redis unavailable" in str(caught.value)
    await store.close()


# -- end to end ------------------------------------------------------------------------------


def budget_config(
    exchange: RunningExchange, rate_limit: dict[str, Any], name: str = "bot"
) -> tuple[Config, dict[str, str], str]:
    entry, environ, api_key, secret = env_key(name, "spot-only", rate_limit=rate_limit)
    exchange.state.add_key(api_key, secret)
    return make_config(exchange.url, [entry]), environ, api_key


JSON = {"Content-Type": "application/json"}


async def burst(
    sidecar: RunningSidecar, count: int, key: str = "bot"
) -> list[tuple[int, dict[str, str], dict[str, Any]]]:
    async with aiohttp.ClientSession() as http:

        async def one() -> tuple[int, dict[str, str], dict[str, Any]]:
            url = sidecar.url(key) + "/api/v4/spot/orders"
            async with http.post(url, data=json.dumps(ORDER), headers=JSON) as resp:
                return resp.status, dict(resp.headers), await resp.json()

        return list(await asyncio.gather(*(one() for _ in range(count))))


def placed(exchange: RunningExchange, api_key: str) -> int:
    return sum(1 for r in exchange.state.verified(api_key) if r.raw_path == "/api/v4/spot/orders")


async def test_a_burst_passes_exactly_the_budget_and_the_rest_get_429_with_retry_after(
    exchange: RunningExchange,
) -> None:
    override = {"group": "spot-order-place", "limit": 5, "per_s": 60}
    config, environ, api_key = budget_config(exchange, {"overrides": [override]})
    async with running_sidecar(config, environ) as sidecar:
        answers = await burst(sidecar, 12)
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [201] * 5 + [429] * 7
        for status, headers, doc in answers:
            if status == 429:
                assert doc["label"] == "SIDECAR_RATE_LIMITED"
                assert "spot-order-place (5 per 60s)" in doc["message"]
                # 5 per 60 s: one token every 12 s, the bucket is empty.
                assert headers["Retry-After"] == "12"
        assert placed(exchange, api_key) == 5  # the exchange never saw the rest
        samples = await scrape(sidecar.admin_url)
        key = ("gate_sidecar_rate_limited_total", (("group", "spot-order-place"), ("key", "bot")))
        assert samples[key] == 7


async def test_retry_after_is_when_the_next_request_passes(exchange: RunningExchange) -> None:
    override = {"group": "spot-order-place", "limit": 2, "per_s": 1}
    config, environ, _ = budget_config(exchange, {"gate_defaults": False, "overrides": [override]})
    async with running_sidecar(config, environ) as sidecar:
        answers = await burst(sidecar, 4)
        refused = [h for s, h, _ in answers if s == 429]
        assert len(refused) == 2 and {h["Retry-After"] for h in refused} == {"1"}
        await asyncio.sleep(1.0)  # hold: per_s 1 refills the bucket in one second (Retry-After)
        assert [s for s, _, _ in await burst(sidecar, 1)] == [201]


async def test_gate_rate_limit_headers_tighten_the_bucket(exchange: RunningExchange) -> None:
    exchange.state.rates.limit = 3  # the exchange reports 3 per 10 s for each path
    config, environ, api_key = budget_config(exchange, {})  # Gate's defaults: 10 per second
    async with running_sidecar(config, environ) as sidecar:
        statuses = []
        for _ in range(5):
            statuses += [s for s, _, _ in await burst(sidecar, 1)]
        # After Gate said 0 remain, the sidecar holds the bucket until Gate's reset.
        assert statuses[:3] == [201, 201, 201] and statuses[3:] == [429, 429]
        assert placed(exchange, api_key) == 3


@contextlib.asynccontextmanager
async def two_replicas(
    exchange: RunningExchange, redis_url: str, limit: int
) -> AsyncIterator[tuple[RunningSidecar, RunningSidecar, str]]:
    rate_limit = {
        "gate_defaults": False,
        "overrides": [{"group": "spot-order-place", "limit": limit, "per_s": 600}],
        "shared": redis_url,
        "replicas": 2,
    }
    config, environ, api_key = budget_config(exchange, rate_limit)
    async with running_sidecar(config, environ) as one, running_sidecar(config, environ) as two:
        yield one, two, api_key


async def test_two_sidecars_on_one_redis_pass_one_budget_together_and_fall_back_when_it_stops(
    exchange: RunningExchange, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with two_replicas(exchange, redis_server.url, 8) as (one, two, api_key):
        first = await asyncio.gather(burst(one, 7), burst(two, 7))
        passed = [sum(1 for s, _, _ in answers if s == 201) for answers in first]
        assert sum(passed) == 8 and all(p > 0 for p in passed)
        assert placed(exchange, api_key) == 8

        redis_server.stop()  # mid-run: each replica now serves on its share, 8 / 2 = 4
        with caplog.at_level(logging.WARNING, logger="sidecar.budget"):
            second = await asyncio.gather(burst(one, 6), burst(two, 6))
            third = await asyncio.gather(burst(one, 2), burst(two, 2))
        assert [sum(1 for s, _, _ in a if s == 201) for a in second] == [4, 4]
        assert all(s == 429 for answers in third for s, _, _ in answers)
        warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(warnings) == 2  # logged once per replica, not per request
        for sidecar in (one, two):
            samples = await scrape(sidecar.admin_url)
            assert samples[("gate_sidecar_rate_budget_fallback", (("key", "bot"),))] == 1


BAD_CONFIGS = [
    ({"rate_limit": {"overrides": [{"group": "spot-orders", "limit": 1, "per_s": 1}]}},
     "keys[0].rate_limit.overrides[0].group: unknown group 'spot-orders'"),
    ({"rate_limit": {"shared": "redis://:hunter2@redis:6379/0"}},
     "keys[0].rate_limit.shared: must not hold credentials (user:password@): the file is no "
     "place for a secret; give them in shared_password_file (and shared_username_file)"),
    ({"rate_limit": {"shared_password_file": "/run/secrets/redis"}},
     "keys[0].rate_limit: shared_password_file needs shared (a Redis URL)"),
    ({"rate_limit": {"shared": "redis://redis:6379/0", "shared_username_file": "/run/u"}},
     "keys[0].rate_limit: shared_username_file needs shared_password_file"),
    ({"rate_limit": {"shared": "http://redis:6379"}},
     "keys[0].rate_limit.shared: must be a redis://, rediss:// or unix:// URL"),
    ({"rate_limit": {"replicas": 0}}, "keys[0].rate_limit.replicas:"),
    ({"guards": {"max_order_size": -1}}, "keys[0].guards.max_order_size:"),
    ({"guards": {"settle": ["USDT"]}}, "keys[0].guards.settle: settle currencies are lower case"),
    ({"guards": {"order_types": ["stop"]}}, "keys[0].guards.order_types[0]:"),
    ({"guards": {"instruments": []}}, "keys[0].guards.instruments:"),
    ({"guards": {"max_size": 1}}, "keys[0].guards.max_size: unknown field 'max_size'"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "problem"), BAD_CONFIGS)
def test_a_bad_guard_or_budget_setting_names_its_field(extra: dict[str, Any], problem: str) -> None:
    entry, _, _, _ = env_key("bot", "futures-only", **extra)
    with pytest.raises(ConfigError) as caught:
        make_config("http://127.0.0.1:1", [entry])
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
    assert "hunter2" not in str(caught.value)  # a password in the URL is never echoed


async def test_a_reload_with_a_new_budget_starts_from_full_buckets(
    exchange: RunningExchange,
) -> None:
    override = {"group": "spot-order-place", "limit": 1, "per_s": 600}
    entry, environ, _, secret = env_key("bot", "spot-only", rate_limit={"overrides": [override]})
    exchange.state.add_key(environ["BOT_KEY"], secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        assert [s for s, _, _ in await burst(sidecar, 2)] == [201, 429]
        wider = {"overrides": [{**override, "limit": 3}]}
        await apply_config(
            sidecar.sidecar, make_config(exchange.url, [{**entry, "rate_limit": wider}])
        )
        assert sorted(s for s, _, _ in await burst(sidecar, 4)) == [201, 201, 201, 429]
