"""The chart's client authentication, rendered by a real helm v4: the /metrics token, a key's
client_auth (a token, TLS and mTLS from Secrets, peer uids on a unix socket), allowed_hosts and
forward_headers, a key off loopback; and the renders the chart refuses because the sidecar would
refuse their config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.gate.headers import HOP_BY_HOP, NEVER_FORWARDED
from tests.fixtures_helm import CHART, Helm, find, one, pod_spec, sidecar_config, sidecar_container

AUTH_DIR = "/var/run/secrets/gate-sidecar/client-auth"
SOCKETS = "/var/run/gate-sidecar/sockets"


def key(name: str = "bot", **extra: Any) -> dict[str, Any]:
    return {"name": name, "policy": "read-only", "source": {"env": {}}, **extra}


def keys(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(entries)}


def check_config(docs: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The sidecar's own validation of the rendered config (what `serve` would do first)."""
    path = tmp_path / "config.yaml"
    path.write_text(one(docs, "ConfigMap")["data"]["config.yaml"])
    # The pod's environment: check-config also checks that env sources' variables are set.
    env = {**os.environ, "GATE_KEY": "test-key", "GATE_SECRET": "test-secret"}
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container["volumeMounts"]}


def volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in spec["volumes"] if v["name"] == name]
    assert len(found) == 1, name
    return found[0]


def bot_env(spec: dict[str, Any]) -> dict[str, str]:
    bot = next(c for c in spec["containers"] if c["name"] == "bot")
    return {e["name"]: e["value"] for e in bot["env"]}


# -- the /metrics bearer token -----------------------------------------------------------------


