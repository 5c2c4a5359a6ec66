"""Metrics of the trading guards and rate budgets, on the app's own registry.

Counters fed by the request and frame observers (guard refusals by guard name, rate-limited
requests and WebSocket frames by budget group) and gauges read from the running sidecar at
scrape time (each key's cancel-only brake, whether its shared rate budget is serving from the
local share because Redis does not answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from sidecar.errors import RateLimited
from sidecar.ops.exposition import CollectorRegistry, Counter, GaugeMetricFamily, Metric
from sidecar.ops.metrics import PREFIX
from sidecar.ops.scrape import ScrapeCollector
from sidecar.ops.status import SidecarView
from sidecar.proxy.record import RequestRecord
from sidecar.proxy.ws.record import FrameRecord


class GuardMetrics:
    def __init__(self, registry: CollectorRegistry, view: SidecarView) -> None:
        self.registry = registry
        self.guard_denials = Counter(
            f"{PREFIX}_guard_denials",
            "Requests and WebSocket frames a trading guard refused, by key and guard "
            "(max_order_size, cancel_only...).",
            ["key", "guard"],
            registry=registry,
        )
        self.rate_limited = Counter(
            f"{PREFIX}_rate_limited",
            "Requests (429) and WebSocket frames refused because the key's rate budget was "
            "spent, by group.",
            ["key", "group"],
            registry=registry,
        )
        self._state = ScrapeCollector(registry, partial(_state, view))

    def observe(self, record: RequestRecord | FrameRecord) -> None:
        """A REST request or a WebSocket frame: both count by guard and by budget group."""
        if record.guard is not None:
            self.guard_denials.labels(record.key, record.guard).inc()
        if record.label == RateLimited.label and record.rate_group is not None:
            self.rate_limited.labels(record.key, record.rate_group).inc()

    def unwatch(self) -> None:
        self._state.unwatch()


def _state(view: SidecarView) -> Iterator[Metric]:
    brake = GaugeMetricFamily(
        f"{PREFIX}_cancel_only",
        "1 while the key's cancel-only brake is on (only reads, cancels, closes pass).",
        labels=["key"],
    )
    fallback = GaugeMetricFamily(
        f"{PREFIX}_rate_budget_fallback",
        "1 while the key's shared rate budget serves from this replica's local share "
        "(Redis unreachable).",
        labels=["key"],
    )
    for key in sorted(view.key_statuses(), key=lambda k: k.name):
        if key.url is None:
            continue
        brake.add_metric([key.name], float(key.cancel_only))
        if key.budget_fallback is not None:
            fallback.add_metric([key.name], float(key.budget_fallback))
    yield brake
    yield fallback
