"""The configuration file: pydantic models, parsed once and passed down.

The file never holds a secret: sources only say *where* a secret lives. That is what makes it safe
for validation errors to quote the offending value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sidecar.config.listen import ListenAddress, parse_listen
from sidecar.errors import ConfigError
from sidecar.policy import presets
from sidecar.policy.presets import PRESET_NAMES

KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
METHODS = (*presets.METHODS, "*")
K8S_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


Listen = Annotated[str, AfterValidator(_check_listen)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class UpstreamConfig(Strict):
    base_url: str = "https://api.gateio.ws"
    connect_timeout_s: PositiveSeconds = 5.0
    timeout_s: PositiveSeconds = 30.0
    ca_file: Path | None = None
    max_connections: Annotated[int, Field(ge=1)] = 100

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        m = re.fullmatch(r"(https?)://([^/?#\s]+)/?", value)
        if not m:
            raise ValueError(
                "must be scheme://host[:port] with no path (request paths keep /api/v4)"
            )
        return value.rstrip("/")


class AdminConfig(Strict):
    listen: Listen = "127.0.0.1:9901"
    allow_remote: bool = False


class ServerConfig(Strict):
    max_body_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 10.0


class LoggingConfig(Strict):
    format: Literal["json", "text"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"
    audit: bool = True


class ClockConfig(Strict):
    sync: bool = True
    interval_s: PositiveSeconds = 300.0
    warn_offset_s: PositiveSeconds = 5.0


# -- Vault -------------------------------------------------------------------------------


class TokenAuth(Strict):
    method: Literal["token"] = "token"
    token_file: Path | None = None  # default: $VAULT_TOKEN


class AppRoleAuth(Strict):
    method: Literal["approle"]
    mount: str = "approle"
    role_id: str | None = None
    role_id_file: Path | None = None
    secret_id_file: Path

    @model_validator(mode="after")
    def _one_role_id(self) -> AppRoleAuth:
        if (self.role_id is None) == (self.role_id_file is None):
            raise ValueError("set exactly one of role_id and role_id_file")
        return self


class KubernetesAuth(Strict):
    method: Literal["kubernetes"]
    role: str
    mount: str = "kubernetes"
    jwt_file: Path = K8S_TOKEN


VaultAuth = Annotated[TokenAuth | AppRoleAuth | KubernetesAuth, Field(discriminator="method")]


class VaultConfig(Strict):
    address: str | None = None  # default: $VAULT_ADDR, resolved by load_config
    namespace: str | None = None
    ca_file: Path | None = None
    refresh_interval_s: PositiveSeconds = 30.0
    timeout_s: PositiveSeconds = 10.0
    auth: VaultAuth = TokenAuth()


# -- sources -----------------------------------------------------------------------------


class EnvSource(Strict):
    key_var: str = "GATE_KEY"
    secret_var: str = "GATE_SECRET"  # noqa: S105 - a variable name, not a secret


class FileSource(Strict):
    path: Path
    poll_interval_s: PositiveSeconds = 2.0


class VaultKVSource(Strict):
    path: str
    mount: str = "secret"
    kv_version: Literal[1, 2] = 2
    key_field: str = "key"
    secret_field: str = "secret"  # noqa: S105 - a field name


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


SourceSpec = EnvSource | FileSource | VaultKVSource | VaultTransitSource


class SourceConfig(Strict):
    env: EnvSource | None = None
    file: FileSource | None = None
    vault: VaultKVSource | None = None
    vault_transit: VaultTransitSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceConfig:
        kinds = [k for k in ("env", "file", "vault", "vault_transit") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("set exactly one of env, file, vault, vault_transit")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("env", "file", "vault", "vault_transit") if getattr(self, k))

    @property
    def spec(self) -> SourceSpec:
        spec: SourceSpec = getattr(self, self.kind)
        return spec


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
        problem = presets.validate_glob(value)
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


class CanaryConfig(Strict):
    enabled: bool = True
    path: str = "/api/v4/account/detail"


class KeyConfig(Strict):
    name: str
    listen: Listen
    source: SourceConfig
    policy: PolicyConfig
    allow_remote: bool = False
    allow_withdrawals: bool = False
    max_stale_s: PositiveSeconds | None = None
    socket_mode: str = "0660"
    canary: CanaryConfig = CanaryConfig()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not KEY_NAME.fullmatch(value):
            raise ValueError(f"must match [a-z0-9][a-z0-9_-]*, got {value!r}")
        return value

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_shorthand(cls, value: Any) -> Any:
        # `policy: read-only` is shorthand for `policy: {presets: [read-only]}`.
        return {"presets": [value]} if isinstance(value, str) else value

    @field_validator("socket_mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError(f"must be an octal mode such as 0660, got {value!r}")
        return value

    @property
    def address(self) -> ListenAddress:
        return parse_listen(self.listen)


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


# -- loading -----------------------------------------------------------------------------


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part:
            continue  # pydantic's own wrappers, e.g. `function-after[_check_listen(), str]`
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = ""
        if err["type"] == "missing":
            msg = "required field is missing"
        elif isinstance(value, str | int | float | bool) and repr(value) not in msg:
            shown = f" (got {value!r})"
        problems.append(f"{_loc(err['loc'])}: {msg}{shown}")
    return problems


def _cross_checks(cfg: Config) -> list[str]:
    """Problems that span several fields: duplicates, exposure, missing sections."""
    problems: list[str] = []
    claimed: dict[str, str] = {}  # "port 8081" or a socket path -> the field that took it

    def claim(addr: ListenAddress, field: str, raw: str) -> None:
        if addr.port == 0:  # any free port (tests): never a clash
            return
        ident = addr.path if addr.path is not None else f"port {addr.port}"
        if ident in claimed:
            problems.append(f"{field}: {raw!r} is already used by {claimed[ident]}")
        else:
            claimed[ident] = field

    admin = parse_listen(cfg.admin.listen)
    claim(admin, "admin.listen", cfg.admin.listen)
    if not admin.is_loopback and not cfg.admin.allow_remote:
        problems.append(
            f"admin.listen: {cfg.admin.listen!r} is not loopback; set admin.allow_remote: true"
        )
    first_index: dict[str, int] = {}
    for i, key in enumerate(cfg.keys):
        where = f"keys[{i}]"
        if key.name in first_index:
            first = first_index[key.name]
            problems.append(f"{where}.name: duplicate key name {key.name!r} (also keys[{first}])")
        first_index.setdefault(key.name, i)
        claim(key.address, f"{where}.listen", key.listen)
        if not key.address.is_loopback and not key.allow_remote:
            problems.append(
                f"{where}.listen: {key.listen!r} is not a loopback address or unix socket; "
                "set allow_remote: true only if you understand that anyone who can reach it "
                "trades with this key"
            )
        if key.source.kind in ("vault", "vault_transit") and cfg.vault is None:
            problems.append(f"{where}.source: a {key.source.kind} source needs a vault: section")
        if not (key.policy.presets or key.policy.allow):
            problems.append(f"{where}.policy: allows nothing (name a preset or an allow rule)")
    return problems


def parse_config(data: Any, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed YAML/JSON document; raise ConfigError with one line per problem."""
    environ = os.environ if environ is None else environ
    if not isinstance(data, dict):
        raise ConfigError(["(top level): the config must be a mapping"])
    vault = data.get("vault")
    if isinstance(vault, dict) and not vault.get("address") and environ.get("VAULT_ADDR"):
        data = {**data, "vault": {**vault, "address": environ["VAULT_ADDR"]}}
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    problems = _cross_checks(cfg)
    if cfg.vault is not None and not cfg.vault.address:
        problems.append("vault.address: not set and $VAULT_ADDR is empty")
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            [f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_config(data, environ)
