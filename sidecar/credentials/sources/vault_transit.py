"""A key whose secret is a Vault transit HMAC key: the sidecar never holds the secret.

Each poll reads the transit key's metadata (``<mount>/keys/<key>``: type and
``latest_version``) and, when the API key lives in Vault too (``api_key_path``), the KV v2
metadata of that secret, fetching its data only when its version changed (as the KV source does).
A new transit version or a new API key becomes new
:class:`~sidecar.credentials.slot.Credentials` whose
:class:`~sidecar.vault.transit.signer.TransitSigner` is pinned to that version, offered through
:class:`~sidecar.credentials.rotation.Rotation` so the canary checks it before it replaces the
held pair.

What each Vault answer means for the key (the same rules as the KV source):

- key or API-key secret deleted (404), or not an hmac key: revoked, requests get 503;
- 403 even after a fresh login (the identity lost its policy): revoked;
- unreachable, sealed, 5xx: :class:`~sidecar.errors.SourceError`; the held pair stays installed
  but cannot sign while Vault is away (each request fails fast with 503), and signs again the
  moment Vault answers.

A sign that Vault refuses (key gone, policy revoked) asks for a poll at once, at most once a
second, so a revocation is reflected in readiness within moments, not a refresh interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.credentials.sources.base import Source, SourceContext, SourceKind
from sidecar.credentials.sources.vault_kv import VaultPolling
from sidecar.errors import KeyUnavailable, SourceError
from sidecar.settings import Strict
from sidecar.vault.errors import VaultError, VaultForbidden, VaultNotFound
from sidecar.vault.kv import read_kv2
from sidecar.vault.session import VaultSession
from sidecar.vault.transit.signer import TransitClient, TransitSigner
from sidecar.vault.transit.wire import keys_path, latest_version

if TYPE_CHECKING:  # hvac loads with the Vault session, not with the config schema
    import hvac

log = logging.getLogger("sidecar.sources.transit")

REFUSED_POLL_GAP_S = 1.0  # a burst of refused signs triggers at most one poll a second


class VaultTransitSource(Strict):
    key: str
    mount: str = "transit"
    api_key: str | None = None
    api_key_path: str | None = None
    api_key_mount: str = "secret"
    api_key_field: str = "key"

    @model_validator(mode="after")
    def _one_api_key(self) -> VaultTransitSource:
        if (self.api_key is None) == (self.api_key_path is None):
            raise ValueError("set exactly one of api_key and api_key_path")
        return self


def version_label(transit_version: int) -> str:
    return f"transit:v{transit_version}"


class VaultTransit(VaultPolling):
    kind = "vault_transit"

    def __init__(
        self,
        slot: KeySlot,
        rotation: Rotation,
        spec: VaultTransitSource,
        session: VaultSession,
        interval_s: float,
        *,
        client: TransitClient | None = None,
    ) -> None:
        super().__init__(slot, rotation, session, interval_s)
        self.spec = spec
        self.where = f"{spec.mount.strip('/')}/{spec.key}"
        self.client = client if client is not None else TransitClient.acquire(session)
        self._owns_client = client is None
        # The API key from KV v2, and the KV version it came from (None: inline api_key).
        self._api_key: str | None = spec.api_key
        self._api_key_version: int | None = None
        self._refused_at = -float("inf")
        self._warned_exportable = False

    async def close(self) -> None:
        await super().close()
        if self._owns_client:
            self._owns_client = False
            await self.client.release()

    def _on_refused(self, detail: str) -> None:
        now = time.monotonic()
        if now - self._refused_at >= REFUSED_POLL_GAP_S:
            self._refused_at = now
            self.refresh_now()

    async def poll(self) -> None:
        try:
            version = await self._transit_version()
            if version is None:
                return
            api_key = await self._current_api_key()
            if api_key is None:
                return
        except VaultForbidden as exc:
            self.rotation.revoke(
                self.slot, f"Vault denied access after a fresh login: {exc}", error=str(exc)
            )
            return
        except VaultError as exc:
            raise SourceError(str(exc)) from None
        signer = TransitSigner(
            self.client, self.spec.mount, self.spec.key, version, self._on_refused
        )
        try:
            await self.rotation.offer(
                self.slot, Credentials(api_key, signer, version_label(version))
            )
        except KeyUnavailable as exc:
            # The canary could not even sign (Vault went away mid-poll): try again later.
            raise SourceError(f"checking the new version: {exc.message}") from None

    async def _transit_version(self) -> int | None:
        """The key's latest version; None (after revoking) when it cannot sign at all."""
        path = keys_path(self.spec.mount, self.spec.key)

        def read_key(client: hvac.Client) -> Any:
            return client.read(path)

        try:
            answer = await self.session.call(read_key, what=f"reading {path}")
        except VaultNotFound as exc:
            self.rotation.revoke(
                self.slot, f"transit key {self.where} not found in Vault", error=str(exc)
            )
            return None
        # hvac returns None for a 404 on a plain read; both mean the same.
        if answer is None:
            self.rotation.revoke(self.slot, f"transit key {self.where} not found in Vault")
            return None
        info = answer.get("data") if isinstance(answer, Mapping) else None
        version, problem = latest_version(info)
        if problem is not None:
            self.rotation.revoke(self.slot, f"transit key {self.where} {problem}")
            return None
        assert isinstance(info, Mapping)
        if info.get("exportable") and not self._warned_exportable:
            self._warned_exportable = True
            log.warning(
                "transit key is exportable: the secret can leave Vault",
                extra={"key": self.slot.name, "transit_key": self.where},
            )
        return version

    async def _current_api_key(self) -> str | None:
        """The public API key: inline, or from KV v2 (data read only when its version moved)."""
        spec = self.spec
        if spec.api_key is not None:
            return spec.api_key
        assert spec.api_key_path is not None
        mount, path = spec.api_key_mount, spec.api_key_path
        where = f"{mount.strip('/')}/{path.strip('/')}"
        known = self._api_key_version if self._api_key is not None else None
        try:
            kv = await read_kv2(self.session, mount, path, known=known)
        except VaultNotFound as exc:
            self.rotation.revoke(
                self.slot, f"API key secret {where} not found in Vault", error=str(exc)
            )
            return None
        if kv.problem is not None:
            self.rotation.revoke(self.slot, f"API key secret {where} {kv.problem}")
            return None
        if not kv.changed:
            return self._api_key
        value = kv.fields.get(spec.api_key_field) if isinstance(kv.fields, Mapping) else None
        if not isinstance(value, str) or not value:
            self.rotation.revoke(
                self.slot,
                f"API key secret {where} has no non-empty string field {spec.api_key_field!r}",
            )
            return None
        self._api_key, self._api_key_version = value, kv.version
        return value


def _build(
    spec: VaultTransitSource, slot: KeySlot, rotation: Rotation, ctx: SourceContext
) -> Source:
    if ctx.vault is None:
        raise ValueError("a vault_transit source needs a Vault session")
    return VaultTransit(slot, rotation, spec, ctx.vault, ctx.vault.cfg.refresh_interval_s)


def _describe(spec: VaultTransitSource) -> str:
    api_key = spec.api_key_path and f"{spec.api_key_mount}/{spec.api_key_path}"
    return (
        f"vault transit key {spec.mount}/{spec.key} "
        f"(api key {'from ' + api_key if api_key else 'in the config'})"
    )


KIND = SourceKind("vault_transit", VaultTransitSource, _build, _describe, needs_vault=True)
