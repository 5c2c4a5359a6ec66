"""Dispatch a login to the configured method."""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.config.models import AppRoleAuth, KubernetesAuth, TokenAuth
from sidecar.vault.auth import ClientFactory, LoginResult
from sidecar.vault.auth.approle import login_approle
from sidecar.vault.auth.kubernetes import login_kubernetes
from sidecar.vault.auth.token import login_token


def login(
    make_client: ClientFactory,
    cfg: TokenAuth | AppRoleAuth | KubernetesAuth,
    environ: Mapping[str, str],
) -> LoginResult:
    """Log in (blocking: run it in a thread). Raises hvac/requests errors or VaultLoginFailed."""
    if isinstance(cfg, AppRoleAuth):
        return login_approle(make_client, cfg)
    if isinstance(cfg, KubernetesAuth):
        return login_kubernetes(make_client, cfg)
    return login_token(make_client, cfg, environ)
