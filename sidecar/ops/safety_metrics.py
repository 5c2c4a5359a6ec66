"""Metrics of trading safety over time, on the app's own registry: what warn mode forwarded
(``gate_sidecar_would_deny_total{key, kind, name}``, fed by the request and frame observers),
and, read at scrape time, each dead-man scope's countdown (armed, seconds until it fires) and
whether a key's shared windows serve from the local share (Redis unreachable)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from sidecar.ops.exposition import CollectorRegistry, Counter, GaugeMetricFamily, Metric
from sidecar.ops.metrics import PREFIX
from sidecar.ops.scrape import ScrapeCollector
from sidecar.ops.status import SidecarView
from sidecar.proxy.record import RequestRecord
from sidecar.proxy.ws.record import FrameRecord


class SafetyMetrics:
    def __init__(self, registry: CollectorRegistry, view: SidecarView) -> None:
        self.registry = registry
        self.would_deny = Counter(
            f"{PREFIX}_would_deny",
            "Requests and WebSocket frames a key in warn mode forwarded although the policy "
            "(kind policy: the rule), a guard (kind guard) or a rolling window (kind window: "
            "windows[i].max_orders|max_notional) would have refused them.",
            ["key", "kind", "name"],
            registry=registry,
        )
        self._state = ScrapeCollector(registry, partial(_state, view))

    def observe(self, record: RequestRecord | FrameRecord) -> None:
        would = record.would_deny
        if would is not None:
            self.would_deny.labels(record.key, would.kind.value, would.name).inc()

    def unwatch(self) -> None:
        self._state.unwatch()


def _state(view: SidecarView) -> Iterator[Metric]:
    armed = GaugeMetricFamily(
        f"{PREFIX}_dead_man_armed",
        "1 while the key's dead-man countdown (Gate's countdown_cancel_all) of a scope is "
        "armed, as far as the sidecar knows (it armed it less than timeout_s ago).",
        labels=["key", "scope"],
    )
    fires = GaugeMetricFamily(
        f"{PREFIX}_dead_man_fires_in_seconds",
        "Seconds until Gate cancels the scope's open orders unless the countdown is renewed "
        "(only while armed).",
        labels=["key", "scope"],
    )
    fallback = GaugeMetricFamily(
        f"{PREFIX}_windows_fallback",
        "1 while the key's shared rolling windows judge by this replica's local share "
        "(Redis unreachable).",
        labels=["key"],
    )
    for key in sorted(view.key_statuses(), key=lambda k: k.name):
        for scope in key.dead_man:
            armed.add_metric([key.name, scope.scope], float(scope.armed))
            if scope.fires_in_s is not None:
                fires.add_metric([key.name, scope.scope], scope.fires_in_s)
        if key.windows_fallback is not None:
            fallback.add_metric([key.name], float(key.windows_fallback))
    yield armed
    yield fires
    yield fallback
