"""Builds the source a key's config names. The one place that knows every source kind."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sidecar.config.models import Config, EnvSource, FileSource, KeyConfig
from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import KeySlot
from sidecar.credentials.sources.base import Source
from sidecar.credentials.sources.env import EnvCredentials
from sidecar.credentials.sources.file import FileCredentials

if TYPE_CHECKING:
    from sidecar.vault.session import VaultSession


@dataclass
class SourceContext:
    config: Config
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    vault: VaultSession | None = None


def uses_vault(config: Config) -> bool:
    return any(k.source.kind in ("vault", "vault_transit") for k in config.keys)


def build_source(key: KeyConfig, slot: KeySlot, rotation: Rotation, ctx: SourceContext) -> Source:
    spec = key.source.spec
    if isinstance(spec, EnvSource):
        return EnvCredentials(slot, rotation, spec, ctx.environ)
    if isinstance(spec, FileSource):
        return FileCredentials(slot, rotation, spec)
    if ctx.vault is None or ctx.config.vault is None:
        raise ValueError(f"key {key.name}: a {key.source.kind} source needs a Vault session")
    if key.source.kind == "vault":
        from sidecar.credentials.sources.vault_kv import VaultKV

        assert key.source.vault is not None
        source: Source = VaultKV(
            slot, rotation, key.source.vault, ctx.vault, ctx.config.vault.refresh_interval_s
        )
        return source
    if key.source.kind == "vault_transit":
        from sidecar.credentials.sources.vault_transit import VaultTransit

        assert key.source.vault_transit is not None
        return VaultTransit(
            slot,
            rotation,
            key.source.vault_transit,
            ctx.vault,
            ctx.config.vault.refresh_interval_s,
        )
    raise ValueError(f"key {key.name}: unknown source kind {key.source.kind}")
