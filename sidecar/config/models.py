"""The configuration file's schema, assembled from the sections each part declares.

The parts below this layer own their settings model next to their code (``upstream`` in
:mod:`sidecar.proxy.forwarder`, ``vault`` in :mod:`sidecar.vault.settings`, each auth method in
:mod:`sidecar.vault.auth`, each source kind in :mod:`sidecar.credentials.sources`); this module
adds the sections read by the layers above it (keys and their policy, admin, server, logging,
clock) and puts them together. Parsed once by
:mod:`sidecar.config.loading` and passed down; nothing reads it at import time.

The file never holds a secret: sources only say *where* a secret lives. That is what makes it safe
for validation errors to quote the offending value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from sidecar.config.guards import GuardsConfig
from sidecar.config.listen import ListenAddress, parse_listen
from sidecar.credentials.sources.base import SourceKind
from sidecar.credentials.sources.registry import BY_NAME as SOURCE_KINDS
from sidecar.gate.headers import forwardable_extra
from sidecar.policy.engine import Policy, compile_policy
from sidecar.policy.globs import METHODS as GATE_METHODS
from sidecar.policy.globs import validate_glob
from sidecar.policy.mode import Mode
from sidecar.policy.presets import PRESET_NAMES
from sidecar.proxy.admission import Admission, ClientAuthConfig
from sidecar.proxy.budget.settings import RateLimitConfig
from sidecar.proxy.deadman.settings import GATE_MIN_TIMEOUT_S, DeadManConfig
from sidecar.proxy.forwarder import UpstreamConfig
from sidecar.proxy.limits import ListenerLimits
from sidecar.proxy.ws_settings import KeyWsConfig
from sidecar.settings import PositiveSeconds, Strict, refuse_removed
from sidecar.vault.settings import VaultConfig

KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
HOST_NAME = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
METHODS = (*GATE_METHODS, "*")
GATE_HOSTS = ("gateio.ws", "gate.io", "gate.com")  # upstreams whose countdown minimum is Gate's


def _check_key_name(value: str) -> str:
    if not KEY_NAME.fullmatch(value):
        raise ValueError(f"must match [a-z0-9][a-z0-9_-]*, got {value!r}")
    return value


# A key's name (the sidecar's keys, the key manager's accounts): it goes into metric labels,
# audit lines and Gate key names, hence the small alphabet.
KeyName = Annotated[str, AfterValidator(_check_key_name)]


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


Listen = Annotated[str, AfterValidator(_check_listen)]


class AdminConfig(Strict):
    listen: Listen = "127.0.0.1:9901"
    allow_remote: bool = False
    # When set, GET /metrics needs `Authorization: Bearer <the file's content>` (re-read when the
    # file changes); /healthz and /readyz stay open for probes.
    metrics_token_file: Path | None = None


class LoggingConfig(Strict):
    format: Literal["json", "text"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"
    audit: bool = True


class ClockConfig(Strict):
    """Signing with Gate's clock (sidecar.ops.clocksync)."""

    sync: bool = True
    interval_s: PositiveSeconds = 300.0
    warn_offset_s: PositiveSeconds = 5.0


class ServerConfig(ListenerLimits):
    """``server:``: the body limit, the shutdown grace and every listener's limits."""

    max_body_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 10.0
    # auto: uvloop when it is installed (pip install 'gate-sidecar[fast]'), else asyncio's loop.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: object) -> object:
        why = "every key listener is the lean one, WebSocket upgrades included"
        return refuse_removed(data, "server", {"listener": why})


# -- sources -----------------------------------------------------------------------------


