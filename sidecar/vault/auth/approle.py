"""AppRole auth: role_id (inline or a file) and secret_id (a file), both re-read per login."""

from __future__ import annotations

from sidecar.config.models import AppRoleAuth
from sidecar.vault.auth import ClientFactory, LoginResult, from_auth_response, read_credential


def login_approle(make_client: ClientFactory, cfg: AppRoleAuth) -> LoginResult:
    if cfg.role_id_file is not None:
        role_id = read_credential(cfg.role_id_file, "role_id_file")
    else:
        assert cfg.role_id is not None  # the config model requires exactly one of the two
        role_id = cfg.role_id
    secret_id = read_credential(cfg.secret_id_file, "secret_id_file")
    response = make_client(None).auth.approle.login(
        role_id=role_id, secret_id=secret_id, use_token=False, mount_point=cfg.mount
    )
    return from_auth_response(response)
