"""Rolling windows: what a call adds to each window (pure), the refusal's words, and the two
stores (in memory, and the Redis script on a real redis-server) on the same cases."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from sidecar.config.safety import WindowConfig
from sidecar.policy.conditions import Body
from sidecar.policy.guards import Call, Guards, Quote, QuoteKey, Refusal
from sidecar.policy.guards.shapes import Product
from sidecar.policy.windows import (
    Charge,
    Full,
    Measure,
    charges,
    compile_windows,
    frees_in,
    refusal,
    retry_after_s,
    window_needs,
)
from sidecar.proxy.budget.redis_store import StoreUnavailable
from sidecar.proxy.windows.local import LocalWindows
from sidecar.proxy.windows.redis_store import RedisWindows
from tests.fixtures_redis import RedisServer

QUOTES = {
    QuoteKey(Product.SPOT, None, "BTC_USDT"): Quote(last=Decimal(60000)),
    QuoteKey(Product.FUTURES, "usdt", "BTC_USDT"): Quote(Decimal(60000), Decimal("0.0001")),
}


def call_of(target: str, body: object) -> Call:
    method, _, path = target.partition(" ")
    found = Guards(None).http_call(method, path, "", Body(json.dumps(body).encode()), template=None)
    assert isinstance(found, Call)
    return found


def counters(*windows: dict[str, Any]) -> Any:
    return compile_windows([WindowConfig(**w) for w in windows])


def spot(pair: str = "BTC_USDT", amount: str = "1", price: str = "100") -> dict[str, Any]:
    return {"currency_pair": pair, "side": "buy", "amount": amount, "price": price}


def test_each_order_of_a_batch_counts_and_instruments_narrow_a_window() -> None:
    cs = counters(
        {"per_s": 60, "max_orders": 10, "max_notional": 1000},
        {"per_s": 60, "max_orders": 5, "instruments": ["ETH_USDT"]},
    )
    assert [c.name for c in cs] == [
        "windows[0].max_orders", "windows[0].max_notional", "windows[1].max_orders",
    ]  # fmt: skip
    batch = call_of("POST /api/v4/spot/batch_orders",
                    [spot(), spot(amount="2"), spot("ETH_USDT", price="10")])  # fmt: skip
    got = charges(batch, cs, QUOTES)
    assert isinstance(got, list)
    assert {c.counter.name: c.amount for c in got} == {
        "windows[0].max_orders": 3, "windows[0].max_notional": 310, "windows[1].max_orders": 1,
    }  # fmt: skip


def test_an_amend_counts_its_new_notional_and_reads_no_market_it_cannot_weigh() -> None:
    cs = counters({"per_s": 60, "max_notional": 100000})
    amend = call_of("PATCH /api/v4/spot/orders/1", {"currency_pair": "BTC_USDT",
                                                    "amount": "2", "price": "50"})  # fmt: skip
    got = charges(amend, cs, QUOTES)
    # A spot amend names no side, so it may be a sell: weighed at the last trade (60000) rather
    # than its own price, as max_notional weighs it.
    assert isinstance(got, list) and got[0].amount == 120000
    futures_amend = call_of("PUT /api/v4/futures/usdt/orders/1", {"size": 2, "price": "1"})
    refused = charges(futures_amend, cs, QUOTES)
    assert isinstance(refused, Refusal) and refused.guard == "windows[0].max_notional"
    assert "names no contract" in refused.message


def test_futures_notional_uses_the_multiplier_and_market_orders_the_last_price() -> None:
    cs = counters({"per_s": 60, "max_notional": 100000})
    market = call_of("POST /api/v4/futures/usdt/orders",
                     {"contract": "BTC_USDT", "size": 10, "price": "0", "tif": "ioc"})  # fmt: skip
    assert window_needs(market, cs)  # the last price and the multiplier are fetched
    got = charges(market, cs, QUOTES)
    assert isinstance(got, list) and got[0].amount == Decimal("60")  # 10 x 60000 x 0.0001
    reads = call_of("POST /api/v4/futures/usdt/batch_cancel_orders", ["1", "2"])
    assert charges(reads, cs, QUOTES) == [] and window_needs(reads, cs) == {}


def test_the_refusal_names_the_window_its_use_limit_and_when_enough_frees_up() -> None:
    (counter,) = counters({"per_s": 3600, "max_notional": 250000})
    charge = Charge(counter, Decimal(5000))
    full = Full(charge, Decimal(248500), 1234.56)
    rejected = refusal(full)
    assert rejected.guard == "windows[0].max_notional"
    assert rejected.message == (
        "windows[0].max_notional: 248500 of 250000 notional used in the last 3600 s, and this "
        "call adds 5000; enough frees up in 1234.6 s"
    )
    assert retry_after_s(full) == 1234.56
    never = Full(Charge(counter, Decimal(300000)), Decimal(0), None)
    assert refusal(never).message.endswith("the call alone exceeds the limit")
    assert retry_after_s(never) == 3600


def test_frees_in_walks_the_oldest_entries_first() -> None:
    (counter,) = counters({"per_s": 10, "max_orders": 3})
    entries = [(100.0, Decimal(1)), (101.0, Decimal(1)), (105.0, Decimal(1))]
    assert frees_in(entries, Decimal(3), Charge(counter, Decimal(1)), 106.0) == 4.0
    assert frees_in(entries, Decimal(3), Charge(counter, Decimal(2)), 106.0) == 5.0
    assert frees_in(entries, Decimal(3), Charge(counter, Decimal(4)), 106.0) is None


def test_a_window_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="set max_orders, max_notional or both"):
        WindowConfig(per_s=60)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_local_store_counts_all_or_nothing_and_forgets_what_left_the_window() -> None:
    clock = Clock()
    store = LocalWindows(clock)
    orders, notional = counters({"per_s": 10, "max_orders": 3, "max_notional": 100})
    call = [Charge(orders, Decimal(1)), Charge(notional, Decimal(40))]
    assert store.take(call) is None and store.take(call) is None
    full = store.take(call)  # 3 orders fit, but 120 > 100 notional: nothing counted
    assert full is not None and full.charge.counter.measure is Measure.NOTIONAL
    assert full.use == 80 and full.frees_in_s == 10.0
    clock.now += 10.5
    assert store.take(call) is None  # both earlier calls left the window
    half = store.take(call, share=Decimal("0.5"))  # a replica's share: 1 + 1 > 1.5 orders
    assert half is not None and half.charge.counter.limit == Decimal("1.5")
    assert half.charge.counter.name == "windows[0].max_orders" and half.use == 1


async def test_the_redis_script_agrees_with_the_local_store(redis_server: RedisServer) -> None:
    shared = RedisWindows(redis_server.url, 1.0, "gate-sidecar:{test}")
    local = LocalWindows()
    try:
        orders, notional = counters({"per_s": 30, "max_orders": 3, "max_notional": 100})
        call = [Charge(orders, Decimal(1)), Charge(notional, Decimal("33.5"))]
        results = []
        for store_take in (shared.take, None):
            got = []
            for _ in range(4):
                full = await store_take(call) if store_take else local.take(call)
                got.append(None if full is None else (full.charge.counter.name, full.use))
            results.append(got)
        full_at = ("windows[0].max_notional", Decimal(67))  # 3 x 33.5 > 100
        assert results[0] == results[1] == [None, None, full_at, full_at]
        forced = await shared.take(call, force=True)  # warn mode: counted although full
        assert forced is not None
        again = await shared.take([Charge(orders, Decimal(1))])
        assert again is not None and again.use == 3 and again.frees_in_s is not None
        assert 0 < again.frees_in_s <= 30
    finally:
        await shared.close()


async def test_an_unreachable_redis_raises_store_unavailable() -> None:
    store = RedisWindows("unix:///tmp/no-such-redis-windows.sock", 0.2, "gate-sidecar:{x}")
    (counter,) = counters({"per_s": 10, "max_orders": 3})
    try:
        with pytest.raises(StoreUnavailable):
            await store.take([Charge(counter, Decimal(1))])
    finally:
        await store.close()
