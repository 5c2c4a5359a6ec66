"""What every Vault auth method shares: the login result, credential files, the method record.

The credential files (token, role_id, secret_id, service-account JWT) are read on every login, not
once at start-up: Kubernetes rotates projected service-account tokens and operators rotate
secret_ids, and a login with the old content would fail forever.

Everything here is synchronous (hvac) and runs in a worker thread, called by the session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sidecar.settings import Strict
from sidecar.vault.errors import VaultLoginFailed

if TYPE_CHECKING:  # only the session makes clients (sidecar.vault.session imports hvac late)
    import hvac

#: Builds an hvac client for Vault, carrying ``token`` (None for a login call).
ClientFactory = Callable[[str | None], "hvac.Client"]


@dataclass(frozen=True)
class LoginResult:
    """A token and its lease. ``ttl_s`` 0 means the token never expires (a root token)."""

    token: str = field(repr=False)
    ttl_s: float
    renewable: bool
    policies: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"LoginResult(ttl_s={self.ttl_s:g}, renewable={self.renewable})"


def from_auth_response(response: Mapping[str, Any]) -> LoginResult:
    """The token and lease of a login (or renew-self) response's ``auth`` section."""
    auth = response.get("auth") if isinstance(response, Mapping) else None
    if not isinstance(auth, Mapping) or not isinstance(auth.get("client_token"), str):
        raise VaultLoginFailed("Vault's login answer has no auth.client_token")
    return LoginResult(
        token=auth["client_token"],
        ttl_s=float(auth.get("lease_duration") or 0),
        renewable=bool(auth.get("renewable")),
        policies=tuple(str(p) for p in auth.get("policies") or ()),
    )


def read_credential(path: Path, what: str) -> str:
    """The stripped content of a credential file; errors name the file, never its content."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise VaultLoginFailed(f"cannot read {what} {path} ({exc.strerror})") from None
    value = text.strip()
    if not value:
        raise VaultLoginFailed(f"{what} {path} is empty")
    return value


class AuthSettings(Strict):
    """The base of each method's settings model (``vault.auth``); ``method`` tells them apart."""

    method: str


SettingsT = TypeVar("SettingsT", bound=AuthSettings)


def _no_file(cfg: AuthSettings) -> Path | None:
    return None


@dataclass(frozen=True)
class AuthMethod(Generic[SettingsT]):
    """One way of logging in to Vault (``vault.auth.method: <name>``).

    A new method is one module defining its settings model, its login function and one of these,
    plus one line in :mod:`sidecar.vault.auth`.
    """

    name: str
    settings: type[SettingsT]
    #: log in (blocking: the session runs it in a thread); raises hvac/requests errors or
    #: VaultLoginFailed
    login: Callable[[ClientFactory, SettingsT, Mapping[str, str]], LoginResult]
    #: a file whose change means "log in again" (a token file rewritten by an agent)
    watched_file: Callable[[SettingsT], Path | None] = _no_file
