"""Logging in to Vault, one module per method, each registered in :data:`METHODS`.

The credential files (token, role_id, secret_id, service-account JWT) are read on every login, not
once at start-up: Kubernetes rotates projected service-account tokens and operators rotate
secret_ids, and a login with the old content would fail forever.

Everything here is synchronous (hvac) and runs in a worker thread, called by the session.
Adding a method: write its module (settings model, login function, ``METHOD``) and add it below.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from sidecar.vault.auth import approle, kubernetes, token
from sidecar.vault.auth.base import AuthMethod, AuthSettings, ClientFactory, LoginResult

METHODS: tuple[AuthMethod[Any], ...] = (token.METHOD, approle.METHOD, kubernetes.METHOD)

BY_NAME: dict[str, AuthMethod[Any]] = {m.name: m for m in METHODS}

if TYPE_CHECKING:
    VaultAuth = AuthSettings
else:
    # The `vault.auth` section: one of the registered methods' settings, chosen by `method`.
    VaultAuth = Annotated[
        Union[tuple(m.settings for m in METHODS)],  # noqa: UP007 - built from the registry
        Field(discriminator="method"),
    ]


def login(make_client: ClientFactory, cfg: AuthSettings, environ: Mapping[str, str]) -> LoginResult:
    """Log in with ``cfg``'s method (blocking: run it in a thread)."""
    return BY_NAME[cfg.method].login(make_client, cfg, environ)


def watched_file(cfg: AuthSettings) -> Path | None:
    """The file whose change means the session must log in again, if the method has one."""
    return BY_NAME[cfg.method].watched_file(cfg)
