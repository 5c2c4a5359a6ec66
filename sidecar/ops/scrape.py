"""A collector read at scrape time, on an app's own registry, until the sidecar stops.

The state gauges (keys, clock, Vault, guards, dead-man countdowns, WebSocket counts) are built
from the running sidecar on every scrape rather than kept up to date. :class:`ScrapeCollector`
is the one piece that registers such a reader and takes it off again (``unwatch``), so a
stopped sidecar's state is never read by a later scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from sidecar.ops.exposition import CollectorRegistry, Metric

Families = Callable[[], Iterable[Metric]]


class ScrapeCollector:
    """Registers itself on ``registry``; every scrape yields what ``families()`` builds."""

    def __init__(self, registry: CollectorRegistry, families: Families) -> None:
        self._registry: CollectorRegistry | None = registry
        self._families = families
        registry.register(self)

    def describe(self) -> Iterable[Metric]:
        return []  # names vary with the config; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._families()

    def unwatch(self) -> None:
        """Take the collector off its registry; a second call does nothing."""
        if self._registry is not None:
            self._registry.unregister(self)
            self._registry = None
