"""Rolling windows over placed orders (``guards.windows``): what one call adds to each window,
and the refusal when a window is full. Pure: the counting itself is the proxy's
(:mod:`sidecar.proxy.windows`, in memory or in Redis).

A window ``{per_s, max_orders?, max_notional?, instruments?}`` counts, over the last ``per_s``
seconds, every order placed (each order of a batch, price-triggered orders too) and every amend
(an amend counts as an order, with its new notional); ``instruments`` narrows it to those
markets. Each limit of a window is one *counter*, named as the config names it
(``windows[1].max_notional``). A call is all or nothing: it passes when it fits every counter,
and only then is it counted.

An order whose notional cannot be known (no price, no contract multiplier, an amend that names
no market) cannot be weighed against a ``max_notional`` window and is refused, saying why, as
the ``max_notional`` guard refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Protocol

from sidecar.policy.guards import Call, Limits, Need, Quote, QuoteKey, Refusal
from sidecar.policy.guards.amounts import order_notional
from sidecar.policy.guards.checks import quote_needs
from sidecar.policy.guards.kinds import Op
from sidecar.policy.guards.values import fmt

_COUNTED = (Op.PLACE, Op.TRIGGER, Op.AMEND)


class Measure(Enum):
    ORDERS = "max_orders"
    NOTIONAL = "max_notional"


class WindowSpec(Protocol):
    """One ``guards.windows`` entry as the config gives it."""

    @property
    def per_s(self) -> float: ...
    @property
    def max_orders(self) -> int | None: ...
    @property
    def max_notional(self) -> Decimal | None: ...
    @property
    def instruments(self) -> Sequence[str] | None: ...


@dataclass(frozen=True, slots=True)
class Counter:
    """One limit of one window: ``windows[index].max_orders``."""

    index: int
    measure: Measure
    per_s: float
    limit: Decimal
    instruments: frozenset[str] | None

    @property
    def name(self) -> str:
        return f"windows[{self.index}].{self.measure.value}"


@dataclass(frozen=True, slots=True)
class Charge:
    """What one call adds to one counter."""

    counter: Counter
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Full:
    """A counter the call does not fit: its use in the window, and in how many seconds enough
    frees up (None: never, the call alone is larger than the limit)."""

    charge: Charge
    use: Decimal
    frees_in_s: float | None


def compile_windows(specs: Sequence[WindowSpec]) -> tuple[Counter, ...]:
    counters: list[Counter] = []
    for index, spec in enumerate(specs):
        names = frozenset(spec.instruments) if spec.instruments is not None else None
        if spec.max_orders is not None:
            limit = Decimal(spec.max_orders)
            counters.append(Counter(index, Measure.ORDERS, spec.per_s, limit, names))
        if spec.max_notional is not None:
            limit = spec.max_notional
            counters.append(Counter(index, Measure.NOTIONAL, spec.per_s, limit, names))
    return tuple(counters)


def counted(call: Call) -> bool:
    """Whether the windows count this call at all (placements and amends)."""
    return call.shape.op in _COUNTED and bool(call.orders)


def window_needs(call: Call, counters: Sequence[Counter]) -> dict[QuoteKey, Need]:
    """The public prices a ``max_notional`` window needs for this call (as the guard's)."""
    if not counted(call) or not any(c.measure is Measure.NOTIONAL for c in counters):
        return {}
    return quote_needs(call, Limits(max_notional=Decimal(1)))


def charges(
    call: Call, counters: Sequence[Counter], quotes: Mapping[QuoteKey, Quote]
) -> list[Charge] | Refusal:
    """What the call adds to each counter it concerns (none for calls that place nothing), or
    the refusal of an order a ``max_notional`` window cannot weigh."""
    if not counted(call) or not counters:
        return []
    orders: dict[Counter, Decimal] = {}
    for order in call.orders:
        name = call.instrument_for(order)
        for counter in counters:
            # An order naming no market is counted by every window, narrowed or not: the
            # stricter reading.
            if counter.instruments is not None and name is not None:
                if name not in counter.instruments:
                    continue
            if counter.measure is Measure.ORDERS:
                amount = Decimal(1)
            else:
                weighed = order_notional(call, order, quotes, counter.name)
                if isinstance(weighed, Refusal):
                    return weighed
                amount = weighed[0]
            orders[counter] = orders.get(counter, Decimal(0)) + amount
    return [Charge(counter, amount) for counter, amount in orders.items() if amount > 0]


def retry_after_s(full: Full) -> float:
    """Seconds for Retry-After: when enough frees up, or the whole window when never."""
    if full.frees_in_s is None:
        return full.charge.counter.per_s
    return max(0.0, full.frees_in_s)


def refusal(full: Full) -> Refusal:
    counter, amount = full.charge.counter, full.charge.amount
    what = "orders" if counter.measure is Measure.ORDERS else "notional"
    scope = (
        f" on {', '.join(sorted(counter.instruments))}" if counter.instruments is not None else ""
    )
    head = (
        f"{counter.name}: {fmt(full.use)} of {fmt(counter.limit)} {what} used in the last "
        f"{counter.per_s:g} s{scope}, and this call adds {fmt(amount)}"
    )
    if full.frees_in_s is None:
        tail = "; the call alone exceeds the limit"
    else:
        tail = f"; enough frees up in {math.ceil(max(0.0, full.frees_in_s) * 10) / 10:g} s"
    return Refusal(counter.name, head + tail)


def frees_in(
    entries: Sequence[tuple[float, Decimal]], use: Decimal, charge: Charge, now: float
) -> float | None:
    """When enough of a counter frees up for ``charge``: ``entries`` are the counted amounts
    still in the window, oldest first, with the time each was counted."""
    limit, amount = charge.counter.limit, charge.amount
    if amount > limit:
        return None
    need, freed = use + amount - limit, Decimal(0)
    for at, value in entries:
        freed += value
        if freed >= need:
            return at + charge.counter.per_s - now
    return charge.counter.per_s
