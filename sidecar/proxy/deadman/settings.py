"""``keys[].dead_man``: the dead-man switch's settings (:mod:`sidecar.proxy.deadman`)."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from sidecar.settings import Strict

GATE_MIN_TIMEOUT_S = 5  # Gate refuses a countdown below 5 s (0 disarms)

_SCOPE = re.compile(r"spot|options|futures/[a-z0-9]+")


class Alive(Enum):
    TRAFFIC = "traffic"  # any request or frame of the bot that passes client authentication
    HEARTBEAT = "heartbeat"  # only POST /sidecar/v1/heartbeat on the key's listener


class OnShutdown(Enum):
    CANCEL = "cancel"  # leave the countdown armed: Gate cancels when it runs out
    KEEP = "keep"  # disarm every scope on a clean stop (SIGTERM), so the orders stay


def _check_scope(value: str) -> str:
    if not _SCOPE.fullmatch(value):
        raise ValueError(
            f"unknown scope {value!r} (spot, options or futures/<settle>, "
            "settle in lower case, such as futures/usdt)"
        )
    return value


Scope = Annotated[str, AfterValidator(_check_scope)]


class DeadManConfig(Strict):
    # Gate's minimum is 5 s: the config refuses less when the upstream is Gate's (the test
    # exchange can allow less for tests, see docs/trading-safety.md).
    timeout_s: Annotated[int, Field(ge=1, le=86400)]
    scopes: Annotated[list[Scope], Field(min_length=1)]
    alive: Alive = Alive.TRAFFIC
    on_shutdown: OnShutdown = OnShutdown.CANCEL

    @field_validator("scopes")
    @classmethod
    def _once(cls, value: list[str]) -> list[str]:
        twice = sorted({s for s in value if value.count(s) > 1})
        if twice:
            raise ValueError(f"scope {twice[0]!r} is listed twice")
        return value

    @property
    def rearm_s(self) -> float:
        """The re-arm interval: a third of the timeout."""
        return self.timeout_s / 3
