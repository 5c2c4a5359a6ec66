"""Kubernetes auth: the pod's service-account JWT, re-read per login (kubelet rotates it)."""

from __future__ import annotations

from sidecar.config.models import KubernetesAuth
from sidecar.vault.auth import ClientFactory, LoginResult, from_auth_response, read_credential


def login_kubernetes(make_client: ClientFactory, cfg: KubernetesAuth) -> LoginResult:
    jwt = read_credential(cfg.jwt_file, "jwt_file")
    response = make_client(None).auth.kubernetes.login(
        role=cfg.role, jwt=jwt, use_token=False, mount_point=cfg.mount
    )
    return from_auth_response(response)
