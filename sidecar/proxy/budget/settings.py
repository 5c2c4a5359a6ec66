"""``keys[].rate_limit``: the key's rate budgets (:mod:`sidecar.proxy.budget`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from sidecar.gate.ratelimits import GROUPS_BY_NAME
from sidecar.settings import NOT_SHOWN, PositiveSeconds, Strict


class GroupOverride(Strict):
    group: str
    limit: Annotated[int, Field(ge=1)]
    per_s: PositiveSeconds

    @field_validator("group")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in GROUPS_BY_NAME:
            raise ValueError(f"unknown group {value!r} (known: {', '.join(GROUPS_BY_NAME)})")
        return value


class RateLimitConfig(Strict):
    gate_defaults: bool = True  # Gate's published per-UID limits, per endpoint group
    overrides: list[GroupOverride] = []
    shared: str | None = None  # redis://host:6379/0: one budget for every replica
    shared_password_file: Path | None = None  # Redis AUTH password (never in this file)
    shared_username_file: Path | None = None  # Redis 6+ ACL user; needs the password file
    replicas: Annotated[int, Field(ge=1)] = 1  # each one's share when Redis is unreachable
    redis_timeout_s: PositiveSeconds = 0.25  # per Redis call; past it the local share serves

    @field_validator("shared")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        # The config file never holds a secret (it is quoted in errors and check-config).
        if "@" in value.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError(
                "must not hold credentials (user:password@): the file is no place for a secret; "
                "give them in shared_password_file (and shared_username_file) " + NOT_SHOWN
            )
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.shared is None and self.shared_password_file is not None:
            raise ValueError("shared_password_file needs shared (a Redis URL)")
        if self.shared_username_file is not None and self.shared_password_file is None:
            raise ValueError("shared_username_file needs shared_password_file")
        return self

    @field_validator("overrides")
    @classmethod
    def _once(cls, value: list[GroupOverride]) -> list[GroupOverride]:
        seen = [o.group for o in value]
        twice = sorted({g for g in seen if seen.count(g) > 1})
        if twice:
            raise ValueError(f"group {twice[0]!r} is overridden twice")
        return value
