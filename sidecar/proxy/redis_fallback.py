"""When to use a key's shared Redis and when this replica's own share: one rule for whatever a
key shares through ``rate_limit.shared`` (the rolling windows; the rate budgets follow the
same rule in :mod:`sidecar.proxy.budget`).

After a Redis failure the replica serves from its local share (``1/replicas``) for
:data:`RETRY_S`, says so once in the log (and in /metrics through ``fallback``), then tries
Redis again: trading never waits for Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("sidecar.budget")

RETRY_S = 1.0


class RedisFallback:
    def __init__(
        self, key: str, what: str, replicas: int, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.key, self.what, self.replicas = key, what, replicas
        self._now = monotonic
        self.fallback = False  # serving from the local share because Redis did not answer
        self._retry_at = 0.0

    def use_shared(self) -> bool:
        return not self.fallback or self._now() >= self._retry_at

    def failed(self, error: Exception) -> None:
        self._retry_at = self._now() + RETRY_S
        if not self.fallback:
            self.fallback = True
            log.warning(
                f"{self.what}: Redis unreachable; serving from this replica's local share",
                extra={"key": self.key, "error": str(error), "share": f"1/{self.replicas}"},
            )

    def recovered(self) -> None:
        if self.fallback:
            self.fallback = False
            log.info(f"{self.what}: Redis reachable again; shared", extra={"key": self.key})
