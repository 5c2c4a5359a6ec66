"""The sidecar container and its volumes, as the injector adds them to a pod.

The settings an operator tunes (resources, security context, probe timings, the /tmp size) come
from ``sidecar-defaults.json``, the one file the Helm chart's ``gate-sidecar.container`` template
reads too (``charts/gate-sidecar/files/sidecar-defaults.json`` links to it). The shape (paths,
port, mounts, probes on the admin port) is the chart's for a sidecar with a Vault source;
tests/test_injector.py renders the chart with helm and holds the two equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

NAME = "gate-sidecar"
CONFIG_DIR = "/etc/gate-sidecar"
VAULT_TOKEN_DIR = "/var/run/secrets/gate-sidecar/vault"  # noqa: S105 (a path, not a secret)
ADMIN_PORT = 9901
ADMIN_PORT_NAME = "sidecar-admin"
# The container's group: the projected token (mode 0440) is readable through the pod's fsGroup.
SIDECAR_GROUP = 10001
VOLUME_CONFIG = f"{NAME}-config"
VOLUME_TMP = f"{NAME}-tmp"
VOLUME_VAULT_TOKEN = f"{NAME}-vault-token"
PROBE_PATHS = {"startup": "/readyz", "readiness": "/readyz", "liveness": "/healthz"}


@cache
def defaults() -> dict[str, Any]:
    """The shared defaults (a fresh copy each call is not needed: callers never mutate them)."""
    text = resources.files("sidecar.injector").joinpath("sidecar-defaults.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass(frozen=True)
class SidecarSpec:
    image: str
    config_configmap: str
    image_pull_policy: str = "IfNotPresent"
    vault_audience: str = "vault"
    vault_token_expiration_s: int = 600


def _probe(kind: str) -> dict[str, Any]:
    return {
        "httpGet": {"path": PROBE_PATHS[kind], "port": ADMIN_PORT_NAME},
        **defaults()["probes"][kind],
    }


def container(spec: SidecarSpec) -> dict[str, Any]:
    """The native sidecar: an init container with ``restartPolicy: Always``."""
    d = defaults()
    return {
        "name": NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "restartPolicy": "Always",
        "args": ["serve", "--config", f"{CONFIG_DIR}/config.yaml"],
        "ports": [{"name": ADMIN_PORT_NAME, "containerPort": ADMIN_PORT, "protocol": "TCP"}],
        "startupProbe": _probe("startup"),
        "readinessProbe": _probe("readiness"),
        "livenessProbe": _probe("liveness"),
        "resources": json.loads(json.dumps(d["resources"])),
        "securityContext": json.loads(json.dumps(d["securityContext"])),
        "volumeMounts": [
            {"name": VOLUME_CONFIG, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": VOLUME_TMP, "mountPath": "/tmp"},  # noqa: S108 (an in-memory emptyDir)
            {"name": VOLUME_VAULT_TOKEN, "mountPath": VAULT_TOKEN_DIR, "readOnly": True},
        ],
    }


def volumes(spec: SidecarSpec) -> list[dict[str, Any]]:
    return [
        {
            "name": VOLUME_CONFIG,
            "configMap": {"name": spec.config_configmap, "defaultMode": 0o444},
        },
        {
            "name": VOLUME_TMP,
            "emptyDir": {"medium": "Memory", "sizeLimit": defaults()["tmpSizeLimit"]},
        },
        {
            "name": VOLUME_VAULT_TOKEN,
            "projected": {
                "defaultMode": 0o440,
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": spec.vault_audience,
                            "expirationSeconds": spec.vault_token_expiration_s,
                            "path": "token",
                        }
                    }
                ],
            },
        },
    ]
