"""Rolling windows in this process's memory: each counter a queue of (time, amount), oldest
first. Used alone when a key has no shared Redis, and beside Redis to remember what this
replica placed itself, which is what its share is judged by when Redis stops answering."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal

from sidecar.policy.windows import Charge, Counter, Full, frees_in

MAX_ENTRIES = 100_000  # per counter: a bound on memory whatever the window's length


class _Queue:
    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, Decimal]] = deque()
        self.total = Decimal(0)

    def trim(self, before: float) -> None:
        while self.entries and (self.entries[0][0] <= before or len(self.entries) > MAX_ENTRIES):
            self.total -= self.entries.popleft()[1]


class LocalWindows:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._queues: dict[str, _Queue] = {}

    def _queue(self, counter: Counter, now: float) -> _Queue:
        queue = self._queues.setdefault(counter.name, _Queue())
        queue.trim(now - counter.per_s)
        return queue

    def check(self, charges: Sequence[Charge], share: Decimal = Decimal(1)) -> Full | None:
        """The first counter the call does not fit, with ``share`` of each limit (None: fits)."""
        now = self._now()
        for charge in charges:
            queue = self._queue(charge.counter, now)
            limit = charge.counter.limit * share
            if queue.total + charge.amount > limit:
                scaled = Charge(_scaled(charge.counter, limit), charge.amount)
                wait = frees_in(list(queue.entries), queue.total, scaled, now)
                return Full(scaled, queue.total, wait)
        return None

    def add(self, charges: Sequence[Charge]) -> None:
        now = self._now()
        for charge in charges:
            queue = self._queue(charge.counter, now)
            queue.entries.append((now, charge.amount))
            queue.total += charge.amount

    def take(self, charges: Sequence[Charge], share: Decimal = Decimal(1)) -> Full | None:
        """Check and count at once (nothing awaits in between: atomic in this process)."""
        full = self.check(charges, share)
        if full is None:
            self.add(charges)
        return full

    def forget(self, keep: Sequence[Counter]) -> None:
        """Drop the queues of counters no longer configured (after a reload)."""
        names = {c.name for c in keep}
        for name in [n for n in self._queues if n not in names]:
            del self._queues[name]


def _scaled(counter: Counter, limit: Decimal) -> Counter:
    if limit == counter.limit:
        return counter
    return Counter(counter.index, counter.measure, counter.per_s, limit, counter.instruments)
