"""Metric families, a registry and Prometheus's text exposition format, without prometheus_client.

The sidecar's metrics are plain counts read at scrape time (:mod:`sidecar.ops.metrics`), so all
a scrape needs is families of samples and their text: ``# HELP`` and ``# TYPE`` lines, then
``name{label="value",...} value`` per sample, counters as ``<name>_total``, histograms as
``_bucket`` (cumulative, ``le`` up to ``+Inf``), ``_sum`` and ``_count``, an info metric as a
gauge ``<name>_info`` of 1. That is a few dozen lines; prometheus_client's ``__init__`` loads its
WSGI and HTTP servers (``wsgiref``, ``http.server``, ``socketserver``, ``urllib.request``,
``email``), about 2 MB of a serving sidecar's memory. The key manager, a process of its own,
keeps prometheus_client.

The names and signatures follow prometheus_client's where the sidecar used them
(``CounterMetricFamily(name, doc, labels=...)``, ``add_metric``, ``Counter(...).labels().inc()``,
``registry.get_sample_value``), so the families read as they did. The text is version 0.0.4 of
the format, which every Prometheus reads; OpenMetrics is not offered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def number(value: float) -> str:
    """A sample value or an ``le`` bound as the format writes it (Go's float syntax)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(float(value))
    whole, dot, frac = text.partition(".")
    if value > 0 and dot and "e" not in frac and len(whole) > 6:
        # Go writes an exponent from 1e+07 on where Python still writes digits.
        digits = (whole + frac).rstrip("0")
        mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        return f"{mantissa}e+{len(whole) - 1:02d}"
    return text


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(slots=True)
class Metric:
    """One family: its name (counters without ``_total``), help, type and samples."""

    name: str
    documentation: str
    type: str  # counter | gauge | histogram | info
    labels: Sequence[str] = ()
    samples: list[Sample] = field(default_factory=list)

    def add_sample(self, suffix: str, values: Sequence[str], value: float, **extra: str) -> None:
        labels = dict(zip(self.labels, values, strict=True))
        labels.update(extra)
        self.samples.append(Sample(self.name + suffix, labels, float(value)))


class CounterMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        name = name.removesuffix("_total")
        super().__init__(name, documentation, "counter", list(labels))

    def add_metric(self, values: Sequence[str], value: float) -> None:
        self.add_sample("_total", values, value)


class GaugeMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, "gauge", list(labels))

    def add_metric(self, values: Sequence[str], value: float) -> None:
        self.add_sample("", values, value)


class HistogramMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, "histogram", list(labels))

    def add_metric(
        self, values: Sequence[str], buckets: Sequence[tuple[str, float]], sum_value: float
    ) -> None:
        """``buckets``: (``le`` as written, cumulative count), the last one ``+Inf``."""
        for le, count in buckets:
            self.add_sample("_bucket", values, count, le=le)
        self.add_sample("_count", values, buckets[-1][1])
        self.add_sample("_sum", values, sum_value)


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class CollectorRegistry:
    """The collectors of one sidecar; :meth:`collect` reads them all, in registration order."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def unregister(self, collector: Collector) -> None:
        self._collectors.remove(collector)

    def collect(self) -> Iterator[Metric]:
        for collector in list(self._collectors):
            yield from collector.collect()

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's value (None when there is none): for tests and checks."""
        wanted = labels or {}
        for metric in self.collect():
            for sample in metric.samples:
                if sample.name == name and sample.labels == wanted:
                    return sample.value
        return None


class Counter:
    """A counter family fed by events: ``labels(*values).inc()``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        self.family = (name.removesuffix("_total"), documentation, list(labelnames))
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def labels(self, *values: str) -> _Child:
        return _Child(self.values, tuple(str(v) for v in values))

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(*self.family)
        for values, count in self.values.items():
            family.add_metric(values, count)
        yield family


@dataclass(frozen=True, slots=True)
class _Child:
    values: dict[tuple[str, ...], float]
    key: tuple[str, ...]

    def inc(self, amount: float = 1.0) -> None:
        self.values[self.key] = self.values.get(self.key, 0.0) + amount


class Info:
    """A constant ``<name>_info`` gauge of 1 carrying labels (the build's version)."""

    def __init__(self, name: str, documentation: str, *, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.values: dict[str, str] = {}
        registry.register(self)

    def info(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def collect(self) -> Iterator[Metric]:
        family = Metric(self.name, self.documentation, "info", list(self.values))
        family.add_sample("_info", list(self.values.values()), 1.0)
        yield family


_TYPE_NAMES = {"counter": ("_total", "counter"), "info": ("_info", "gauge")}


def render(metrics: Iterable[Metric], names: Iterable[str] = ()) -> bytes:
    """The text exposition of ``metrics``; only the samples ``names`` names when given (the
    ``name[]`` parameters of a scrape)."""
    only = set(names)
    lines: list[str] = []
    for metric in metrics:
        samples = [s for s in metric.samples if not only or s.name in only]
        if only and not samples:
            continue
        suffix, kind = _TYPE_NAMES.get(metric.type, ("", metric.type))
        lines.append(f"# HELP {metric.name}{suffix} {_help(metric.documentation)}\n")
        lines.append(f"# TYPE {metric.name}{suffix} {kind}\n")
        for sample in samples:
            labels = ",".join(
                f'{name}="{_label_value(value)}"' for name, value in sorted(sample.labels.items())
            )
            braces = f"{{{labels}}}" if labels else ""
            lines.append(f"{sample.name}{braces} {number(sample.value)}\n")
    return "".join(lines).encode()
