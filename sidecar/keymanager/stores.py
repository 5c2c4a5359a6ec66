"""Writing a new pair where a bot's sidecar reads it: a KV v2 version, or a transit import.

- KV (``store: {vault: ...}``, the sidecar's ``vault`` source): one new version holding the key
  and the secret together, so a sidecar never reads half a pair.
- Transit (``store: {vault_transit: ...}``): the secret is imported as a new version of the
  non-exportable HMAC key (BYOK, :func:`sidecar.vault.transit.importer.import_key`), then the API
  key is written to ``api_key_path`` (KV, the key only). The secret never reaches KV. Between the
  two writes a sidecar sees the new transit version with the old API key: its canary refuses
  that pair and the old one keeps serving until the API key follows.

:meth:`Store.marker` is taken before a write and kept in the progress record, so that after a
crash :meth:`Store.landed` tells whether the secret reached the store (then the rotation is
finished, not repeated) or not (then the minted key is an orphan and is deleted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import hvac

from sidecar.credentials.sources.vault_kv import VaultKVSource
from sidecar.credentials.sources.vault_transit import VaultTransitSource
from sidecar.keymanager.gate_keys import Minted
from sidecar.vault.errors import VaultNotFound
from sidecar.vault.kv import read_kv2
from sidecar.vault.session import VaultSession
from sidecar.vault.transit.importer import import_key, read_key
from sidecar.vault.transit.wire import latest_version


class Store(Protocol):
    where: str

    async def current_key(self) -> str | None: ...

    async def marker(self) -> int: ...

    async def landed(self, marker: int, api_key: str) -> bool: ...

    async def write(self, minted: Minted) -> None: ...

    async def finish(self, api_key: str) -> None: ...

    async def clear(self) -> None: ...


async def _kv_field(
    session: VaultSession, mount: str, path: str, name: str
) -> tuple[int, str | None]:
    """(current version, the field's value) of a KV v2 secret; (0, None) when there is none."""
    try:
        kv = await read_kv2(session, mount, path, known=None)
    except VaultNotFound:
        return 0, None
    if kv.problem is not None or not isinstance(kv.fields, Mapping):
        return kv.version, None
    value = kv.fields.get(name)
    return kv.version, value if isinstance(value, str) and value else None


async def _kv_write(session: VaultSession, mount: str, path: str, data: dict[str, str]) -> None:
    def write(client: hvac.Client) -> Any:
        return client.secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, mount_point=mount
        )

    await session.call(write, what=f"writing {mount}/data/{path}")


async def _kv_delete_latest(session: VaultSession, mount: str, path: str) -> None:
    def delete(client: hvac.Client) -> Any:
        return client.secrets.kv.v2.delete_latest_version_of_secret(path=path, mount_point=mount)

    try:
        await session.call(delete, what=f"deleting {mount}/data/{path}")
    except VaultNotFound:
        pass


class KVStore:
    def __init__(self, session: VaultSession, spec: VaultKVSource) -> None:
        self.session, self.spec = session, spec
        self.where = f"{spec.mount}/{spec.path}"

    async def current_key(self) -> str | None:
        return (
            await _kv_field(self.session, self.spec.mount, self.spec.path, self.spec.key_field)
        )[1]

    async def marker(self) -> int:
        return (
            await _kv_field(self.session, self.spec.mount, self.spec.path, self.spec.key_field)
        )[0]

    async def landed(self, marker: int, api_key: str) -> bool:
        return await self.current_key() == api_key

    async def write(self, minted: Minted) -> None:
        data = {self.spec.key_field: minted.key, self.spec.secret_field: minted.secret}
        await _kv_write(self.session, self.spec.mount, self.spec.path, data)

    async def finish(self, api_key: str) -> None:
        return None  # one write holds the whole pair

    async def clear(self) -> None:
        await _kv_delete_latest(self.session, self.spec.mount, self.spec.path)


class TransitStore:
    def __init__(self, session: VaultSession, spec: VaultTransitSource) -> None:
        assert spec.api_key_path is not None  # the settings require it
        self.session, self.spec, self.api_key_path = session, spec, spec.api_key_path
        self.where = f"{spec.mount}/{spec.key}"

    async def current_key(self) -> str | None:
        spec = self.spec
        return (
            await _kv_field(self.session, spec.api_key_mount, self.api_key_path, spec.api_key_field)
        )[1]

    async def marker(self) -> int:
        mount, key = self.spec.mount, self.spec.key

        def version(client: hvac.Client) -> int:
            info = read_key(client, mount, key)
            return 0 if info is None else latest_version(info)[0]

        return await self.session.call(version, what=f"reading {mount}/keys/{key}")

    async def landed(self, marker: int, api_key: str) -> bool:
        return await self.current_key() == api_key or await self.marker() > marker

    async def write(self, minted: Minted) -> None:
        mount, key, secret = self.spec.mount, self.spec.key, minted.secret

        def imported(client: hvac.Client) -> int:
            rotate = read_key(client, mount, key) is not None
            return import_key(client, mount, key, secret, rotate=rotate).version

        await self.session.call(imported, what=f"importing into {mount}/keys/{key}")
        await self.finish(minted.key)

    async def finish(self, api_key: str) -> None:
        spec = self.spec
        if await self.current_key() != api_key:
            await _kv_write(
                self.session, spec.api_key_mount, self.api_key_path, {spec.api_key_field: api_key}
            )

    async def clear(self) -> None:
        await _kv_delete_latest(self.session, self.spec.api_key_mount, self.api_key_path)


def build_store(
    session: VaultSession, vault: VaultKVSource | None, transit: VaultTransitSource | None
) -> Store:
    if vault is not None:
        return KVStore(session, vault)
    assert transit is not None
    return TransitStore(session, transit)
