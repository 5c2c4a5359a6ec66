"""Giving each key a slot and the source that fills it: the canary, Vault, the source kinds."""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.config.models import Config, KeyConfig
from sidecar.credentials.rotation import CanaryResult, Rotation, RotationListener, canary_verdict
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.credentials.sources.base import Source, SourceContext
from sidecar.gate.clock import Clock
from sidecar.gate.signing import signed_headers
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest
from sidecar.runtime.selfcheck import SelfCheck, SelfCheckedSource
from sidecar.vault.session import VaultSession


class SecretFactory:
    """Builds a key's (slot, source) pair; owns the Vault session the sources share."""

    def __init__(
        self,
        environ: Mapping[str, str],
        forwarder: Forwarder,
        clock: Clock,
        listeners: list[RotationListener],
    ) -> None:
        self.environ = environ
        self.forwarder = forwarder
        self.clock = clock
        self.listeners = listeners  # told of every install, rotation, refusal and revocation
        self._vault: VaultSession | None = None

    @property
    def vault(self) -> VaultSession | None:
        return self._vault

    async def ensure_vault(self, config: Config) -> None:
        """Open the Vault session if a key of ``config`` needs one and none is open yet."""
        if self._vault is not None or not config.uses_vault:
            return
        assert config.vault is not None  # the config requires the section for Vault sources
        vault = VaultSession(config.vault, environ=self.environ)
        await vault.start()  # never blocks on Vault: listeners open at once
        self._vault = vault

    def rotation_for(self, key: KeyConfig, check: SelfCheck | None = None) -> Rotation:
        """A rotation whose canary (if the key keeps it on) is one signed read-only call, and
        whose new pairs pass the self-check first (when the key asks for it)."""
        if not key.canary.enabled:
            rotation = Rotation(None)
        else:
            path = key.canary.path

            async def canary(name: str, creds: Credentials) -> CanaryResult:
                auth = await signed_headers(
                    creds.signer, creds.api_key, "GET", path, "", b"", self.clock.now()
                )
                headers = [("Accept", "application/json"), *auth.items()]
                request = UpstreamRequest("GET", path, "", headers, b"")
                try:
                    resp = await self.forwarder.send(request)
                except Exception as exc:  # network trouble: keep the old pair, try again later
                    return CanaryResult(False, f"canary call failed: {type(exc).__name__}")
                return canary_verdict(resp.status, resp.gate_label())

            rotation = Rotation(canary)
        rotation.vet = None if check is None else check.vet
        rotation.listeners.extend(self.listeners)
        return rotation

    def build(self, key: KeyConfig) -> tuple[KeySlot, Source]:
        """A new, empty slot and the (not yet running) source that fills it."""
        slot = KeySlot(key.name, key.max_stale_s)
        context = SourceContext(self.environ, self._vault)
        spec = key.source.spec
        check = (
            SelfCheck(key.compile_policy(), self.forwarder, self.clock) if key.self_check else None
        )
        rotation = self.rotation_for(key, check)
        source = key.source.source_kind.build(spec, slot, rotation, context)
        return slot, source if check is None else SelfCheckedSource(source, check)

    async def close(self) -> None:
        if self._vault is not None:
            await self._vault.close()
            self._vault = None
