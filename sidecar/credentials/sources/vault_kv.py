"""Credentials from Vault's KV engine (v2 by default, v1 supported), checked every interval.

KV v2: each poll reads only the secret's *metadata*; the data (the secret itself) is fetched only
when ``current_version`` changed, so a steady state never moves the secret over the wire. A
current version that is deleted or destroyed revokes the key: that is how an operator pulls a key
in an emergency. KV v1 has no versions, so the data is read and compared each time.

What each Vault answer means for the key:

- a new version: offered to :class:`~sidecar.credentials.rotation.Rotation` (canary, then swap);
- deleted / destroyed / no such secret (404): revoked, requests get 503 until a new version;
- 403 even after the session logged in afresh (the identity lost its policy): revoked;
- unreachable, sealed, 5xx, or a login Vault refused: :class:`SourceError`, so the base loop keeps
  the held pair serving, backs off, and the slot's staleness grows (``max_stale_s`` bounds it).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import hvac

from sidecar.config.models import VaultKVSource
from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.credentials.sources.base import Source
from sidecar.errors import SourceError
from sidecar.gate.signing import HmacSigner
from sidecar.vault.errors import VaultError, VaultForbidden, VaultNotFound
from sidecar.vault.session import VaultSession

log = logging.getLogger("sidecar.sources.vault")


def kv2_current(metadata: Mapping[str, Any], now: datetime) -> tuple[int, str | None]:
    """(current_version, why it is unusable or None) from a KV v2 metadata ``data`` section."""
    version = metadata.get("current_version")
    if not isinstance(version, int) or version < 1:
        return 0, "has no versions"
    info = (metadata.get("versions") or {}).get(str(version)) or {}
    if info.get("destroyed"):
        return version, f"version {version} is destroyed"
    deleted = info.get("deletion_time") or ""
    if deleted:
        try:
            at = datetime.fromisoformat(deleted)
        except ValueError:
            return version, f"version {version} is deleted"
        # A future deletion_time is a scheduled deletion (delete_version_after): still live.
        if at <= now:
            return version, f"version {version} is deleted"
    return version, None


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


class VaultKV(Source):
    kind = "vault"

    def __init__(
        self,
        slot: KeySlot,
        rotation: Rotation,
        spec: VaultKVSource,
        session: VaultSession,
        interval_s: float,
    ) -> None:
        super().__init__(slot, rotation)
        self.spec = spec
        self.session = session
        self.interval_s = interval_s
        self.where = f"{spec.mount.strip('/')}/{spec.path.strip('/')}"
        # When the session gets its first token, poll at once instead of at the next backoff:
        # with Vault down at start-up, the key fills within moments of Vault's return.
        session.login_listeners.append(self.refresh_now)

    async def close(self) -> None:
        if self.refresh_now in self.session.login_listeners:
            self.session.login_listeners.remove(self.refresh_now)

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
        mount, path = self.spec.mount, self.spec.path

        def read_metadata(client: hvac.Client) -> Any:
            return client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)

        meta = await self.session.call(read_metadata, what=f"reading {mount}/metadata/{path}")
        version, problem = kv2_current(response_data(meta), datetime.now(UTC))
        if problem is not None:
            self.rotation.revoke(self.slot, f"secret {self.where} {problem}")
            return
        if self.slot.ready and self.slot.version == str(version):
            self.slot.confirm()
            return

        def read_version(client: hvac.Client) -> Any:
            return client.secrets.kv.v2.read_secret_version(
                path=path, version=version, mount_point=mount, raise_on_deleted_version=True
            )

        secret = await self.session.call(
            read_version, what=f"reading {mount}/data/{path} (version {version})"
        )
        api_key, value = extract_pair(response_data(secret).get("data"), self.spec, self.where)
        await self.rotation.offer(self.slot, Credentials(api_key, HmacSigner(value), str(version)))

    async def _poll_v1(self) -> None:
        mount, path = self.spec.mount, self.spec.path

        def read(client: hvac.Client) -> Any:
            return client.secrets.kv.v1.read_secret(path=path, mount_point=mount)

        secret = await self.session.call(read, what=f"reading {self.where}")
        api_key, value = extract_pair(response_data(secret), self.spec, self.where)
        version = kv1_version(api_key, value)
        # offer() only confirms when the held pair has this version and key already.
        await self.rotation.offer(self.slot, Credentials(api_key, HmacSigner(value), version))


def response_data(response: Any) -> Mapping[str, Any]:
    data = response.get("data") if isinstance(response, Mapping) else None
    if not isinstance(data, Mapping):
        raise SourceError("Vault's answer has no data section")
    return data
