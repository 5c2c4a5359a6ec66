"""Prometheus metrics: event counters fed by observers, state read from the sidecar at scrape time.

Every app gets its own :class:`CollectorRegistry` (never the global one), so in-process tests and
several apps in one process never collide. Label values are bounded: key names come from the
config, endpoints are reduced to a product group (``spot``, ``futures``...) rather than the raw
path, methods and denial reasons to fixed sets.

The per-request series (requests, denials, upstream errors, the two latency histograms) are
plain integers and floats in dicts, rendered into metric families only when /metrics is scraped
(:class:`Counts`, :class:`Histograms`): prometheus_client's ``labels(...).inc()`` and
``observe()`` take a lock and look the child up each time, several microseconds per request.

Longer than most modules on purpose: the per-request series and their rendering are the one
place every request metric is named and counted; splitting them would put a metric's name and
its count in two files.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence

from sidecar import __version__
from sidecar.memo import Memo
from sidecar.ops.exposition import (
    CONTENT_TYPE,
    CollectorRegistry,
    Counter,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Info,
    Metric,
    number,
    render,
)
from sidecar.ops.reasons import denial_reason
from sidecar.ops.scrape import ScrapeCollector
from sidecar.ops.status import SidecarView
from sidecar.policy.globs import METHODS
from sidecar.proxy.record import RequestRecord

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


_GROUPS: Memo[str, str] = Memo()  # path -> its group: bots call a few paths over and over


def endpoint_group(path: str) -> str:
    """A bounded label for a request path: its API v4 product, ``other`` or ``invalid``."""
    group = _GROUPS.get(path)
    if group is None:
        if not path.startswith("/api/v4/"):
            group = "invalid"
        else:
            product = path[len("/api/v4/") :].split("/", 1)[0]
            group = product if product in ENDPOINT_GROUPS else "other"
        _GROUPS.keep(path, group, path)
    return group


class Counts:
    """A counter family kept as plain integers by label values; rendered on :meth:`collect`."""

    __slots__ = ("doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.values: dict[tuple[object, ...], int] = {}

    def inc(self, *labels: object) -> None:
        values = self.values
        values[labels] = values.get(labels, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for labels, count in sorted(self.values.items(), key=lambda item: str(item[0])):
            family.add_metric([str(v) for v in labels], count)
        yield family


class Histograms:
    """A histogram family by key: a count per bucket and a sum, rendered on :meth:`collect`."""

    __slots__ = ("bounds", "doc", "les", "name", "values")

    def __init__(self, name: str, doc: str, bounds: Sequence[float]) -> None:
        self.name, self.doc, self.bounds = name, doc, tuple(bounds)
        # The `le` labels as the format writes them ("0.005", "1.0", "+Inf").
        self.les = [number(b) for b in (*bounds, float("inf"))]
        self.values: dict[str, list[float]] = {}  # key -> [per-bucket counts..., +Inf, sum]

    def observe(self, key: str, value: float) -> None:
        row = self.values.get(key)
        if row is None:
            row = self.values[key] = [0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1  # the first bound >= value: le semantics
        row[-1] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=["key"])
        for key, row in sorted(self.values.items()):
            buckets, total = [], 0.0
            for le, count in zip(self.les, row, strict=False):
                total += count
                buckets.append((le, total))
            family.add_metric([key], buckets, sum_value=row[-1])
        yield family


class _PerRequest:
    """The per-request families, for the registry."""

    def __init__(self, families: Sequence[Counts | Histograms]) -> None:
        self.families = families

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield from family.collect()


class Metrics:
    """The per-app registry and the counters fed by events (requests, rotations, reloads)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counts(
            f"{PREFIX}_requests",
            "Requests answered, by key, method, endpoint group and HTTP status.",
            ["key", "method", "group", "status"],
        )
        self.denials = Counts(
            f"{PREFIX}_denials",
            "Requests the sidecar refused for what they asked, by key and reason.",
            ["key", "reason"],
        )
        self.upstream_errors = Counts(
            f"{PREFIX}_upstream_errors",
            "Error answers from Gate (HTTP >= 400), by key and Gate's label.",
            ["key", "label"],
        )
        self.upstream_latency = Histograms(
            f"{PREFIX}_upstream_latency_seconds",
            "Round trip to Gate for forwarded requests.",
            UPSTREAM_BUCKETS,
        )
        self.added_latency = Histograms(
            f"{PREFIX}_added_latency_seconds",
            "Time the sidecar itself added to a request (total minus the round trip to Gate).",
            ADDED_BUCKETS,
        )
        reg.register(
            _PerRequest(
                [
                    self.requests,
                    self.denials,
                    self.upstream_errors,
                    self.upstream_latency,
                    self.added_latency,
                ]
            )
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
        self._state: ScrapeCollector | None = None

    # -- event feeds --------------------------------------------------------------------------
    def observe(self, record: RequestRecord) -> None:
        """Request observer (called once per request, after the response is built)."""
        key = record.key
        method = record.method if record.method in METHODS else "OTHER"
        self.requests.inc(key, method, endpoint_group(record.path), record.status)
        if record.decision != "allow" or record.label is not None:  # else nothing was refused
            reason = denial_reason(record)
            if reason is not None:
                self.denials.inc(key, reason)
        upstream = record.upstream_latency_s
        if upstream is not None:
            self.upstream_latency.observe(key, upstream)
            if (record.upstream_status or 0) >= 400:
                self.upstream_errors.inc(key, record.label or "none")
        latency = record.latency_s
        if latency is not None:
            added = latency - (upstream or 0.0)
            self.added_latency.observe(key, added if added > 0.0 else 0.0)

    def on_credential_event(self, key: str, event: str, detail: str) -> None:
        """Rotation listener; ``detail`` (a version or a reason) stays out of the labels."""
        self.credential_events.labels(key, event).inc()

    # -- state --------------------------------------------------------------------------------
    def watch(self, view: SidecarView) -> None:
        """Export the sidecar's state (keys, secrets, connections, clock, Vault) at scrape time."""
        self.unwatch()
        self._state = ScrapeCollector(self.registry, SidecarState(view).collect)

    def unwatch(self) -> None:
        if self._state is not None:
            self._state.unwatch()
            self._state = None

    def scrape(self, params: Mapping[str, list[str]]) -> tuple[bytes, str]:
        """``GET /metrics``: (body, content type) in the text format; only the samples the
        ``name[]`` parameters name when there are any."""
        return render(self.registry.collect(), params.get("name[]", ())), CONTENT_TYPE


class SidecarState:
    """Reads live state on every scrape, so removed keys and old versions simply disappear."""

    def __init__(self, view: SidecarView) -> None:
        self.view = view

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
