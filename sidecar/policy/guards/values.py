"""The values the guards judge with: a key's limits, market quotes, and a refusal. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sidecar.policy.guards.shapes import Product


@dataclass(frozen=True)
class Refusal:
    guard: str  # the guard's config name: max_order_size, instruments, cancel_only...
    message: str


@dataclass(frozen=True)
class Limits:
    """A key's guards, as plain values (built from ``keys[].guards``)."""

    instruments: frozenset[str] | None = None
    settle: frozenset[str] | None = None
    allow_unscoped: bool = False
    max_order_size: Decimal | None = None
    max_notional: Decimal | None = None
    max_leverage: Decimal | None = None
    reduce_only: bool = False
    order_types: frozenset[str] | None = None
    time_in_force: frozenset[str] | None = None

    @property
    def active(self) -> bool:
        """Whether any guard (other than the cancel-only brake) applies."""
        return (
            any(
                v is not None
                for v in (
                    self.instruments,
                    self.settle,
                    self.max_order_size,
                    self.max_notional,
                    self.max_leverage,
                    self.order_types,
                    self.time_in_force,
                )
            )
            or self.reduce_only
        )


@dataclass(frozen=True)
class QuoteKey:
    product: Product
    settle: str | None
    instrument: str


@dataclass(frozen=True)
class Need:
    last: bool  # the last traded price (ticker)
    contract: bool  # the contract's multiplier (contract info)


@dataclass(frozen=True)
class Quote:
    last: Decimal | None = None
    multiplier: Decimal | None = None
    inverse: bool = False  # an inverse contract: one contract is worth one unit of quote
    problem: str = ""  # why a value is missing ("ticker unavailable: HTTP 502")


def fmt(value: Decimal) -> str:
    """A number as messages show it: ``250``, ``0.0001`` (never ``2.5E+2``)."""
    return format(value.normalize(), "f")
