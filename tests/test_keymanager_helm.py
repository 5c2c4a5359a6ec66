"""The chart's optional key manager (keyManager.*), rendered by a real helm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures_helm import Helm, find

ACCOUNT = {
    "name": "futures-bot",
    "user_id": 10002345,
    "store": {"vault": {"path": "gate/futures-bot"}},
    "policy": "futures-only",
    "ip_whitelist": ["203.0.113.7"],
}
ENABLED: dict[str, Any] = {"keyManager": {"enabled": True, "config": {"accounts": [ACCOUNT]}}}


def _manager(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        d
        for d in find(docs, kind)
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "key-manager"
    ]


def test_off_by_default(helm: Helm) -> None:
    docs = helm.template()
    assert not [d for d in docs if d["metadata"]["name"].endswith("-keys")]
    assert not find(docs, "PrometheusRule")


def test_its_own_deployment_identity_and_config(helm: Helm, tmp_path: Path) -> None:
    docs = helm.template(values=ENABLED)
    [deployment] = _manager(docs, "Deployment")
    [account] = _manager(docs, "ServiceAccount")
    [config_map] = _manager(docs, "ConfigMap")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "demo-gate-sidecar-keys"
    bots = [d for d in find(docs, "Deployment") if d is not deployment]
    assert all(
        b["spec"]["template"]["spec"]["serviceAccountName"] != "demo-gate-sidecar-keys"
        for b in bots
    )
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["args"][:2] == ["keys", "run"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    config = yaml.safe_load(config_map["data"]["keys.yaml"])
    assert config["vault"]["auth"]["role"] == "gate-key-manager"
    assert config["admin"] == {"listen": "0.0.0.0:9911", "allow_remote": True}
    path = tmp_path / "keys.yaml"
    path.write_text(config_map["data"]["keys.yaml"])
    run = [sys.executable, "-m", "sidecar", "keys", "check-config", "--config", str(path)]
    result = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    values = tmp_path / "keymanager.values.yaml"
    values.write_text(yaml.safe_dump(ENABLED))
    out = helm.lint(values).stdout
    assert "0 chart(s) failed" in out and "[WARNING]" not in out


def test_its_alert_is_the_prometheus_rules_one_and_its_metrics_are_scraped(helm: Helm) -> None:
    """One source: the alert lives in files/prometheus-rules.yaml (tests/test_alerts.py runs it
    through promtool); the key manager's template defines none, and gives Prometheus its
    /metrics with a PodMonitor."""
    assert not find(helm.template(values=ENABLED), "PrometheusRule")
    assert not find(helm.template(values=ENABLED), "PodMonitor")
    values = {
        **ENABLED,
        "prometheusRule": {"enabled": True},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
    }
    docs = helm.template(values=values)
    [rule] = find(docs, "PrometheusRule")
    assert rule["metadata"]["labels"].get("app.kubernetes.io/component") != "key-manager"
    by_alert = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert by_alert["GateSidecarKeyNotRotated"]["expr"] == (
        "gate_sidecar_keys_key_age_seconds > gate_sidecar_keys_rotate_every_seconds"
    )
    [monitor] = _manager(docs, "PodMonitor")
    [deployment] = _manager(docs, "Deployment")
    pod = deployment["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    # The bots' ServiceMonitor does not select the manager (it has no Service).
    [service_monitor] = find(docs, "ServiceMonitor")
    selector = service_monitor["spec"]["selector"]["matchLabels"].items()
    assert not selector <= pod["metadata"]["labels"].items()


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"keyManager": {"enabled": True}}, "keyManager.config.accounts"),
        ({"keyManager": {"enabled": True, "bogus": 1}}, "bogus"),
        ({"keyManager": {"config": {"accounts": [], "vault": {}, "main_key": {}}}}, "vault"),
        ({"keyManager": {"replicas": 3}}, "replicas"),
        # the example alert moved to the PrometheusRule (prometheusRule.enabled)
        ({"keyManager": {"alert": {"enabled": True}}}, "alert"),
    ],
)
def test_bad_values_are_refused(helm: Helm, values: dict[str, Any], error: str) -> None:
    result = helm.template_result(values=values)
    assert result.returncode != 0 and error in result.stderr, result.stderr
