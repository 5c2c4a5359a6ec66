"""Gate's public market data for the guards: last prices and contract multipliers, cached.

A market order has no price, and a futures order's notional needs the contract's multiplier, so
``max_notional`` (and ``max_order_size`` for a spot market buy) need facts the request does not
carry. They come from Gate's public endpoints (no signature), through the key's own forwarder:
tickers cached a few seconds, contract info an hour. A fetch that fails is remembered briefly
and the order is refused with the reason, never passed unchecked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from sidecar.errors import SidecarError
from sidecar.policy.guards import Need, Quote, QuoteKey
from sidecar.policy.guards.shapes import Product
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest

log = logging.getLogger("sidecar.market")

PRICE_TTL_S = 3.0
CONTRACT_TTL_S = 3600.0
FAILURE_TTL_S = 1.0
FETCH_TIMEOUT_S = 2.0
MAX_FACTS = 4096

Fact = tuple[dict[str, object] | None, str]  # (the JSON object, or None and why)


def _decimal(doc: Mapping[str, object] | None, name: str) -> Decimal | None:
    value = None if doc is None else doc.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number > 0 else None


def _ticker_path(key: QuoteKey) -> tuple[str, str]:
    name = key.instrument
    if key.product is Product.SPOT:
        return "/api/v4/spot/tickers", f"currency_pair={name}"
    if key.product is Product.OPTIONS:
        return f"/api/v4/options/contracts/{name}", ""
    return f"/api/v4/{key.product.value}/{key.settle}/tickers", f"contract={name}"


def _contract_path(key: QuoteKey) -> str:
    if key.product is Product.OPTIONS:
        return f"/api/v4/options/contracts/{key.instrument}"
    return f"/api/v4/{key.product.value}/{key.settle}/contracts/{key.instrument}"


class Market:
    """Cached public facts, fetched through ``forwarder`` (shared by every key using it)."""

    def __init__(
        self, forwarder: Forwarder, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._forwarder = forwarder
        self._now = monotonic
        self._cache: dict[tuple[str, str], tuple[float, Fact]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[Fact]] = {}

    async def _get(self, path: str, query: str, ttl_s: float) -> Fact:
        ident = (path, query)
        cached = self._cache.get(ident)
        if cached is not None and cached[0] > self._now():
            return cached[1]
        task = self._inflight.get(ident)
        if task is None:
            # One fetch per fact, however many orders wait for it; a task of its own, so a bot
            # that hangs up does not cancel the fetch the others wait for.
            task = asyncio.create_task(self._fetch(path, query), name=f"market:{path}")
            self._inflight[ident] = task
            task.add_done_callback(lambda done: self._settle(ident, ttl_s, done))
        return await asyncio.shield(task)

    def _settle(self, ident: tuple[str, str], ttl_s: float, task: asyncio.Task[Fact]) -> None:
        self._inflight.pop(ident, None)
        if task.cancelled() or task.exception() is not None:
            return
        fact = task.result()
        if len(self._cache) >= MAX_FACTS:  # names come from bots: bounded, whatever they send
            self._cache.clear()
        ttl = ttl_s if fact[0] is not None else FAILURE_TTL_S
        self._cache[ident] = (self._now() + ttl, fact)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def _fetch(self, path: str, query: str) -> Fact:
        request = UpstreamRequest("GET", path, query, [("Accept", "application/json")], b"")
        what = path.rsplit("/", 1)[-1]
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                resp = await self._forwarder.send(request)
        except (SidecarError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, SidecarError) else "Gate did not answer"
            return None, f"{what} unavailable: {reason}"
        if resp.status != 200:
            label = resp.gate_label()
            return None, f"{what} unavailable: HTTP {resp.status}" + (f" {label}" if label else "")
        doc = resp.json()
        if isinstance(doc, list):  # tickers answer a list of one
            doc = doc[0] if doc else None
        if not isinstance(doc, dict):
            return None, f"{what} unavailable: no such market in Gate's answer"
        return doc, ""

    async def quote(self, key: QuoteKey, need: Need) -> Quote:
        last = multiplier = None
        inverse = False
        problems = []
        if need.last:
            path, query = _ticker_path(key)
            doc, why = await self._get(path, query, PRICE_TTL_S)
            field = "last_price" if key.product is Product.OPTIONS else "last"
            last = _decimal(doc, field)
            if last is None:
                problems.append(why or f"no {field} in Gate's answer")
        if need.contract:
            doc, why = await self._get(_contract_path(key), "", CONTRACT_TTL_S)
            field = "multiplier" if key.product is Product.OPTIONS else "quanto_multiplier"
            inverse = doc is not None and doc.get("type") == "inverse"
            multiplier = _decimal(doc, field)
            if multiplier is None and not inverse:
                problems.append(why or f"no {field} in Gate's answer")
        return Quote(last, multiplier, inverse, "; ".join(problems))

    async def quotes(self, needs: Mapping[QuoteKey, Need]) -> dict[QuoteKey, Quote]:
        if len(needs) == 1:  # the usual case: no task to schedule, a cached quote costs ~nothing
            ((key, need),) = needs.items()
            return {key: await self.quote(key, need)}
        keys = list(needs)
        found: list[Quote] = await asyncio.gather(*(self.quote(k, needs[k]) for k in keys))
        return dict(zip(keys, found, strict=True))
