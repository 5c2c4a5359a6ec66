"""The trading guards' step, for REST requests and WebSocket trading-API frames alike: read the
call, check the brake, fetch the public prices the guards need (only then), check the guards.

:func:`apply_guards` is the pipeline's step (it raises ``SIDECAR_GUARD_DENIED``);
:func:`ws_refusal` is the same judgement for one ``event: "api"`` frame of the WebSocket trading
API, for the WebSocket listener to answer with.
"""

from __future__ import annotations

from sidecar.errors import GuardAmbiguous, GuardDenied, GuardUnread
from sidecar.gate.endpoints import template_path
from sidecar.gate.public import is_public
from sidecar.policy.conditions import Body
from sidecar.policy.guards import Call, Guards, Refusal, Verdict
from sidecar.policy.guards.shapes import Op
from sidecar.proxy.brake import Brake
from sidecar.proxy.market import Market
from sidecar.proxy.record import RequestRecord

_READS = (Op.LIST, Op.GET_ONE)
_ERRORS: dict[Verdict, type[GuardDenied]] = {
    Verdict.DENY: GuardDenied,
    Verdict.UNREAD: GuardUnread,
    Verdict.AMBIGUOUS: GuardAmbiguous,
}


def guard_error(key: str, refusal: Refusal) -> GuardDenied:
    """The error a refusal is answered with (403, or 400 for an ambiguous request), for REST
    requests and WebSocket frames alike."""
    return _ERRORS.get(refusal.verdict, GuardDenied)(f"{key}: {refusal.message}", refusal.guard)


async def refusal_for(
    guards: Guards,
    brake: Brake | None,
    market: Market | None,
    call: Call | Refusal | None,
    *,
    write: bool,
    label: str,
) -> Refusal | None:
    """The refusal of a call already read (None: it passes)."""
    why = brake.why() if brake is not None else None
    refusal = guards.check_brake(call, write=write, label=label, brake=why)
    if refusal is not None:
        return refusal
    quotes = None
    if isinstance(call, Call) and guards.active:
        needs = guards.quote_needs(call)
        if needs and market is not None:
            quotes = await market.quotes(needs)
    return guards.check(call, quotes)


def any_guard(guards: Guards, brake: Brake | None) -> bool:
    """Whether a guard or the brake can refuse anything (else nothing is read or checked)."""
    return guards.active or (brake is not None and brake.engaged)


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
    """Raise :class:`GuardDenied` when a guard refuses this REST request."""
    if not any_guard(guards, brake) or is_public(method, path):
        return  # nothing to check (market data is nobody's order): the body is not even parsed
    call = guards.http_call(method, path, raw_query, body, template=template_path(method, path))
    label = f"{method} {path}"
    refusal = await refusal_for(guards, brake, market, call, write=method != "GET", label=label)
    if refusal is not None:
        record.decision = "deny"
        record.guard = refusal.guard
        raise guard_error(record.key, refusal)


async def ws_refusal(
    guards: Guards,
    brake: Brake | None,
    market: Market | None,
    channel: str,
    settle: str | None,
    req_param: object,
) -> Refusal | None:
    """The refusal of one WebSocket trading-API request (``channel`` such as
    ``futures.order_place``, ``settle`` from the connection URL, ``req_param`` parsed), or None.
    A channel the field table does not know (login, ping) is left to the caller's policy."""
    call = guards.ws_call(channel, settle, req_param)
    write = not (isinstance(call, Call) and call.shape.op in _READS)
    return await refusal_for(guards, brake, market, call, write=write, label=channel)
