"""The chart's alerts and dashboard, checked by Debian's Prometheus.

The PrometheusRule the chart renders is written back into a rule file: ``promtool check rules``
must accept it and ``promtool test rules`` runs one unit test per alert (it fires on the series
that mean trouble, with the labels and annotations an operator sees, and stays silent before
its ``for:``). Then a real Prometheus (127.0.0.1 only) scrapes an in-process sidecar that signs,
refuses and rate-limits requests on the verifying exchange, and every query of the Grafana
dashboard must return data. promtool and prometheus come from Debian's ``prometheus`` package,
installed with apt-get when missing (the test fails naming the package when it cannot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_helm import CHART, Helm, find, one
from tests.fixtures_ops import call, scrape
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.sync import eventually

REPO = Path(__file__).resolve().parent.parent
RULES_FILE = CHART / "files" / "prometheus-rules.yaml"
DASHBOARD_FILE = CHART / "files" / "dashboard.json"
DOCS = REPO / "docs" / "kubernetes.md"
# The metrics tables: the sidecar's, its WebSocket listener's and the key manager's.
METRIC_TABLES = [REPO / "docs" / p for p in ("operations.md", "websocket.md", "key-lifecycle.md")]
RUNBOOK = "https://docs.example.com/kubernetes.md"
APT_PACKAGE = "prometheus"


def debian_tool(name: str, package: str = APT_PACKAGE) -> str:
    """The path of a Debian-packaged binary, installing its package when missing."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"{name} is missing: install Debian's {package!r} package (apt-get install)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update", "-qq"], ["install", "-y", "-qq", package]):
        result = subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            pytest.fail(f"apt-get {' '.join(args)} failed for {package!r}: {result.stderr}")
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is still missing after installing Debian's {package!r} package")
    return found


def rendered(helm: Helm) -> list[dict[str, Any]]:
    values = {
        "prometheusRule": {"enabled": True, "runbookBaseURL": RUNBOOK},
        "dashboard": {"enabled": True},
    }
    return helm.template(values=values)


@pytest.fixture(scope="module")
def rule_groups(helm: Helm) -> dict[str, Any]:
    spec: dict[str, Any] = one(rendered(helm), "PrometheusRule")["spec"]
    return spec


def alerts(groups: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups["groups"] for rule in group["rules"]}


# -- the rules ------------------------------------------------------------------------------


def test_the_chart_ships_no_rule_and_no_dashboard_unless_asked(helm: Helm) -> None:
    docs = helm.template()
    assert not find(docs, "PrometheusRule")
    assert not [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("dashboard")]


def test_promtool_accepts_the_rules_the_chart_renders(
    rule_groups: dict[str, Any], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups))
    result = subprocess.run(
        [debian_tool("promtool"), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts(rule_groups))} rules found" in result.stdout


def test_every_alert_links_its_runbook_section_in_the_docs(rule_groups: dict[str, Any]) -> None:
    headings = {
        line.lstrip("#").strip().lower()
        for line in DOCS.read_text().splitlines()
        if line.startswith("#")
    }
    for name, rule in alerts(rule_groups).items():
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK}#{name.lower()}"
        assert name.lower() in headings, f"docs/kubernetes.md has no section {name}"
        assert rule["labels"]["severity"] in ("warning", "critical")


def documented_metrics() -> set[str]:
    """Every metric a docs table names (a key-lifecycle.md row adds its labels: ``{account}``)."""
    pattern = re.compile(r"^\| `(gate_sidecar_[a-z_]+)[`{]", re.M)
    return {name for page in METRIC_TABLES for name in pattern.findall(page.read_text())}


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\bgate_sidecar_[a-z_]+", expr))
    # A histogram's series: name_bucket, name_sum, name_count of the documented name.
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_every_metric_the_rules_and_the_dashboard_use_is_one_the_sidecar_exports(
    rule_groups: dict[str, Any],
) -> None:
    known = documented_metrics()
    assert {
        "gate_sidecar_key_ready",
        "gate_sidecar_ws_frames_total",
        "gate_sidecar_keys_key_age_seconds",
    } <= known
    exprs = [rule["expr"] for rule in alerts(rule_groups).values()] + dashboard_queries()
    for expr in exprs:
        assert metric_names(expr) <= known, (expr, metric_names(expr) - known)


