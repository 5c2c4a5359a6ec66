"""``keys[].guards``: the trading guards' settings (enforced by :mod:`sidecar.policy.guards`).

Every guard is off until set; ``cancel_only`` is the emergency brake's configured state (the
admin listener and SIGUSR1 switch it at run time, see ``docs/guards.md``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, field_validator

from sidecar.config.safety import OrderTtl, WindowConfig
from sidecar.gate.endpoints import BY_NAME, PREFIX
from sidecar.settings import Strict

Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
Names = Annotated[list[str], Field(min_length=1)]


class GuardsConfig(Strict):
    instruments: Names | None = None  # currency_pair / contract names, exact
    settle: Names | None = None  # futures / delivery settle currencies (usdt, btc)
    allow_unscoped: bool = False  # listing and cancel-all calls that name no instrument
    max_order_size: Positive | None = None  # contracts; spot: base currency amount
    max_notional: Positive | None = None  # price x size (x multiplier), quote currency
    max_leverage: Positive | None = None
    reduce_only: bool = False  # every futures, delivery and options order must reduce
    order_types: Annotated[list[Literal["limit", "market"]], Field(min_length=1)] | None = None
    time_in_force: (
        Annotated[list[Literal["gtc", "ioc", "poc", "fok"]], Field(min_length=1)] | None
    ) = None
    max_price_deviation_pct: Positive | None = None  # limit price vs the last trade, either side
    # Writes no guard reads that this key may still make ("POST /api/v4/flash_swap/orders"):
    # without an entry, they are refused while any guard is set.
    allow_unread: Names | None = None
    cancel_only: bool = False
    # Trading safety over time (sidecar.config.safety, docs/trading-safety.md).
    windows: list[WindowConfig] = []  # rolling limits over placed orders
    order_ttl_ms: OrderTtl | None = None  # x-gate-exptime on order placements

    @field_validator("instruments", "settle")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not name or name != name.strip() or "/" in name:
                raise ValueError(f"{name!r} is not a Gate market or settle name")
        return value

    @field_validator("settle")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(v != v.lower() for v in value):
            raise ValueError("settle currencies are lower case in Gate's paths (usdt, btc)")
        return value

    @field_validator("allow_unread")
    @classmethod
    def _endpoints(cls, value: list[str] | None) -> list[str] | None:
        for entry in value or []:
            template = BY_NAME.get(entry)
            if template is None:
                raise ValueError(
                    f"{entry!r} is not one of Gate's endpoints: write it as METHOD and path "
                    f'template, e.g. "POST {PREFIX}/flash_swap/orders" or '
                    f'"PUT {PREFIX}/crossex/orders/{{order_id}}"{_near(entry)}'
                )
            if template.method == "GET":
                raise ValueError(f"{entry!r} is a read: the guards never refuse reads")
        return value


def _near(entry: str) -> str:
    """A hint naming the catalogued templates a wrong entry's method and path match."""
    method, _, path = entry.partition(" ")
    method = method.upper()
    for name, template in BY_NAME.items():
        if template.method == method and template.params(path.strip()) is not None:
            return f" (did you mean {name!r}?)"
    return ""
