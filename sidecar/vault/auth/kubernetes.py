"""Kubernetes auth: the pod's service-account JWT, re-read per login (kubelet rotates it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from sidecar.vault.auth.base import (
    AuthMethod,
    AuthSettings,
    ClientFactory,
    LoginResult,
    from_auth_response,
    read_credential,
)

K8S_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubernetesAuth(AuthSettings):
    method: Literal["kubernetes"]
    role: str
    mount: str = "kubernetes"
    jwt_file: Path = K8S_TOKEN


def login_kubernetes(
    make_client: ClientFactory, cfg: KubernetesAuth, environ: Mapping[str, str]
) -> LoginResult:
    jwt = read_credential(cfg.jwt_file, "jwt_file")
    response = make_client(None).auth.kubernetes.login(
        role=cfg.role, jwt=jwt, use_token=False, mount_point=cfg.mount
    )
    return from_auth_response(response)


METHOD = AuthMethod("kubernetes", KubernetesAuth, login_kubernetes)
