"""Prometheus metrics: event counters fed by observers, state read from the sidecar at scrape time.

Every app gets its own :class:`CollectorRegistry` (never the global one), so in-process tests and
several apps in one process never collide. Label values are bounded: key names come from the
config, endpoints are reduced to a product group (``spot``, ``futures``...) rather than the raw
path, methods and denial reasons to fixed sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from sidecar import __version__
from sidecar.ops.reasons import denial_reason
from sidecar.ops.status import SidecarView
from sidecar.policy.globs import METHODS
from sidecar.proxy.record import RequestRecord

if TYPE_CHECKING:
    from aiohttp import web


PREFIX = "gate_sidecar"
# Gate's API v4 products (the first path segment after /api/v4/); anything else is "other".
ENDPOINT_GROUPS = frozenset(
    {
        "account",
        "alpha",
        "crossex",
        "delivery",
        "earn",
        "flash_swap",
        "futures",
        "loan",
        "margin",
        "options",
        "otc",
        "p2p",
        "rebate",
        "rebates",
        "spot",
        "sub_accounts",
        "tradfi",
        "unified",
        "wallet",
        "withdrawals",
    }
)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


def endpoint_group(path: str) -> str:
    """A bounded label for a request path: its API v4 product, ``other`` or ``invalid``."""
    if not path.startswith("/api/v4/"):
        return "invalid"
    group = path[len("/api/v4/") :].split("/", 1)[0]
    return group if group in ENDPOINT_GROUPS else "other"


class Metrics:
    """The per-app registry and the counters fed by events (requests, rotations, reloads)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "Requests answered, by key, method, endpoint group and HTTP status.",
            ["key", "method", "group", "status"],
            registry=reg,
        )
        self.denials = Counter(
            f"{PREFIX}_denials",
            "Requests the sidecar refused for what they asked, by key and reason.",
            ["key", "reason"],
            registry=reg,
        )
        self.upstream_errors = Counter(
            f"{PREFIX}_upstream_errors",
            "Error answers from Gate (HTTP >= 400), by key and Gate's label.",
            ["key", "label"],
            registry=reg,
        )
        self.upstream_latency = Histogram(
            f"{PREFIX}_upstream_latency_seconds",
            "Round trip to Gate for forwarded requests.",
            ["key"],
            buckets=UPSTREAM_BUCKETS,
            registry=reg,
        )
        self.added_latency = Histogram(
            f"{PREFIX}_added_latency_seconds",
            "Time the sidecar itself added to a request (total minus the round trip to Gate).",
            ["key"],
            buckets=ADDED_BUCKETS,
            registry=reg,
        )
        self.credential_events = Counter(
            f"{PREFIX}_credential_events",
            "Credential changes by key and event: installed, rotated, canary_rejected, revoked.",
            ["key", "event"],
            registry=reg,
        )
        self.reloads = Counter(
            f"{PREFIX}_config_reloads",
            "Configuration reloads (SIGHUP) by result: applied or rejected.",
            ["result"],
            registry=reg,
        )
        Info(f"{PREFIX}_build", "gate-sidecar version.", registry=reg).info(
            {"version": __version__}
        )
        self._state: SidecarCollector | None = None
        self._handler = make_aiohttp_handler(self.registry)

    # -- event feeds --------------------------------------------------------------------------
    def observe(self, record: RequestRecord) -> None:
        """Request observer (called once per request, after the response is built)."""
        method = record.method if record.method in METHODS else "OTHER"
        group = endpoint_group(record.path)
        self.requests.labels(record.key, method, group, str(record.status)).inc()
        reason = denial_reason(record)
        if reason is not None:
            self.denials.labels(record.key, reason).inc()
        if record.upstream_latency_s is not None:
            self.upstream_latency.labels(record.key).observe(record.upstream_latency_s)
            status = record.upstream_status or 0
            if status >= 400:
                self.upstream_errors.labels(record.key, record.label or "none").inc()
        added = record.added_latency_s
        if added is not None:
            self.added_latency.labels(record.key).observe(max(0.0, added))

    def on_credential_event(self, key: str, event: str, detail: str) -> None:
        """Rotation listener; ``detail`` (a version or a reason) stays out of the labels."""
        self.credential_events.labels(key, event).inc()

    # -- state --------------------------------------------------------------------------------
    def watch(self, view: SidecarView) -> None:
        """Export the sidecar's state (keys, secrets, connections, clock, Vault) at scrape time."""
        self.unwatch()
        self._state = SidecarCollector(view)
        self.registry.register(self._state)

    def unwatch(self) -> None:
        if self._state is not None:
            self.registry.unregister(self._state)
            self._state = None

    async def respond(self, request: web.Request) -> web.StreamResponse:
        """``GET /metrics``: the text format, or OpenMetrics when the scraper asks for it."""
        return await self._handler(request)


