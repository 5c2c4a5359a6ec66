"""Credentials from Vault's KV engine (v2 by default, v1 supported), checked every interval.

KV v2: each poll reads only the secret's *metadata* (:func:`sidecar.vault.kv.read_kv2`); the
data (the secret itself) is fetched only when ``current_version`` changed. A current version that
is deleted or destroyed revokes the key: that is how an operator pulls a key in an emergency.
KV v1 has no versions, so the data is read and compared each time.

What each Vault answer means for the key:

- a new version: offered to :class:`~sidecar.credentials.rotation.Rotation` (canary, then swap);
- deleted / destroyed / no such secret (404): revoked, requests get 503 until a new version;
- 403 even after the session logged in afresh (the identity lost its policy): revoked;
- unreachable, sealed, 5xx, or a login Vault refused: :class:`SourceError`, so the base loop keeps
  the held pair serving, backs off, and the slot's staleness grows (``max_stale_s`` bounds it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.credentials.sources.base import Source, SourceContext, SourceKind
from sidecar.errors import SourceError
from sidecar.gate.signing import HmacSigner
from sidecar.settings import Strict
from sidecar.vault.errors import VaultError, VaultForbidden, VaultNotFound
from sidecar.vault.kv import read_kv2, response_data
from sidecar.vault.session import VaultSession

if TYPE_CHECKING:  # hvac loads with the Vault session, not with the config schema
    import hvac


class VaultKVSource(Strict):
    path: str
    mount: str = "secret"
    kv_version: Literal[1, 2] = 2
    key_field: str = "key"
    secret_field: str = "secret"  # noqa: S105 - a field name


def extract_pair(data: Any, spec: VaultKVSource, where: str) -> tuple[str, str]:
    """(api key, secret) from a secret's data; errors name fields, never values."""
    if not isinstance(data, Mapping):
        raise SourceError(f"{where}: the secret holds no data")
    missing = [
        f
        for f in (spec.key_field, spec.secret_field)
        if not isinstance(data.get(f), str) or not data.get(f)
    ]
    if missing:
        raise SourceError(
            f"{where}: the secret has no non-empty string field {' or '.join(map(repr, missing))}"
        )
    return data[spec.key_field], data[spec.secret_field]


def kv1_version(api_key: str, secret: str) -> str:
    """A stable label for KV v1 data, which has no version numbers (as the file source does)."""
    return "sha-" + hashlib.sha256(f"{api_key}\0{secret}".encode()).hexdigest()[:12]


class VaultPolling(Source):
    """A source that polls through the shared :class:`VaultSession` every ``interval_s``.

    When the session gets its first token, the source polls at once instead of at its next
    backoff: with Vault down at start-up, the key fills within moments of Vault's return.
    """

    def __init__(
        self, slot: KeySlot, rotation: Rotation, session: VaultSession, interval_s: float
    ) -> None:
        super().__init__(slot, rotation)
        self.session = session
        self.interval_s = interval_s
        session.login_listeners.append(self.refresh_now)

    async def close(self) -> None:
        if self.refresh_now in self.session.login_listeners:
            self.session.login_listeners.remove(self.refresh_now)


class VaultKV(VaultPolling):
    kind = "vault"

    def __init__(
        self,
        slot: KeySlot,
        rotation: Rotation,
        spec: VaultKVSource,
        session: VaultSession,
        interval_s: float,
    ) -> None:
        super().__init__(slot, rotation, session, interval_s)
        self.spec = spec
        self.where = f"{spec.mount.strip('/')}/{spec.path.strip('/')}"

    async def poll(self) -> None:
        try:
            if self.spec.kv_version == 2:
                await self._poll_v2()
            else:
                await self._poll_v1()
        except VaultForbidden as exc:
            # The message names the API path denied: metadata/ is the capability most often
            # missing from a hand-written policy.
            self.rotation.revoke(
                self.slot, f"Vault denied access after a fresh login: {exc}", error=str(exc)
            )
        except VaultNotFound as exc:
            self.rotation.revoke(
                self.slot, f"secret {self.where} not found in Vault", error=str(exc)
            )
        except VaultError as exc:
            raise SourceError(str(exc)) from None

    async def _poll_v2(self) -> None:
        held = self.slot.version if self.slot.ready else None
        known = int(held) if held is not None and held.isdigit() else None
        kv = await read_kv2(self.session, self.spec.mount, self.spec.path, known=known)
        if kv.problem is not None:
            self.rotation.revoke(self.slot, f"secret {self.where} {kv.problem}")
        elif not kv.changed:
            self.slot.confirm()
        else:
            api_key, value = extract_pair(kv.fields, self.spec, self.where)
            creds = Credentials(api_key, HmacSigner(value), str(kv.version))
            await self.rotation.offer(self.slot, creds)

    async def _poll_v1(self) -> None:
        mount, path = self.spec.mount, self.spec.path

        def read(client: hvac.Client) -> Any:
            return client.secrets.kv.v1.read_secret(path=path, mount_point=mount)

        secret = await self.session.call(read, what=f"reading {self.where}")
        api_key, value = extract_pair(response_data(secret), self.spec, self.where)
        version = kv1_version(api_key, value)
        # offer() only confirms when the held pair has this version and key already.
        await self.rotation.offer(self.slot, Credentials(api_key, HmacSigner(value), version))


def _build(spec: VaultKVSource, slot: KeySlot, rotation: Rotation, ctx: SourceContext) -> Source:
    if ctx.vault is None:
        raise ValueError("a vault source needs a Vault session")
    return VaultKV(slot, rotation, spec, ctx.vault, ctx.vault.cfg.refresh_interval_s)


def _describe(spec: VaultKVSource) -> str:
    return (
        f"vault kv v{spec.kv_version} {spec.mount}/{spec.path} "
        f"(fields {spec.key_field}, {spec.secret_field})"
    )


KIND = SourceKind("vault", VaultKVSource, _build, _describe, needs_vault=True)
