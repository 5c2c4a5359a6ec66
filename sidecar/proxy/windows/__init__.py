"""A key's rolling windows (``guards.windows``): counted in this process, or in the key's
``rate_limit.shared`` Redis for every replica at once (:mod:`~sidecar.proxy.windows.redis_store`).

When Redis does not answer, the replica judges by its own share of each limit (``1/replicas``),
counting what it placed itself in the window, including what it placed through Redis before
it stopped answering (:mod:`~sidecar.proxy.windows.local` remembers that all along), and tries
Redis again a second later (:mod:`sidecar.proxy.redis_fallback`, the rate budgets' rule).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from sidecar.policy.windows import Charge, Counter, Full
from sidecar.proxy.budget.settings import RateLimitConfig
from sidecar.proxy.budget.unavailable import StoreUnavailable
from sidecar.proxy.redis_fallback import RedisFallback
from sidecar.proxy.windows.local import LocalWindows

if TYPE_CHECKING:  # imported at run time only for a key that shares (redis is ~15 MB)
    from sidecar.proxy.windows.redis_store import RedisWindows

PREFIX = "gate-sidecar"


class KeyWindows:
    def __init__(
        self,
        key: str,
        counters: Sequence[Counter],
        rate_limit: RateLimitConfig | None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.counters = tuple(counters)
        self._local = LocalWindows(monotonic)
        self._shared: RedisWindows | None = None
        replicas = 1
        if rate_limit is not None and rate_limit.shared is not None:
            from sidecar.proxy.budget.redis_auth import file_credentials
            from sidecar.proxy.windows.redis_store import RedisWindows

            self._shared = RedisWindows(
                rate_limit.shared,
                rate_limit.redis_timeout_s,
                f"{PREFIX}:{{{key}}}",
                file_credentials(rate_limit),
            )
            replicas = rate_limit.replicas
        self._fallback = RedisFallback(key, "rolling windows", replicas, monotonic)
        self._share = Decimal(1) / Decimal(replicas)

    @property
    def shared(self) -> bool:
        return self._shared is not None

    @property
    def fallback(self) -> bool:
        return self._fallback.fallback

    async def take(self, charges: Sequence[Charge], *, force: bool = False) -> Full | None:
        """Count the call's charges if it fits every counter; else the first counter it does not
        fit, and nothing counted unless ``force`` (warn mode counts what it forwards)."""
        if not charges:
            return None
        if self._shared is not None and self._fallback.use_shared():
            try:
                full = await self._shared.take(charges, force=force)
            except StoreUnavailable as exc:
                self._fallback.failed(exc)
            else:
                self._fallback.recovered()
                if full is None or force:
                    self._local.add(charges)  # this replica's own use, for its share later
                return full
        share = Decimal(1) if self._shared is None else self._share
        full = self._local.check(charges, share)
        if full is None or force:
            self._local.add(charges)
        return full

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()
