"""Reading Vault's KV v2 engine the cheap way: metadata every time, data only when it changed.

Both the KV source (key and secret) and the transit source (the API key next to a transit key)
poll a KV v2 secret. Each poll reads only the secret's *metadata*; the data is fetched only when
``current_version`` differs from the version the caller already holds, so a steady state never
moves the secret over the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sidecar.errors import SourceError
from sidecar.vault.session import VaultSession

if TYPE_CHECKING:
    import hvac


def response_data(response: Any) -> Mapping[str, Any]:
    """The ``data`` section of a Vault answer (SourceError when there is none)."""
    data = response.get("data") if isinstance(response, Mapping) else None
    if not isinstance(data, Mapping):
        raise SourceError("Vault's answer has no data section")
    return data


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


@dataclass(frozen=True)
class KV2Read:
    version: int  # the secret's current version
    problem: str | None = None  # why that version is unusable (deleted, destroyed, none)
    changed: bool = False  # True: ``fields`` holds that version's data (as Vault sent it)
    fields: Any = None


async def read_kv2(session: VaultSession, mount: str, path: str, *, known: int | None) -> KV2Read:
    """The current version of ``mount/path``, with its fields only when it is not ``known``.

    Raises the session's :class:`~sidecar.vault.errors.VaultError` family.
    """

    def read_metadata(client: hvac.Client) -> Any:
        return client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)

    meta = await session.call(read_metadata, what=f"reading {mount}/metadata/{path}")
    version, problem = kv2_current(response_data(meta), datetime.now(UTC))
    if problem is not None:
        return KV2Read(version, problem)
    if version == known:
        return KV2Read(version)

    def read_version(client: hvac.Client) -> Any:
        return client.secrets.kv.v2.read_secret_version(
            path=path, version=version, mount_point=mount, raise_on_deleted_version=True
        )

    secret = await session.call(
        read_version, what=f"reading {mount}/data/{path} (version {version})"
    )
    return KV2Read(version, changed=True, fields=response_data(secret).get("data"))