# -- promtool unit tests: one case per alert ------------------------------------------------

INSTANCE = {"instance": "10.0.0.7:9901", "job": "gate-sidecar", "namespace": "trading"}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    all_labels = {**INSTANCE, **labels}
    text = ", ".join(f'{k}="{v}"' for k, v in sorted(all_labels.items()))
    return {"series": f"{name}{{{text}}}", "values": values}


@dataclass
class Case:
    alert: str
    input_series: list[dict[str, str]]
    fires_at: str  # eval time at which the alert fires
    quiet_at: str | None  # an eval time before it fires (before `for:` passed), if any
    labels: dict[str, str]  # besides severity and the instance labels
    value: str = ""  # what `{{ $value | ... }}` renders to
    also: list[dict[str, str]] = field(default_factory=list)  # more alerts firing, their labels


CASES = [
    Case(
        "GateSidecarKeyNotReady",
        [series("gate_sidecar_key_ready", "1 1 0 0 0 0 0", key="bot")],
        fires_at="5m",
        quiet_at="3m",
        labels={"key": "bot"},
    ),
    Case(
        "GateSidecarSecretStale",
        [series("gate_sidecar_secret_stale_seconds", "0 0 340 400 400 400", key="bot")],
        fires_at="4m",
        quiet_at="2m",
        labels={"key": "bot"},
        value="6m 40s",
    ),
    Case(
        "GateSidecarVaultUnreachable",
        [series("gate_sidecar_vault_ready", "1 0x8")],
        fires_at="7m",
        quiet_at="4m",
        labels={},
    ),
    Case(
        "GateSidecarCanaryRejected",
        [
            series(
                "gate_sidecar_credential_events_total",
                "0 0 1 1",
                key="bot",
                event="canary_rejected",
            )
        ],
        fires_at="3m",
        quiet_at="1m",
        labels={"key": "bot", "event": "canary_rejected"},
    ),
    Case(
        "GateSidecarKeyRevoked",
        [
            series("gate_sidecar_credential_events_total", "0 0 1 1", key="bot", event="revoked"),
            series("gate_sidecar_key_ready", "1 1 0 0", key="bot"),
            # A key revoked but signing again (a new version arrived) does not alert.
            series("gate_sidecar_credential_events_total", "0 0 1 1", key="other", event="revoked"),
            series("gate_sidecar_key_ready", "1 1 0 1", key="other"),
        ],
        fires_at="3m",
        quiet_at="1m",
        labels={"key": "bot", "event": "revoked"},
    ),
    Case(
        "GateSidecarClockSkew",
        [series("gate_sidecar_clock_offset_seconds", "0 -45x8")],
        fires_at="7m",
        quiet_at="4m",
        labels={},
        value="45",
    ),
    Case(
        "GateSidecarRateBudgetExhausted",
        [series("gate_sidecar_rate_limited_total", "0+60x15", key="bot", group="spot-order-place")],
        fires_at="12m",
        quiet_at="4m",
        labels={"key": "bot"},
        value="1",
    ),
    Case(
        "GateSidecarGateRateLimited",
        [
            series(
                "gate_sidecar_upstream_errors_total",
                "0 0 3 3",
                key="bot",
                label="TOO_MANY_REQUESTS",
            )
        ],
        fires_at="3m",
        quiet_at="1m",
        labels={"key": "bot", "label": "TOO_MANY_REQUESTS"},
    ),
    Case(
        "GateSidecarRateBudgetLocalFallback",
        [series("gate_sidecar_rate_budget_fallback", "0 1 1 1 1 1", key="bot")],
        fires_at="4m",
        quiet_at="2m",
        labels={"key": "bot"},
    ),
    Case(
        "GateSidecarDenialSpike",
        [
            series("gate_sidecar_denials_total", "0+30x15", key="bot", reason="no_rule"),
            series(
                "gate_sidecar_requests_total",
                "0+60x15",
                key="bot",
                method="POST",
                group="spot",
                status="403",
            ),
            # A key with a few denials among many requests stays quiet.
            series("gate_sidecar_denials_total", "0+6x15", key="busy", reason="no_rule"),
            series(
                "gate_sidecar_requests_total",
                "0+600x15",
                key="busy",
                method="GET",
                group="spot",
                status="200",
            ),
        ],
        fires_at="12m",
        quiet_at="4m",
        labels={"key": "bot"},
        value="50%",
    ),
    Case(
        "GateSidecarBrakeOn",
        [series("gate_sidecar_cancel_only", "0 0 1 1", key="bot")],
        fires_at="2m",
        quiet_at="1m",
        labels={"key": "bot"},
    ),
    Case(
        "GateSidecarDeadManDisarmed",
        [
            # A REST bot that keeps trading while its spot countdown is no longer armed.
            series("gate_sidecar_dead_man_armed", "1 1 0x7", key="bot", scope="spot"),
            series(
                "gate_sidecar_requests_total",
                "0+10x8",
                key="bot",
                method="POST",
                group="spot",
                status="201",
            ),
            # A WebSocket-only bot whose frames keep coming: its futures scope alerts too.
            series("gate_sidecar_dead_man_armed", "1 1 0x7", key="ws", scope="futures/usdt"),
            series("gate_sidecar_ws_frames_total", "0+5x8", key="ws", direction="in"),
            series("gate_sidecar_ws_frames_total", "0+50x8", key="ws", direction="out"),
            # A bot that fell silent: its countdown ran out by design, no alert.
            series("gate_sidecar_dead_man_armed", "1 1 0x7", key="quiet", scope="spot"),
            series(
                "gate_sidecar_requests_total",
                "0 10 10x7",
                key="quiet",
                method="POST",
                group="spot",
                status="201",
            ),
            # A bot that only receives (pushes to it, nothing from it) is silent too.
            series("gate_sidecar_dead_man_armed", "0x9", key="listener", scope="spot"),
            series("gate_sidecar_ws_frames_total", "0x9", key="listener", direction="in"),
            series("gate_sidecar_ws_frames_total", "0+50x8", key="listener", direction="out"),
            # A trading bot whose countdown stays armed: no alert.
            series("gate_sidecar_dead_man_armed", "1x9", key="armed", scope="spot"),
            series(
                "gate_sidecar_requests_total",
                "0+10x8",
                key="armed",
                method="POST",
                group="spot",
                status="201",
            ),
        ],
        fires_at="5m",
        quiet_at="4m",
        labels={"key": "bot", "scope": "spot"},
        also=[{"key": "ws", "scope": "futures/usdt"}],
    ),
    Case(
        "GateSidecarKeyNotRotated",
        [
            # rotate_every 1d; the key turns older than that at 7m and stays so.
            series("gate_sidecar_keys_rotate_every_seconds", "86400x60", account="futures-bot"),
            series("gate_sidecar_keys_key_age_seconds", "86000+60x60", account="futures-bot"),
            # An account rotated a few minutes after its key came due: no alert.
            series("gate_sidecar_keys_rotate_every_seconds", "86400x60", account="spot-bot"),
            series("gate_sidecar_keys_key_age_seconds", "86000+60x15 0+60x44", account="spot-bot"),
        ],
        fires_at="37m",
        quiet_at="35m",
        labels={"account": "futures-bot"},
        value="1d 0h 30m 20s",
    ),
]


