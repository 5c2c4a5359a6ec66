"""The injector's config file (``gate-sidecar injector --config injector.yaml``).

A pod names a profile; the profile, defined here and nowhere in the pod, says which namespaces and
service accounts may use it and which ConfigMap holds the sidecar config (keys, presets, guards)
its pods get. A bot's author therefore cannot widen their own policy: only whoever writes this
file can.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sidecar.errors import ConfigError

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(pattern=DNS_LABEL, max_length=253)]
Wildcard = Literal["*"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Allowed(_Strict):
    """Who may use a profile: both lists must match (``"*"`` matches any)."""

    namespaces: list[Name | Wildcard] = Field(min_length=1)
    service_accounts: list[Name | Wildcard] = Field(min_length=1)


class VaultToken(_Strict):
    """The projected service-account token the sidecar logs in to Vault with (the chart's
    vault.audience and vault.tokenExpirationSeconds)."""

    audience: str = Field(default="vault", min_length=1)
    expiration_seconds: int = Field(default=600, ge=600)


class Profile(_Strict):
    allowed: Allowed
    config_configmap: Name
    vault_token: VaultToken = VaultToken()
    # What the bot's containers get as GATE_API_HOST: the profile config's key listener.
    api_host: str = Field(default="http://127.0.0.1:8081", pattern=r"^(https?://|unix:/)")


class TLSFiles(_Strict):
    cert_file: Path
    key_file: Path


class SelfManagedTLS(_Strict):
    """A certificate the injector makes and renews itself, publishing its CA in the webhook's
    caBundle (the MutatingWebhookConfiguration named ``webhook``)."""

    service: Name
    namespace: Name
    webhook: Name
    dir: Path = Path("/tmp/gate-sidecar-injector-tls")  # noqa: S108 (an emptyDir in the pod)
    valid_days: int = Field(default=365, ge=1)
    renew_before_days: int = Field(default=30, ge=1)
    check_interval_s: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _renew_inside_validity(self) -> SelfManagedTLS:
        if self.renew_before_days >= self.valid_days:
            raise ValueError("renew_before_days must be less than valid_days")
        return self


class TLS(_Strict):
    cert_file: Path | None = None
    key_file: Path | None = None
    self_managed: SelfManagedTLS | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TLS:
        files = self.cert_file is not None and self.key_file is not None
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set cert_file and key_file together")
        if files == (self.self_managed is not None):
            raise ValueError("set cert_file and key_file, or self_managed, not both")
        return self


class InjectorConfig(_Strict):
    listen: str = "0.0.0.0:8443"
    tls: TLS
    image: str = Field(min_length=1)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    profiles: dict[Name, Profile] = Field(min_length=1)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port")
        return value


def parse_injector_config(data: object) -> InjectorConfig:
    try:
        return InjectorConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
                for err in exc.errors()
            ]
        ) from None


def load_injector_config(path: str | Path) -> InjectorConfig:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    return parse_injector_config(data)