class SidecarCollector:
    """Reads live state on every scrape, so removed keys and old versions simply disappear."""

    def __init__(self, view: SidecarView) -> None:
        self.view = view

    def describe(self) -> Iterable[Metric]:
        return []  # names vary with the config; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._keys()
        yield from self._clock()
        yield from self._vault()

    def _keys(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            f"{PREFIX}_key_ready",
            "1 when the key can sign (holds a usable secret).",
            labels=["key"],
        )
        version = GaugeMetricFamily(
            f"{PREFIX}_secret_version_info",
            "The version of the secret each key signs with (value 1).",
            labels=["key", "version"],
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_secret_age_seconds",
            "Seconds since the held secret was installed.",
            labels=["key"],
        )
        stale = GaugeMetricFamily(
            f"{PREFIX}_secret_stale_seconds",
            "Seconds since the source last confirmed the held secret (0 when fresh).",
            labels=["key"],
        )
        conns = GaugeMetricFamily(
            f"{PREFIX}_open_connections",
            "Open client connections on each key's listener.",
            labels=["key"],
        )
        for key in sorted(self.view.key_statuses(), key=lambda k: k.name):
            if key.url is None:
                continue  # a key whose listener never opened has no state to export
            ready.add_metric([key.name], float(key.ready))
            if key.version is not None:
                version.add_metric([key.name, key.version], 1.0)
                age.add_metric([key.name], key.age_s)
                stale.add_metric([key.name], key.stale_s)
            conns.add_metric([key.name], float(key.open_connections))
        yield from (ready, version, age, stale, conns)

    def _clock(self) -> Iterator[Metric]:
        offset = GaugeMetricFamily(
            f"{PREFIX}_clock_offset_seconds",
            "Gate's clock minus the local clock, as used for signing.",
        )
        offset.add_metric([], self.view.clock_offset_s)
        yield offset
        counts = self.view.clock_sync_counts()
        if counts is not None:
            syncs = CounterMetricFamily(
                f"{PREFIX}_clock_syncs",
                "Clock offset measurements against Gate, by result.",
                labels=["result"],
            )
            syncs.add_metric(["ok"], counts[0])
            syncs.add_metric(["error"], counts[1])
            yield syncs

    def _vault(self) -> Iterator[Metric]:
        vault = self.view.vault_status()
        if vault is None:
            return
        gauge = GaugeMetricFamily(f"{PREFIX}_vault_ready", "1 while a Vault token is usable.")
        gauge.add_metric([], float(vault.ready))
        yield gauge
        if vault.token_ttl_s is not None:  # absent without a token, or for one that never expires
            gauge = GaugeMetricFamily(
                f"{PREFIX}_vault_token_ttl_seconds", "Seconds left on the Vault token."
            )
            gauge.add_metric([], vault.token_ttl_s)
            yield gauge
        for name, count, help_text in (
            ("logins", vault.logins, "Successful Vault logins."),
            ("renewals", vault.renewals, "Successful Vault token renewals."),
        ):
            counter = CounterMetricFamily(f"{PREFIX}_vault_{name}", help_text)
            counter.add_metric([], count)
            yield counter
        family = CounterMetricFamily(
            f"{PREFIX}_vault_errors",
            "Failed Vault calls by kind: unavailable, forbidden, not_found, login, other.",
            labels=["kind"],
        )
        for kind, count in sorted(vault.errors.items()):
            family.add_metric([kind], count)
        yield family
