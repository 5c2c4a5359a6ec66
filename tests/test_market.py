"""Public prices for the guards: one fetch per fact however many orders wait, cached, and a
failure remembered briefly and reported as the reason, never as a price."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from sidecar.errors import UpstreamTimeout
from sidecar.policy.guards import Need, QuoteKey
from sidecar.policy.guards.shapes import Product
from sidecar.proxy.forwarder import UpstreamRequest, UpstreamResponse
from sidecar.proxy.market import Market
from tests.doubles import MemoryForwarder

KEY = QuoteKey(Product.FUTURES, "usdt", "BTC_USDT")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_orders_share_one_fetch_and_the_cache_serves_the_next() -> None:
    async def upstream(request: UpstreamRequest) -> UpstreamResponse:
        await asyncio.sleep(0.05)  # hold: the fetch stays in flight while the other orders ask
        doc: object = (
            {"quanto_multiplier": "0.0001", "type": "direct"}
            if "/contracts/" in request.path
            else [{"contract": "BTC_USDT", "last": "60000"}]
        )
        return UpstreamResponse(200, [], json.dumps(doc).encode())

    forwarder = MemoryForwarder(upstream)
    market = Market(forwarder, Clock())
    need = Need(last=True, contract=True)
    quotes = await asyncio.gather(*(market.quote(KEY, need) for _ in range(5)))
    assert {(q.last, q.multiplier, q.problem) for q in quotes} == {
        (Decimal(60000), Decimal("0.0001"), "")
    }
    assert len(forwarder.sent) == 2  # one ticker, one contract
    await market.quotes({KEY: need})
    assert len(forwarder.sent) == 2
    assert forwarder.sent[0].raw_query == "contract=BTC_USDT"


async def test_a_failed_fetch_is_the_reason_and_is_retried_after_a_second() -> None:
    calls = 0

    async def upstream(request: UpstreamRequest) -> UpstreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise UpstreamTimeout("Gate did not answer in time")
        return UpstreamResponse(200, [], b'[{"last": "61000"}]')

    clock = Clock()
    market = Market(MemoryForwarder(upstream), clock)
    need = Need(last=True, contract=False)
    first = await market.quote(KEY, need)
    assert (
        first.last is None and first.problem == "tickers unavailable: Gate did not answer in time"
    )
    assert (await market.quote(KEY, need)).last is None  # remembered, not asked again at once
    clock.now += 1.5
    assert (await market.quote(KEY, need)).last == Decimal(61000)
    assert calls == 2


async def test_an_unknown_market_says_so() -> None:
    async def upstream(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, [], b"[]")

    quote = await Market(MemoryForwarder(upstream)).quote(KEY, Need(last=True, contract=False))
    assert quote.problem == "tickers unavailable: no such market in Gate's answer"
