"""The ``vault:`` section of the config file."""

from __future__ import annotations

from pathlib import Path

from sidecar.settings import PositiveSeconds, Strict
from sidecar.vault.auth import VaultAuth
from sidecar.vault.auth.token import TokenAuth


class VaultConfig(Strict):
    address: str | None = None  # default: $VAULT_ADDR, resolved when the config is loaded
    namespace: str | None = None
    ca_file: Path | None = None
    refresh_interval_s: PositiveSeconds = 30.0
    timeout_s: PositiveSeconds = 10.0
    auth: VaultAuth = TokenAuth()
