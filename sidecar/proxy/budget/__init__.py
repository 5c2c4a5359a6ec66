"""A key's rate budgets: a token bucket per Gate endpoint group, taken before forwarding.

Groups and Gate's published limits are :mod:`sidecar.gate.ratelimits`; ``keys[].rate_limit``
(:mod:`~sidecar.proxy.budget.settings`) keeps or replaces them. Without ``shared`` the buckets
live in this process (:mod:`~sidecar.proxy.budget.local`); with ``shared: redis://...`` in Redis
(:mod:`~sidecar.proxy.budget.redis_store`), one budget for every replica of the key, with its
credentials from files (:mod:`~sidecar.proxy.budget.redis_auth`). When Redis
does not answer, this replica serves from a local bucket of ``1/replicas`` of the budget, says
so once in the log and in /metrics, and tries Redis again a second later: trading never waits
for Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from sidecar.errors import RateLimited
from sidecar.gate.headers import header_value
from sidecar.gate.ratelimits import (
    GATE_GROUPS,
    GROUPS_BY_NAME,
    Group,
    Take,
    bucket_scope,
    group_for,
)
from sidecar.gate.ratelimits import retry_after_header as retry_after_header
from sidecar.memo import SIZE, Memo
from sidecar.proxy.budget.local import LocalStore
from sidecar.proxy.budget.settings import RateLimitConfig
from sidecar.proxy.budget.unavailable import StoreUnavailable

log = logging.getLogger("sidecar.budget")

# Paths carry ids (order ids, contracts), so the route cache is bounded: emptied when full, as
# the policy's decision cache is.
ROUTE_CACHE_SIZE = SIZE
REDIS_RETRY_S = 1.0  # after a Redis failure, the local share serves this long before a retry
PREFIX = "gate-sidecar"


class Store(Protocol):
    async def take(self, name: str, capacity: float, rate: float) -> Take: ...

    async def tighten(
        self, name: str, capacity: float, rate: float, remaining: int, reset_in_s: float | None
    ) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class GroupBudget:
    group: Group
    limit: int
    per_s: float

    @cached_property
    def rate(self) -> float:  # tokens per second, read on every take
        return self.limit / self.per_s


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request counts: its group's budget (None: the config budgets no such group) and
    the name of the bucket it takes from (per endpoint template in a per-endpoint group)."""

    budget: GroupBudget | None
    bucket: str = ""


def budgets(cfg: RateLimitConfig) -> dict[str, GroupBudget]:
    """The groups a key's config budgets, with their limits (Gate's, or overridden)."""
    out = (
        {g.name: GroupBudget(g, g.limit, g.per_s) for g in GATE_GROUPS} if cfg.gate_defaults else {}
    )
    for o in cfg.overrides:
        out[o.group] = GroupBudget(GROUPS_BY_NAME[o.group], o.limit, o.per_s)
    return out


def shared_store(url: str, cfg: RateLimitConfig) -> Store:
    """The key's budgets in its ``shared`` Redis. redis (and the ``cryptography`` it loads, about
    15 MB together) is imported here, only by a sidecar with a key that shares its budget."""
    from sidecar.proxy.budget.redis_auth import file_credentials
    from sidecar.proxy.budget.redis_store import RedisStore

    return RedisStore(url, cfg.redis_timeout_s, file_credentials(cfg))


