"""The values the guards judge with: a key's limits, market quotes, a refusal and a decision.
Pure."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from sidecar.policy.guards.shapes import Product


class Verdict(Enum):
    """What the guards make of a call."""

    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    DENY = "deny"  # a guard's limit refuses it (403 SIDECAR_GUARD_DENIED)
    UNREAD = "unread"  # an endpoint no guard can read, not opted in (403 SIDECAR_GUARD_UNREAD)
    AMBIGUOUS = "ambiguous"  # Gate could read the request two ways (400 SIDECAR_GUARD_AMBIGUOUS)


@dataclass(frozen=True)
class Refusal:
    guard: str  # the guard's config name: max_order_size, instruments, cancel_only...
    message: str
    verdict: Verdict = Verdict.DENY


@dataclass(frozen=True)
class Decision:
    """The guards' judgement of one call: the verdict, and why (empty when it passes)."""

    verdict: Verdict
    reason: str = ""
    guard: str = ""  # the guard that refused (config name), "" when it passes

    @classmethod
    def of(cls, refusal: Refusal | None) -> Decision:
        if refusal is None:
            return cls(Verdict.PASS)
        return cls(refusal.verdict, refusal.message, refusal.guard)


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
    max_price_deviation_pct: Decimal | None = None
    allow_unread: frozenset[str] = frozenset()  # endpoint templates: "POST /api/v4/..."

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
                    self.max_price_deviation_pct,
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