def render_annotation(template: str, labels: dict[str, str], value: str) -> str:
    """What Prometheus makes of the annotations' few template forms, for the expected alerts."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
    return re.sub(r"\{\{ \$value \| \w+ \}\}", value, text)


def expected_alert(case: Case, rule: dict[str, Any], own: dict[str, str]) -> dict[str, Any]:
    labels = {**INSTANCE, **own, "severity": rule["labels"]["severity"]}
    annotations = {
        k: render_annotation(v, labels, case.value) for k, v in rule["annotations"].items()
    }
    return {"exp_labels": labels, "exp_annotations": annotations}


def unit_test(case: Case, rule: dict[str, Any]) -> dict[str, Any]:
    checks: list[dict[str, Any]] = [
        {
            "eval_time": case.fires_at,
            "alertname": case.alert,
            "exp_alerts": [expected_alert(case, rule, own) for own in [case.labels, *case.also]],
        }
    ]
    if case.quiet_at is not None:
        checks.append({"eval_time": case.quiet_at, "alertname": case.alert, "exp_alerts": []})
    return {"interval": "1m", "input_series": case.input_series, "alert_rule_test": checks}


def test_every_alert_has_a_promtool_unit_test() -> None:
    assert sorted(c.alert for c in CASES) == sorted(alerts(yaml.safe_load(RULES_FILE.read_text())))


def test_promtool_unit_tests_pass_for_every_alert(
    rule_groups: dict[str, Any], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups))
    by_name = alerts(rule_groups)
    spec = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [unit_test(case, by_name[case.alert]) for case in CASES],
    }
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        [debian_tool("promtool"), "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_can_fail(rule_groups: dict[str, Any], tmp_path: Path) -> None:
    """The harness is not vacuous: a case whose alert never fires is reported as a failure."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups))
    case = CASES[0]
    quiet = Case(
        case.alert, [series("gate_sidecar_key_ready", "1x6", key="bot")], "5m", None, {"key": "bot"}
    )
    spec = {
        "rule_files": [str(rules)],
        "tests": [unit_test(quiet, alerts(rule_groups)[case.alert])],
    }
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        [debian_tool("promtool"), "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0


# -- the dashboard --------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return doc


def dashboard_queries() -> list[str]:
    return [t["expr"] for panel in dashboard()["panels"] for t in panel["targets"]]


def test_the_dashboard_configmap_carries_the_dashboard_and_grafanas_label(helm: Helm) -> None:
    maps = [
        d for d in find(rendered(helm), "ConfigMap") if d["metadata"]["name"].endswith("dashboard")
    ]
    assert len(maps) == 1
    assert maps[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(maps[0]["data"]["gate-sidecar.json"]) == dashboard()


def test_the_dashboard_shows_what_an_operator_needs_per_key() -> None:
    queries = "\n".join(dashboard_queries())
    for metric in (
        "gate_sidecar_requests_total",
        "gate_sidecar_denials_total",
        "gate_sidecar_added_latency_seconds_bucket",
        "gate_sidecar_upstream_latency_seconds_bucket",
        "gate_sidecar_secret_age_seconds",
        "gate_sidecar_secret_version_info",
        "gate_sidecar_rate_limited_total",
        "gate_sidecar_rate_budget_fallback",
        "gate_sidecar_dead_man_armed",
        "gate_sidecar_dead_man_fires_in_seconds",
    ):
        assert metric in queries, metric
    assert "by (key, reason)" in queries


def grafana_to_promql(expr: str) -> str:
    """A panel's query as Prometheus gets it from Grafana with every key selected."""
    return expr.replace("$__rate_interval", "1m").replace("$key", ".*")


# -- a real Prometheus scraping a running sidecar --------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    async def query(self, http: aiohttp.ClientSession, expr: str) -> dict[str, Any]:
        async with http.get(self.url + "/api/v1/query", params={"query": expr}) as resp:
            doc: dict[str, Any] = await resp.json()
            return doc


@contextlib.asynccontextmanager
async def prometheus_scraping(admin_url: str, tmp_path: Path) -> AsyncIterator[Prometheus]:
    target = admin_url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "gate-sidecar", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            debian_tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                if process.poll() is not None:
                    log = (tmp_path / "prometheus.log").read_text()
                    pytest.fail(f"prometheus exited: {log}")
                return await status_of(http, url + "/-/ready") == 200

            await eventually(ready, 30, "prometheus ready", step=0.1)
        yield Prometheus(url, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


async def status_of(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def post_json(url: str, body: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        return resp.status


ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.001", "price": "100"}


async def traffic(sidecar: RunningSidecar) -> None:
    """One round of what the dashboard shows: signed calls, a refusal, a spent budget, an error."""
    bot = sidecar.url("bot")
    assert (await call("GET", bot + "/api/v4/spot/accounts"))[0] == 200
    assert (await call("GET", bot + "/api/v4/spot/orders?status=open"))[0] == 400  # Gate's error
    assert await post_json(bot + "/api/v4/withdrawals", {"currency": "USDT"}) == 403  # policy
    statuses = [await post_json(bot + "/api/v4/spot/orders", ORDER) for _ in range(3)]
    assert 429 in statuses  # the budget (2 per minute) is spent


def has_data(answer: dict[str, Any]) -> bool:
    if answer.get("status") != "success":
        return False
    result = answer["data"]["result"]
    return bool(result) and all(r["value"][1] not in ("NaN", "+Inf", "-Inf") for r in result)


async def test_a_real_prometheus_scraping_a_sidecar_finds_data_for_every_dashboard_query(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    budget = {
        "overrides": [{"group": "spot-order-place", "limit": 2, "per_s": 60}],
        # No Redis listens there: the budget serves from the local share, as when Redis is down.
        "shared": f"redis://127.0.0.1:{free_port()}/0",
    }
    # The first request arms the spot countdown (the exchange keeps it), and the traffic keeps
    # it armed for the whole test; `keep` disarms it when the sidecar stops.
    dead_man = {"timeout_s": 30, "scopes": ["spot"], "on_shutdown": "keep"}
    entry, environ, api_key, secret = env_key(
        "bot", "spot-only", rate_limit=budget, dead_man=dead_man
    )
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry])
    queries = {q: grafana_to_promql(q) for q in dashboard_queries()}
    async with (
        running_sidecar(config, environ) as sidecar,
        prometheus_scraping(sidecar.admin_url, tmp_path) as prometheus,
        aiohttp.ClientSession() as http,
    ):
        samples = await scrape(sidecar.admin_url)
        assert samples[("gate_sidecar_key_ready", (("key", "bot"),))] == 1
        missing: dict[str, Any] = dict.fromkeys(queries.values())
        deadline = time.monotonic() + 60
        rounds = 0
        while missing and time.monotonic() < deadline:
            await traffic(sidecar)
            rounds += 1
            await asyncio.sleep(0.5)  # pace: traffic rounds while Prometheus scrapes every 1 s
            for promql in list(missing):
                answer = await prometheus.query(http, promql)
                assert answer.get("status") == "success", (promql, answer)
                if has_data(answer):
                    del missing[promql]
                else:
                    missing[promql] = answer
        assert prometheus.process.poll() is None, (tmp_path / "prometheus.log").read_text()
        assert not missing, f"no data after {rounds} rounds: {missing}"
        # The dead-man alert's join on real series (the labels a scrape adds included): quiet
        # while the scope is armed, and its traffic side matches the armed scope.
        expr = alerts(yaml.safe_load(RULES_FILE.read_text()))["GateSidecarDeadManDisarmed"]["expr"]
        armed = expr.replace("gate_sidecar_dead_man_armed == 0", "gate_sidecar_dead_man_armed == 1")
        assert armed != expr
        answer = await prometheus.query(http, armed)
        assert has_data(answer), answer
        assert {r["metric"]["scope"] for r in answer["data"]["result"]} == {"spot"}
        assert not has_data(await prometheus.query(http, expr))


async def test_an_unknown_metric_in_a_query_returns_nothing_and_would_fail(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    """The live check above can fail: a misspelt metric gives an empty answer, never data."""
    entry, environ, api_key, secret = env_key("bot", "spot-only")
    exchange.state.add_key(api_key, secret)
    async with (
        running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar,
        prometheus_scraping(sidecar.admin_url, tmp_path) as prometheus,
        aiohttp.ClientSession() as http,
    ):

        async def scraped() -> bool:
            return has_data(await prometheus.query(http, "gate_sidecar_key_ready"))

        await eventually(scraped, 30, "Prometheus scraping the sidecar", step=0.2)
        answer = await prometheus.query(http, "gate_sidecar_key_redy")
        assert answer["status"] == "success" and not has_data(answer)