class KeyBudget:
    def __init__(
        self,
        key: str,
        cfg: RateLimitConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.groups = budgets(cfg)
        self.replicas = cfg.replicas
        self._now, self._wall = monotonic, wall
        self._local = LocalStore(monotonic)
        self._shared: Store | None = shared_store(cfg.shared, cfg) if cfg.shared else None
        self.shared_url = cfg.shared
        self.fallback = False  # serving from the local share because Redis did not answer
        self._retry_at = 0.0
        # (method, path) -> its Route: finding the group tries Gate's groups' regexes in order
        # and a per-endpoint group's bucket looks the template up, both on every request else.
        self._routes: Memo[tuple[str, str], Route] = Memo(ROUTE_CACHE_SIZE)

    def route(self, method: str, path: str) -> Route:
        """The request's budget and bucket, remembered per (method, path)."""
        route = self._routes.get((method, path))
        if route is None:
            budget = self.groups.get(group_for(method, path).name)
            route = Route(budget, "" if budget is None else self._bucket(budget, method, path))
            self._routes.keep((method, path), route, path)
        return route

    def _bucket(self, budget: GroupBudget, method: str, path: str) -> str:
        name = f"{PREFIX}:{self.key}:{budget.group.name}"
        scope = bucket_scope(budget.group, method, path)
        return f"{name}:{scope}" if scope else name

    def _store(self) -> tuple[Store, float]:
        """The store to use now and the share of the budget it holds (1, or 1/replicas)."""
        if self._shared is None:
            return self._local, 1.0
        if self.fallback and self._now() < self._retry_at:
            return self._local, 1.0 / self.replicas
        return self._shared, 1.0

    def _fell_back(self, error: StoreUnavailable) -> None:
        self._retry_at = self._now() + REDIS_RETRY_S
        if not self.fallback:
            self.fallback = True
            log.warning(
                "rate budget: Redis unreachable; serving from this replica's local share",
                extra={"key": self.key, "error": str(error), "share": f"1/{self.replicas}"},
            )

    def _recovered(self) -> None:
        if self.fallback:
            self.fallback = False
            log.info("rate budget: Redis reachable again; shared budget", extra={"key": self.key})

    async def _run_take(self, name: str, budget: GroupBudget) -> Take:
        store, share = self._store()
        if store is self._shared:
            try:
                result = await store.take(name, budget.limit, budget.rate)
            except StoreUnavailable as exc:
                self._fell_back(exc)
                store, share = self._local, 1.0 / self.replicas
            else:
                self._recovered()
                return result
        return await store.take(name, max(1.0, budget.limit * share), budget.rate * share)

    async def take(self, method: str, path: str) -> str | None:
        """Take one token for this request (the group's name), or raise RateLimited."""
        route = self.route(method, path)
        budget = route.budget
        if budget is None:
            return None
        if self._shared is None:  # the common case: no coroutine below this one
            result = self._local.take_now(route.bucket, budget.limit, budget.rate)
        else:
            result = await self._run_take(route.bucket, budget)
        if not result.allowed:
            raise RateLimited(
                f"rate budget {budget.group.name} ({budget.limit} per {budget.per_s:g}s) of key "
                f"{self.key} is spent; retry in {retry_after_header(result.retry_after_s)}s",
                budget.group.name,
                result.retry_after_s,
            )
        return budget.group.name

    async def observe(self, method: str, path: str, headers: Iterable[tuple[str, str]]) -> None:
        """Gate's ``X-Gate-RateLimit-*`` answer headers tighten the request's bucket."""
        headers = list(headers)
        remain = header_value(headers, "X-Gate-RateLimit-Requests-Remain")
        route = self.route(method, path) if remain is not None else None
        budget = None if route is None else route.budget
        if route is None or budget is None or remain is None:
            return
        try:
            remaining = int(remain)
            reset = header_value(headers, "X-Gate-RateLimit-Reset-Timestamp")
            reset_in_s = None if reset is None else int(reset) / 1000.0 - self._wall()
        except ValueError:
            return  # a header we cannot read tightens nothing
        if remaining >= budget.limit:
            return
        store, share = self._store()
        try:
            await store.tighten(
                route.bucket, budget.limit * share, budget.rate * share, remaining, reset_in_s
            )
        except StoreUnavailable as exc:
            self._fell_back(exc)

    async def close(self) -> None:
        await self._local.close()
        if self._shared is not None:
            await self._shared.close()


def build_budget(key: str, cfg: RateLimitConfig | None) -> KeyBudget | None:
    return None if cfg is None else KeyBudget(key, cfg)
