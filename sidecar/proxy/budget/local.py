"""Token buckets in this process's memory (:mod:`sidecar.gate.ratelimits` does the arithmetic)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sidecar.gate.ratelimits import Bucket, Take, take, tighten

MAX_BUCKETS = 10_000  # per-endpoint groups key by path: bounded, oldest dropped first


class LocalStore:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._buckets: dict[str, Bucket] = {}

    def _put(self, name: str, bucket: Bucket) -> None:
        buckets = self._buckets
        buckets[name] = bucket  # (re-)inserted after a pop: most recently used last
        if len(buckets) > MAX_BUCKETS:
            del buckets[next(iter(buckets))]

    def take_now(self, name: str, capacity: float, rate: float) -> Take:
        """:meth:`take` without a coroutine: the hot path of every request of a key whose
        budget is not shared. One pop (read and unlink) and one insert per take."""
        result = take(self._buckets.pop(name, None), capacity, rate, self._now())
        self._put(name, result.bucket)
        return result

    async def take(self, name: str, capacity: float, rate: float) -> Take:
        return self.take_now(name, capacity, rate)

    async def tighten(
        self, name: str, capacity: float, rate: float, remaining: int, reset_in_s: float | None
    ) -> None:
        bucket = self._buckets.pop(name, None)
        self._put(name, tighten(bucket, capacity, rate, self._now(), remaining, reset_in_s))

    async def close(self) -> None:
        self._buckets.clear()