class _SourceBase(Strict):
    """``source:``: exactly one of the registered kinds (sidecar.credentials.sources.registry)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> _SourceBase:
        if len([name for name in SOURCE_KINDS if getattr(self, name)]) != 1:
            raise ValueError(f"set exactly one of {', '.join(SOURCE_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in SOURCE_KINDS if getattr(self, name))

    @property
    def source_kind(self) -> SourceKind[Any]:
        return SOURCE_KINDS[self.kind]

    @property
    def spec(self) -> Strict:
        spec: Strict = getattr(self, self.kind)
        return spec


if TYPE_CHECKING:
    SourceConfig = _SourceBase
else:
    # One optional field per registered kind, so pydantic reports errors at their real location
    # (`keys[0].source.vault.path`).
    SourceConfig = create_model(
        "SourceConfig",
        __base__=_SourceBase,
        **{name: (kind.spec | None, None) for name, kind in SOURCE_KINDS.items()},
    )


# -- policy ------------------------------------------------------------------------------


class RuleConfig(Strict):
    methods: list[str] = Field(min_length=1)
    path: str

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        upper = [m.upper() for m in value]
        bad = [m for m in upper if m not in METHODS]
        if bad:
            raise ValueError(f"unknown method {bad[0]!r} (use {', '.join(METHODS)})")
        return upper

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        problem = validate_glob(value)
        if problem:
            raise ValueError(f"{problem}, got {value!r}")
        return value


def _check_preset(name: str) -> str:
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESET_NAMES)})")
    return name


PresetName = Annotated[str, AfterValidator(_check_preset)]


class PolicyConfig(Strict):
    presets: list[PresetName] = []
    allow: list[RuleConfig] = []
    deny: list[RuleConfig] = []


def _policy_shorthand(value: Any) -> Any:
    # `policy: read-only` is shorthand for `policy: {presets: [read-only]}`.
    return {"presets": [value]} if isinstance(value, str) else value


# A key's policy (the sidecar's keys, the key manager's accounts), a preset's name allowed alone.
PolicyField = Annotated[PolicyConfig, BeforeValidator(_policy_shorthand)]


class CanaryConfig(Strict):
    enabled: bool = True
    path: str = "/api/v4/account/detail"


def _check_host_name(value: str) -> str:
    if not HOST_NAME.fullmatch(value):
        raise ValueError(f"must be a host name or address without a port, got {value!r}")
    return value.lower()


def _check_forward_header(value: str) -> str:
    if not HEADER_NAME.fullmatch(value):
        raise ValueError(f"not a header name: {value!r}")
    problem = forwardable_extra(value)
    if problem is not None:
        raise ValueError(problem)
    return value


HostName = Annotated[str, AfterValidator(_check_host_name)]
ForwardHeader = Annotated[str, AfterValidator(_check_forward_header)]


class KeyConfig(Strict):
    name: KeyName
    listen: Listen
    source: SourceConfig
    policy: PolicyField
    allow_remote: bool = False
    allow_withdrawals: bool = False
    max_stale_s: PositiveSeconds | None = None
    socket_mode: str = "0660"
    socket_group: str | None = None
    canary: CanaryConfig = CanaryConfig()
    guards: GuardsConfig = GuardsConfig()  # trading guards (sidecar.policy.guards)
    rate_limit: RateLimitConfig | None = None  # rate budgets (sidecar.proxy.budget); off if unset
    self_check: bool = False  # ask Gate what the key may do (sidecar.runtime.selfcheck)
    ws: KeyWsConfig = KeyWsConfig()
    client_auth: ClientAuthConfig = ClientAuthConfig()
    allowed_hosts: list[HostName] = []
    forward_headers: list[ForwardHeader] = []
    # Trading safety over time (docs/trading-safety.md): warn forwards what the policy, a guard
    # or a window would refuse; dead_man keeps Gate's countdown_cancel_all armed.
    mode: Mode = Mode.ENFORCE
    dead_man: DeadManConfig | None = None

    @field_validator("socket_mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError(f"must be an octal mode such as 0660, got {value!r}")
        return value

    @property
    def address(self) -> ListenAddress:
        return parse_listen(self.listen)

    def admission(self) -> Admission:
        """This key's request admission rules (reads the token file: OSError if it cannot)."""
        return Admission.build(self.client_auth, self.allowed_hosts, self.forward_headers)

    def compile_policy(self) -> Policy:
        """This key's policy engine (the globs were validated with the config)."""
        return compile_policy(self.name, self.policy, allow_withdrawals=self.allow_withdrawals)


class Config(Strict):
    upstream: UpstreamConfig = UpstreamConfig()
    admin: AdminConfig = AdminConfig()
    server: ServerConfig = ServerConfig()
    logging: LoggingConfig = LoggingConfig()
    clock: ClockConfig = ClockConfig()
    vault: VaultConfig | None = None
    keys: list[KeyConfig] = Field(min_length=1)

    def key(self, name: str) -> KeyConfig:
        return next(k for k in self.keys if k.name == name)

    @model_validator(mode="after")
    def _dead_man_on_gate(self) -> Config:
        host = self.upstream.base_url.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        if host.endswith(GATE_HOSTS):
            for i, key in enumerate(self.keys):
                if key.dead_man is not None and key.dead_man.timeout_s < GATE_MIN_TIMEOUT_S:
                    raise ValueError(
                        f"keys[{i}].dead_man.timeout_s: Gate's countdown needs at least "
                        f"{GATE_MIN_TIMEOUT_S} s, got {key.dead_man.timeout_s}"
                    )
        return self

    @property
    def uses_vault(self) -> bool:
        return any(k.source.source_kind.needs_vault for k in self.keys)
