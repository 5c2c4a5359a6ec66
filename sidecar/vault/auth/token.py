"""Token auth: a token given to us ($VAULT_TOKEN or a file), checked with lookup-self.

There is nothing to log in to: "logging in" re-reads the token (so a rewritten file is picked up)
and asks Vault for its remaining TTL and whether it is renewable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from sidecar.vault.auth.base import (
    AuthMethod,
    AuthSettings,
    ClientFactory,
    LoginResult,
    read_credential,
)
from sidecar.vault.errors import VaultLoginFailed

TOKEN_VAR = "VAULT_TOKEN"  # noqa: S105 - a variable name


class TokenAuth(AuthSettings):
    method: Literal["token"] = "token"
    token_file: Path | None = None  # default: $VAULT_TOKEN


def current_token(cfg: TokenAuth, environ: Mapping[str, str]) -> str:
    if cfg.token_file is not None:
        return read_credential(cfg.token_file, "token_file")
    token = environ.get(TOKEN_VAR, "").strip()
    if not token:
        raise VaultLoginFailed(f"vault.auth: token_file is not set and ${TOKEN_VAR} is empty")
    return token


def login_token(
    make_client: ClientFactory, cfg: TokenAuth, environ: Mapping[str, str]
) -> LoginResult:
    token = current_token(cfg, environ)
    data = make_client(token).auth.token.lookup_self()["data"]
    return LoginResult(
        token=token,
        ttl_s=float(data.get("ttl") or 0),
        renewable=bool(data.get("renewable")),
        policies=tuple(str(p) for p in data.get("policies") or ()),
    )


def _token_file(cfg: TokenAuth) -> Path | None:
    return cfg.token_file


METHOD = AuthMethod("token", TokenAuth, login_token, _token_file)
