"""AppRole auth: role_id (inline or a file) and secret_id (a file), both re-read per login."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from sidecar.vault.auth.base import (
    AuthMethod,
    AuthSettings,
    ClientFactory,
    LoginResult,
    from_auth_response,
    read_credential,
)


class AppRoleAuth(AuthSettings):
    method: Literal["approle"]
    mount: str = "approle"
    role_id: str | None = None
    role_id_file: Path | None = None
    secret_id_file: Path

    @model_validator(mode="after")
    def _one_role_id(self) -> AppRoleAuth:
        if (self.role_id is None) == (self.role_id_file is None):
            raise ValueError("set exactly one of role_id and role_id_file")
        return self


def login_approle(
    make_client: ClientFactory, cfg: AppRoleAuth, environ: Mapping[str, str]
) -> LoginResult:
    if cfg.role_id_file is not None:
        role_id = read_credential(cfg.role_id_file, "role_id_file")
    else:
        assert cfg.role_id is not None  # the settings model requires exactly one of the two
        role_id = cfg.role_id
    secret_id = read_credential(cfg.secret_id_file, "secret_id_file")
    response = make_client(None).auth.approle.login(
        role_id=role_id, secret_id=secret_id, use_token=False, mount_point=cfg.mount
    )
    return from_auth_response(response)


METHOD = AuthMethod("approle", AppRoleAuth, login_approle)
