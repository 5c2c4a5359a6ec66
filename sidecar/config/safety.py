"""``keys[].guards.windows``: the rolling windows' settings (:mod:`sidecar.policy.windows`,
counted by :mod:`sidecar.proxy.windows`). ``mode`` and ``dead_man`` sit on the key itself
(:mod:`sidecar.policy.mode`, :mod:`sidecar.proxy.deadman.settings`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from sidecar.settings import PositiveSeconds, Strict

Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


class WindowConfig(Strict):
    """``{per_s, max_orders and/or max_notional, instruments?}``."""

    per_s: PositiveSeconds
    max_orders: Annotated[int, Field(ge=1)] | None = None
    max_notional: Positive | None = None  # quote currency, as the max_notional guard
    instruments: Annotated[list[str], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _a_limit(self) -> Self:
        if self.max_orders is None and self.max_notional is None:
            raise ValueError("set max_orders, max_notional or both")
        return self

    @field_validator("instruments")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not name or name != name.strip() or "/" in name:
                raise ValueError(f"{name!r} is not a Gate market name")
        return value


OrderTtl = Annotated[int, Field(ge=1, le=3_600_000)]  # milliseconds
