"""The sidecar writes /metrics itself (sidecar.ops.exposition): byte for byte what
prometheus_client's own writer makes of the same families, and what ``promtool check metrics``
accepts for a whole running sidecar's scrape."""

from __future__ import annotations

import subprocess
from typing import Any

import prometheus_client
import prometheus_client.core as theirs
from prometheus_client.registry import Collector

from sidecar.ops import exposition as ours
from sidecar.ops.metrics import Metrics
from sidecar.proxy.record import RequestRecord
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_ops import call, ops_setup
from tests.test_alerts import debian_tool

ODD = 'a "quoted" value, a back\\slash\nand a line break'


def _families(kind: Any) -> list[Any]:
    """The same families through either module's classes (``kind`` is its module)."""
    k = kind
    counter = k.CounterMetricFamily("t_events", "Events.\nTwo lines, a \\.", labels=["key", "why"])
    counter.add_metric(["b", ODD], 2)
    counter.add_metric(["a", "plain"], 1)
    gauge = k.GaugeMetricFamily("t_offset_seconds", "No labels.")
    gauge.add_metric([], -0.25)
    big = k.GaugeMetricFamily("t_big", "Big and small.", labels=["n"])
    for n, value in (("1", 1e21), ("2", 123456789.0), ("3", 1e-07), ("4", float("inf"))):
        big.add_metric([n], value)
    hist = k.HistogramMetricFamily("t_latency_seconds", "A histogram.", labels=["key"])
    hist.add_metric(["a"], [("0.005", 1), ("1.0", 3), ("+Inf", 4)], sum_value=2.5)
    return [counter, gauge, big, hist]


def test_the_text_is_prometheus_clients_own() -> None:
    class Theirs(Collector):
        def collect(self) -> Any:
            return _families(theirs)

    registry = prometheus_client.CollectorRegistry()
    registry.register(Theirs())
    info = prometheus_client.Info("t_build", "The build.", registry=registry)
    info.info({"version": "1.2.3"})
    expected = prometheus_client.generate_latest(registry)

    ours_registry = ours.CollectorRegistry()
    families = _families(ours)

    class Ours:
        def collect(self) -> list[ours.Metric]:
            return families

    ours_registry.register(Ours())
    ours.Info("t_build", "The build.", registry=ours_registry).info({"version": "1.2.3"})
    assert ours.render(ours_registry.collect()) == expected


def test_a_counter_fed_by_events_and_the_name_filter() -> None:
    registry = ours.CollectorRegistry()
    counter = ours.Counter("t_refusals", "Refusals.", ["label"], registry=registry)
    counter.labels("A").inc()
    counter.labels("A").inc()
    assert registry.get_sample_value("t_refusals_total", {"label": "A"}) == 2
    assert registry.get_sample_value("t_refusals_total", {"label": "B"}) is None
    assert ours.render(registry.collect(), ["nothing"]) == b""
    assert b't_refusals_total{label="A"} 2.0' in ours.render(
        registry.collect(), ["t_refusals_total"]
    )


async def test_promtool_accepts_a_running_sidecars_scrape(exchange: RunningExchange) -> None:
    async with ops_setup(exchange, {"a": "full-trading", "b": "read-only"}) as s:
        await call("GET", s.url("a", "/api/v4/futures/usdt/accounts"))
        await call("POST", s.url("b", "/api/v4/spot/orders"), b"{}")  # denied: counted
        status, text = await call("GET", s.sidecar.admin_url + "/metrics")
    assert status == 200 and b"gate_sidecar_denials_total" in text
    checked = subprocess.run(
        [debian_tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        timeout=60,
        check=False,
    )
    # promtool's lint asks counters to end in _total and so on; any complaint is a failure.
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


def test_the_per_request_families_parse_back() -> None:
    metrics = Metrics()
    record = RequestRecord("k", "GET", "/api/v4/spot/accounts", 0)
    record.decision = "allow"
    record.upstream_latency_s = 0.002
    record.finish(200)
    metrics.observe(record)
    text, _ = metrics.scrape({})
    families = {
        f.name: f for f in prometheus_client.parser.text_string_to_metric_families(text.decode())
    }
    assert families["gate_sidecar_requests"].type == "counter"
    assert families["gate_sidecar_upstream_latency_seconds"].type == "histogram"
    assert families["gate_sidecar_build_info"].type == "gauge"  # the text format's info