def test_the_metrics_token_comes_from_a_secret_and_the_service_monitor_sends_it(
    helm: Helm, tmp_path: Path
) -> None:
    values = {
        "sidecar": {"admin": {"metricsToken": {"secretName": "sidecar-metrics"}}},
        "serviceMonitor": {"enabled": True},
    }
    docs = helm.template(values=values)
    token_file = "/var/run/secrets/gate-sidecar/metrics/token"
    assert sidecar_config(docs)["admin"]["metrics_token_file"] == token_file
    spec = pod_spec(docs)
    assert volume(spec, "gate-sidecar-metrics-token")["secret"] == {
        "secretName": "sidecar-metrics",
        "defaultMode": 0o440,
        "items": [{"key": "token", "path": "token"}],
    }
    mount = mounts(sidecar_container(spec))["gate-sidecar-metrics-token"]
    assert (mount["mountPath"], mount["readOnly"]) == (str(Path(token_file).parent), True)
    assert "gate-sidecar-metrics-token" not in mounts(spec["containers"][0])  # not the bot's
    [endpoint] = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "sidecar-metrics", "key": "token"},
    }
    result = check_config(docs, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"/metrics needs a bearer token (the file {token_file})" in result.stdout


def test_without_a_metrics_token_nothing_is_mounted_and_metrics_stay_open(helm: Helm) -> None:
    docs = helm.template(values={"serviceMonitor": {"enabled": True}})
    assert "metrics_token_file" not in sidecar_config(docs)["admin"]
    assert not [v for v in pod_spec(docs)["volumes"] if "metrics" in v["name"]]
    assert "authorization" not in one(docs, "ServiceMonitor")["spec"]["endpoints"][0]


# -- a key's client_auth -----------------------------------------------------------------------


def test_a_keys_token_and_mtls_files_come_from_secrets_mounted_read_only_into_the_sidecar(
    helm: Helm, tmp_path: Path
) -> None:
    auth = {
        "tokenSecret": {"name": "bot-token", "key": "value"},
        "tls": {
            "secretName": "bot-listener-tls",
            "clientCA": {"configMapName": "bots-ca", "key": "bundle.pem"},
        },
    }
    docs = helm.template(values=keys(key(port=8443, client_auth=auth)))
    where = f"{AUTH_DIR}/bot"
    [config] = sidecar_config(docs)["keys"]
    assert config["client_auth"] == {
        "token_file": f"{where}/token",
        "tls": {
            "cert_file": f"{where}/tls.crt",
            "key_file": f"{where}/tls.key",
            "client_ca_file": f"{where}/client-ca.crt",
        },
    }
    assert config["listen"] == "127.0.0.1:8443" and "allow_remote" not in config
    spec = pod_spec(docs)
    projected = volume(spec, "gate-sidecar-auth-0")["projected"]
    assert projected["defaultMode"] == 0o440
    assert projected["sources"] == [
        {"secret": {"name": "bot-token", "items": [{"key": "value", "path": "token"}]}},
        {
            "secret": {
                "name": "bot-listener-tls",
                "items": [
                    {"key": "tls.crt", "path": "tls.crt"},
                    {"key": "tls.key", "path": "tls.key"},
                ],
            }
        },
        {
            "configMap": {
                "name": "bots-ca",
                "items": [{"key": "bundle.pem", "path": "client-ca.crt"}],
            }
        },
    ]
    mount = mounts(sidecar_container(spec))["gate-sidecar-auth-0"]
    assert (mount["mountPath"], mount["readOnly"]) == (where, True)
    assert "gate-sidecar-auth-0" not in mounts(spec["containers"][0])
    # The bot is told to speak TLS to it.
    assert bot_env(spec)["GATE_SIDECAR_URL_BOT"] == "https://127.0.0.1:8443"
    result = check_config(docs, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"token: X-Sidecar-Token must match the file {where}/token" in result.stdout


def test_a_tls_listener_takes_its_certificate_items_from_the_secret_as_named(helm: Helm) -> None:
    tls = {"secretName": "s", "certKey": "chain.pem", "keyKey": "private.pem"}
    docs = helm.template(values=keys(key(port=8443, client_auth={"tls": tls})))
    [source] = volume(pod_spec(docs), "gate-sidecar-auth-0")["projected"]["sources"]
    assert source["secret"]["items"] == [
        {"key": "chain.pem", "path": "tls.crt"},
        {"key": "private.pem", "path": "tls.key"},
    ]
    assert "client_ca_file" not in sidecar_config(docs)["keys"][0]["client_auth"]["tls"]


@pytest.mark.parametrize(
    "auth",
    [
        {"tokenSecret": {"name": "bot-token"}},
        {"tls": {"secretName": "tls", "clientCA": {"secretName": "bots-ca"}}},
    ],
    ids=["token", "mtls"],
)
def test_a_key_off_loopback_renders_with_client_auth_and_the_sidecar_accepts_it(
    helm: Helm, tmp_path: Path, auth: dict[str, Any]
) -> None:
    docs = helm.template(values=keys(key(port=8443, address="0.0.0.0", client_auth=auth)))
    [config] = sidecar_config(docs)["keys"]
    assert (config["listen"], config["allow_remote"]) == ("0.0.0.0:8443", True)
    # The bot, in the same pod, still goes through loopback.
    scheme = "https" if "tls" in auth else "http"
    assert bot_env(pod_spec(docs))["GATE_SIDECAR_URL_BOT"] == f"{scheme}://127.0.0.1:8443"
    assert not [s for s in find(docs, "Service") if s["spec"]["ports"][0]["port"] == 8443]
    result = check_config(docs, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (
            key(port=8443, address="0.0.0.0"),
            "keys[0].client_auth: address 0.0.0.0 lets other pods reach the key; set "
            "client_auth.tokenSecret, or client_auth.tls with a clientCA (mTLS): the sidecar "
            "refuses to start otherwise",
        ),
        (
            key(port=8443, address="::", client_auth={"tls": {"secretName": "tls"}}),
            "keys[0].client_auth: address :: lets other pods reach the key",
        ),
        (
            key(port=8081, client_auth={"peer_uids": [1000]}),
            "keys[0].client_auth.peer_uids: only applies to a unix socket",
        ),
        (
            key(port=8081, client_auth={"peer_gids": []}),
            "keys[0].client_auth.peer_gids: only applies to a unix socket",
        ),
        (key(port=8081, socket=True), "keys[0]: set port (a TCP listener) or socket: true"),
        (key(), "keys[0].port: required (or socket: true for a unix socket)"),
        (key(socket=True, address="0.0.0.0"), "keys[0].address: only for a TCP listener"),
        (
            key(
                port=8081,
                client_auth={
                    "tls": {
                        "secretName": "t",
                        "clientCA": {"secretName": "a", "configMapName": "b"},
                    }
                },
            ),
            "keys[0].client_auth.tls.clientCA: set configMapName or secretName, not both",
        ),
        (
            key(port=8081, client_auth={"tls": {"secretName": "t", "clientCA": {}}}),
            "keys[0].client_auth.tls.clientCA: set configMapName or secretName",
        ),
        (
            key(port=8081, forward_headers=["X-Trace-Id", "Authorization"]),
            'keys[0].forward_headers[1]: "Authorization" is a credential, forwarding or '
            "hop-by-hop header: the sidecar never forwards it",
        ),
        (
            key(port=8081, forward_headers=["X-Forwarded-Port"]),
            'keys[0].forward_headers[0]: "X-Forwarded-Port"',
        ),
    ],
    ids=[
        "off-loopback-without-auth",
        "off-loopback-tls-without-client-ca",
        "peer-uids-on-tcp",
        "peer-gids-on-tcp",
        "port-and-socket",
        "neither-port-nor-socket",
        "address-on-a-socket",
        "two-client-ca-sources",
        "no-client-ca-source",
        "credential-header",
        "x-forwarded-header",
    ],
)
def test_values_whose_config_the_sidecar_would_refuse_fail_the_render(
    helm: Helm, entry: dict[str, Any], error: str
) -> None:
    result = helm.template_result(values=keys(entry))
    assert result.returncode != 0
    assert error in result.stderr


def test_the_chart_refuses_exactly_the_headers_the_sidecar_never_forwards() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    match = re.search(
        r'define "gate-sidecar.unforwardable" -}}\n(.*?)\n\{\{- end', helpers, re.DOTALL
    )
    assert match is not None
    assert sorted(match.group(1).split()) == sorted(NEVER_FORWARDED | HOP_BY_HOP)


# -- unix sockets and peer uids ----------------------------------------------------------------


def test_a_socket_key_is_shared_with_the_bot_and_may_name_its_peer_uids(
    helm: Helm, tmp_path: Path
) -> None:
    values = keys(
        key("local-bot", socket=True, client_auth={"peer_uids": [1000], "peer_gids": [2000]}),
        key("tcp-bot", port=8082),
    )
    docs = helm.template(values=values)
    local, tcp = sidecar_config(docs)["keys"]
    assert local["listen"] == f"unix:{SOCKETS}/local-bot.sock"
    assert local["client_auth"] == {"peer_uids": [1000], "peer_gids": [2000]}
    assert tcp["listen"] == "127.0.0.1:8082"
    spec = pod_spec(docs)
    assert volume(spec, "gate-sidecar-sockets")["emptyDir"] == {
        "medium": "Memory",
        "sizeLimit": "1Mi",
    }
    sidecar_mount = mounts(sidecar_container(spec))["gate-sidecar-sockets"]
    bot_mount = mounts(spec["containers"][0])["gate-sidecar-sockets"]
    assert sidecar_mount["mountPath"] == bot_mount["mountPath"] == SOCKETS
    assert not sidecar_mount.get("readOnly") and bot_mount["readOnly"] is True
    assert bot_env(spec) == {
        "GATE_SIDECAR_SOCKET": f"{SOCKETS}/local-bot.sock",
        "GATE_SIDECAR_SOCKET_LOCAL_BOT": f"{SOCKETS}/local-bot.sock",
        "GATE_SIDECAR_URL_TCP_BOT": "http://127.0.0.1:8082",
    }
    result = check_config(docs, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "local peers (SO_PEERCRED): uid 1000 or gid 2000" in result.stdout


def test_without_socket_keys_there_is_no_socket_volume(helm: Helm) -> None:
    spec = pod_spec(helm.template())
    assert not [v for v in spec["volumes"] if v["name"] == "gate-sidecar-sockets"]


# -- allowed_hosts and forward_headers -----------------------------------------------------------


def test_allowed_hosts_and_forward_headers_reach_the_config_as_given(
    helm: Helm, tmp_path: Path
) -> None:
    entry = key(
        port=8443,
        address="0.0.0.0",
        client_auth={"tokenSecret": {"name": "t"}},
        allowed_hosts=["gate-sidecar.trading.svc", "[fd00::1]"],
        forward_headers=["X-Trace-Id"],
    )
    docs = helm.template(values=keys(entry))
    [config] = sidecar_config(docs)["keys"]
    assert config["allowed_hosts"] == ["gate-sidecar.trading.svc", "[fd00::1]"]
    assert config["forward_headers"] == ["X-Trace-Id"]
    result = check_config(docs, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "allowed_hosts: gate-sidecar.trading.svc, [fd00::1]" in result.stdout


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (key(port=8081, allowed_hosts=["host:8081"]), "/keys/0/allowed_hosts/0"),
        (key(port=8081, forward_headers=["X Trace"]), "/keys/0/forward_headers/0"),
        (key(port=8081, client_auth={"token_file": "/t"}), "/keys/0/client_auth"),
        (key(port=8081, client_auth={"tls": {"cert_file": "/c"}}), "/keys/0/client_auth/tls"),
        (key(port=8081, client_auth={"peer_uids": [-1]}), "/keys/0/client_auth/peer_uids/0"),
        (key(port=8081, socket="yes"), "/keys/0/socket"),
    ],
    ids=["host-with-port", "header-with-space", "token-file", "cert-file", "uid", "socket"],
)
def test_the_schema_rejects_bad_client_auth_values(
    helm: Helm, entry: dict[str, Any], error: str
) -> None:
    result = helm.template_result(values=keys(entry))
    assert result.returncode != 0
    assert error in result.stderr


def test_every_client_auth_feature_together_passes_helm_lint_strict(
    helm: Helm, tmp_path: Path
) -> None:
    values = {
        "sidecar": {"admin": {"metricsToken": {"secretName": "sidecar-metrics"}}},
        "serviceMonitor": {"enabled": True},
        "networkPolicy": {"enabled": True},
        **keys(
            key("token-bot", port=8081, client_auth={"tokenSecret": {"name": "t"}}),
            key(
                "remote-bot",
                port=8443,
                address="0.0.0.0",
                allowed_hosts=["gate-sidecar.trading.svc"],
                forward_headers=["X-Trace-Id"],
                client_auth={"tls": {"secretName": "tls", "clientCA": {"secretName": "ca"}}},
            ),
            key("local-bot", socket=True, client_auth={"peer_uids": [1000]}),
        ),
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = helm.lint(path).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out
    result = check_config(helm.template(path), tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_client_auth_example_in_the_kubernetes_docs_renders_and_passes_check_config(
    helm: Helm, tmp_path: Path
) -> None:
    docs_page = (CHART.parent.parent / "docs" / "kubernetes.md").read_text()
    section = docs_page.split("### Client authentication in the chart", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "values.yaml"
    path.write_text(example)
    rendered = helm.template(path)
    result = check_config(rendered, tmp_path)
    assert result.returncode == 0, result.stderr
    by_name = {k["name"]: k for k in sidecar_config(rendered)["keys"]}
    assert by_name["shared-reader"]["allow_remote"] is True
    assert by_name["spot-bot"]["listen"] == f"unix:{SOCKETS}/spot-bot.sock"
