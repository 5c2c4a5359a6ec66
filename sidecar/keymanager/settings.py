"""The key manager's own config file (``gate-sidecar keys --config``).

Its own file, because the manager runs under another Vault identity than the sidecars: it may
write the stores the sidecars only read, and it holds the one main-account key allowed to manage
sub-account keys. Sections reuse the sidecar's models where the meaning is the same: ``gate`` is
the sidecar's ``upstream`` (base_url, ca_file, timeouts), ``vault`` the same section, the main
key's ``source`` any registered source kind, a store the KV or transit source a sidecar reads.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from sidecar.config.models import KeyName, Listen, LoggingConfig, PolicyField, SourceConfig
from sidecar.credentials.sources.vault_kv import VaultKVSource
from sidecar.credentials.sources.vault_transit import VaultTransitSource
from sidecar.keymanager.perms import PERM_NAMES
from sidecar.proxy.forwarder import UpstreamConfig
from sidecar.settings import Strict
from sidecar.vault.settings import VaultConfig

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: Any) -> float:
    """Seconds from ``7d``, ``10m``, ``2h``, ``30s``, ``250ms`` (or a plain number of seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := DURATION.fullmatch(value.strip())):
        seconds = float(m.group(1)) * UNITS[m.group(2)]
    else:
        raise ValueError("must be a duration such as 90s, 10m, 2h or 7d")
    if seconds <= 0:
        raise ValueError("must be more than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"Gate's whitelist takes IPv4 addresses only, got {value!r}") from None


class PermConfig(Strict):
    name: Literal[PERM_NAMES]  # type: ignore[valid-type]
    read_only: bool = True


class StoreConfig(Strict):
    """Where the bot's sidecar reads the pair: exactly one of ``vault`` and ``vault_transit``."""

    vault: VaultKVSource | None = None
    vault_transit: VaultTransitSource | None = None

    @model_validator(mode="after")
    def _one(self) -> StoreConfig:
        if (self.vault is None) == (self.vault_transit is None):
            raise ValueError("set exactly one of vault and vault_transit")
        if self.vault is not None and self.vault.kv_version != 2:
            raise ValueError("vault.kv_version: the manager writes KV v2 (new versions) only")
        if self.vault_transit is not None and self.vault_transit.api_key_path is None:
            raise ValueError(
                "vault_transit.api_key_path: required (each rotation writes the new API key there)"
            )
        return self


class AccountConfig(Strict):
    name: KeyName
    user_id: Annotated[int, Field(ge=1)]
    store: StoreConfig
    mode: Literal[1, 2] = 1
    policy: PolicyField
    perms: list[PermConfig] | None = None  # default: the least the policy needs
    ip_whitelist: list[Annotated[str, AfterValidator(_ipv4)]] = Field(default=[], max_length=20)
    allow_no_ip_whitelist: bool = False
    rotate_every: Duration = 7 * 86400.0
    activation_timeout: Duration = 600.0
    retire_idle: Duration = 600.0
    retire_max_wait: Duration = 7200.0
    store_timeout: Duration = 600.0  # how long a sealed Vault may hold a minted key in memory

    @model_validator(mode="after")
    def _whitelist(self) -> AccountConfig:
        if not self.ip_whitelist and not self.allow_no_ip_whitelist:
            raise ValueError(
                "ip_whitelist: required (Gate expires keys without one after 90 days); "
                "set allow_no_ip_whitelist: true to go without"
            )
        if self.retire_max_wait < self.retire_idle:
            raise ValueError("retire_max_wait must be at least retire_idle")
        return self

    @property
    def key_prefix(self) -> str:
        """Every key this manager mints for the account is named ``gs-<account>-<generation>``."""
        return f"gs-{self.name}-"


class ManagerAdmin(Strict):
    listen: Listen = "127.0.0.1:9911"
    allow_remote: bool = False  # it serves no secret; in a pod the probes need the pod IP


class MainKeyConfig(Strict):
    source: SourceConfig


class StateConfig(Strict):
    """Where the manager keeps its progress and its lock (KV v2; its own identity writes it)."""

    mount: str = "secret"
    path: str = "gate-key-manager"


class ManagerConfig(Strict):
    gate: UpstreamConfig = UpstreamConfig()
    vault: VaultConfig
    admin: ManagerAdmin = ManagerAdmin()
    main_key: MainKeyConfig
    state: StateConfig = StateConfig()
    logging: LoggingConfig = LoggingConfig()
    check_interval: Duration = 60.0  # how often each account is looked at (drift, due, retire)
    lock_ttl: Duration = 30.0  # a manager that stops renewing loses the lock after this
    gate_rate: tuple[int, Duration] = (80, 10.0)  # Gate's sub-account limit: 80 per 10 s
    gate_retry_for: Duration = 60.0  # how long a failing Gate call is retried (429, 5xx, timeouts)
    accounts: list[AccountConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ManagerConfig:
        names = [a.name for a in self.accounts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"accounts: duplicate name {dupes[0]!r}")
        return self

    def account(self, name: str) -> AccountConfig | None:
        return next((a for a in self.accounts if a.name == name), None)
