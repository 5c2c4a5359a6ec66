"""WebSocket metrics, registered with the app's own registry (:class:`sidecar.ops.metrics.Metrics`).

Connections and frame counts are plain integers kept by each key's runtime
(:class:`sidecar.proxy.ws.record.WsStats`) and read at scrape time, so relaying market data costs
an integer increment per frame. Signed and refused frames are counted from their records. Labels
are bounded: key names from the config, directions, and the fixed denial reasons REST uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial

from sidecar.ops.exposition import (
    CollectorRegistry,
    Counter,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from sidecar.ops.metrics import PREFIX
from sidecar.ops.reasons import REFUSAL_REASONS, decided_reason
from sidecar.ops.scrape import ScrapeCollector
from sidecar.ops.ws_audit import frame_audit_line
from sidecar.proxy.ws.record import FrameObserver, FrameRecord, WsStats

StatsSource = Callable[[], Mapping[str, WsStats]]


class WsMetrics:
    def __init__(self, registry: CollectorRegistry, stats: StatsSource) -> None:
        self.signed = Counter(
            f"{PREFIX}_ws_signed_frames",
            "WebSocket frames the sidecar signed, by key and kind (private channel, trading API).",
            ["key", "kind"],
            registry=registry,
        )
        self.denied = Counter(
            f"{PREFIX}_ws_denied_frames",
            "WebSocket frames the sidecar refused, by key and reason.",
            ["key", "reason"],
            registry=registry,
        )
        ScrapeCollector(registry, partial(_stats_families, stats))

    def observe(self, record: FrameRecord) -> None:
        if record.decision == "sign":
            kind = "api" if record.event == "api" else "private"
            self.signed.labels(record.key, kind).inc()
        else:
            self.denied.labels(record.key, frame_denial_reason(record)).inc()

    def observers(self, *, audit: bool) -> list[FrameObserver]:
        return [self.observe, frame_audit_line] if audit else [self.observe]


def frame_denial_reason(record: FrameRecord) -> str:
    """The REST reasons: ``guard`` for a trading guard's refusal, ``rate_limited`` for a spent
    rate budget, the policy's reasons for a policy denial; ``bad_frame`` for a frame that cannot
    be checked, ``unavailable`` when the key could not sign; ``unauthenticated`` for a session
    closed because its client token was revoked."""
    reason = decided_reason(record.guard, record.label, record.decision, record.origin)
    if reason is not None:
        return reason
    if record.label in REFUSAL_REASONS:
        return REFUSAL_REASONS[record.label]
    return "bad_frame" if record.decision == "refuse" else "unavailable"


def _stats_families(stats: StatsSource) -> Iterator[Metric]:
    conns = GaugeMetricFamily(
        f"{PREFIX}_ws_connections", "Open WebSocket connections from bots.", labels=["key"]
    )
    frames = CounterMetricFamily(
        f"{PREFIX}_ws_frames",
        "WebSocket frames relayed, by key and direction (in: from the bot, out: to the bot).",
        labels=["key", "direction"],
    )
    events = CounterMetricFamily(
        f"{PREFIX}_ws_session_events",
        "WebSocket sessions by event: accepted, rejected (upgrade refused), resumed (moved "
        "to a rotated key), closed_by_rotation.",
        labels=["key", "event"],
    )
    for key, s in sorted(stats().items()):
        conns.add_metric([key], s.open)
        frames.add_metric([key, "in"], s.frames_in)
        frames.add_metric([key, "out"], s.frames_out)
        for event, count in (
            ("accepted", s.accepted),
            ("rejected", s.rejected),
            ("resumed", s.resumed),
            ("closed_by_rotation", s.closed_by_rotation),
        ):
            events.add_metric([key, event], count)
    yield from (conns, frames, events)
