"""The trading guards' step of the pipeline: read the call, check the brake, fetch the public
prices the guards need (only then), check the guards; refuse with ``SIDECAR_GUARD_DENIED``."""

from __future__ import annotations

from sidecar.errors import GuardDenied
from sidecar.gate.public import is_public
from sidecar.policy.conditions import Body
from sidecar.policy.guards import Call, Guards, Refusal
from sidecar.proxy.brake import Brake
from sidecar.proxy.market import Market
from sidecar.proxy.record import RequestRecord


def _refuse(refusal: Refusal, record: RequestRecord) -> GuardDenied:
    record.decision = "deny"
    record.guard = refusal.guard
    return GuardDenied(f"{record.key}: {refusal.message}", refusal.guard)


async def apply_guards(
    guards: Guards,
    brake: Brake | None,
    market: Market | None,
    method: str,
    path: str,
    raw_query: str,
    body: Body,
    record: RequestRecord,
) -> None:
    """Raise :class:`GuardDenied` when a guard refuses this request."""
    why = brake.why() if brake is not None else None
    if (why is None and not guards.active) or is_public(method, path):
        return  # nothing to check (market data is nobody's order): the body is not even parsed
    call = guards.http_call(method, path, raw_query, body)
    label = f"{method} {path}"
    refusal = guards.check_brake(call, write=method != "GET", label=label, brake=why)
    if refusal is not None:
        raise _refuse(refusal, record)
    quotes = None
    if isinstance(call, Call) and guards.active:
        needs = guards.quote_needs(call)
        if needs and market is not None:
            quotes = await market.quotes(needs)
    refusal = guards.check(call, quotes)
    if refusal is not None:
        raise _refuse(refusal, record)
