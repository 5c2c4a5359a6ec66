"""One bot request through the sidecar, whatever server received it.

A listener (aiohttp's, or a leaner one) turns bytes into a :class:`BotRequest`, calls
:func:`answer` and writes the :class:`BotResponse` back. Everything in between happens here, in
this order: the canonical-path check, the body (read through the listener's bounded reader), the
policy decision, the trading guards (:mod:`sidecar.proxy.guarding`), the rate budget, one
credential pair, the signature, the forwarder, the relayed answer; every
refusal becomes a ``SIDECAR_*`` JSON answer; every request becomes one :class:`RequestRecord`
handed to the observers (audit line, metrics, clock sync).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sidecar.credentials.slot import KeySlot
from sidecar.errors import PolicyDenied, RateLimited, SidecarError, error_body
from sidecar.gate.clock import Clock
from sidecar.gate.headers import relay_headers, upstream_headers
from sidecar.gate.paths import check_path, split_target
from sidecar.gate.ratelimits import retry_after_header
from sidecar.gate.signing import signed_headers
from sidecar.policy.conditions import Body
from sidecar.policy.engine import Policy
from sidecar.policy.guards import Guards
from sidecar.proxy.brake import Brake
from sidecar.proxy.budget import KeyBudget
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest
from sidecar.proxy.guarding import apply_guards
from sidecar.proxy.market import Market
from sidecar.proxy.record import Observer, RequestRecord
from sidecar.proxy.ws.runtime import WsRuntime

log = logging.getLogger("sidecar.proxy")

#: Reads the request body, at most ``limit`` bytes; raises BodyTooLarge or BadRequest.
BodyReader = Callable[[int], Awaitable[bytes]]


@dataclass
class KeyRuntime:
    """Everything one key's listener needs. A config reload swaps ``policy`` or ``slot`` in
    place (each a single reference read once per request), so the listener keeps serving."""

    name: str
    policy: Policy
    slot: KeySlot
    forwarder: Forwarder
    clock: Clock
    max_body_bytes: int
    observers: list[Observer] = field(default_factory=list)
    guards: Guards = field(default_factory=lambda: Guards(None))  # swapped in place on reload
    brake: Brake | None = None  # the cancel-only switch (None: never engaged, e.g. in tests)
    market: Market | None = None  # public prices for the guards (None: none fetched)
    budget: KeyBudget | None = None  # rate budgets (None: off)
    ws: WsRuntime | None = None  # WebSocket sessions (sidecar.proxy.ws); None: upgrades are REST


@dataclass(slots=True)
class BotRequest:
    method: str
    target: str  # the request target exactly as received: what is checked is what is sent
    headers: list[tuple[str, str]]
    read_body: BodyReader


@dataclass(slots=True)
class BotResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def error_response(exc: SidecarError) -> BotResponse:
    headers = [("Content-Type", "application/json")]
    if isinstance(exc, RateLimited):
        headers.append(("Retry-After", retry_after_header(exc.retry_after_s)))
    return BotResponse(exc.status, headers, error_body(exc))


async def forward(key: KeyRuntime, request: BotRequest, record: RequestRecord) -> BotResponse:
    """Check, decide, sign and forward one request; raises :class:`SidecarError` to refuse."""
    method = request.method
    path, raw_query = split_target(request.target)
    check_path(path)
    body = Body(await request.read_body(key.max_body_bytes))  # parsed once, if ever
    decision = key.policy.decide(method, path, raw_query, body)
    record.rule, record.origin = decision.rule, decision.origin
    if not decision.allowed:
        record.decision = "deny"
        raise PolicyDenied(f"{key.name} may not {method} {path} ({decision.reason})")
    await apply_guards(key.guards, key.brake, key.market, method, path, raw_query, body, record)
    record.decision = "allow"
    creds = key.slot.current()  # one whole pair for this request, whatever rotates meanwhile
    record.version = creds.version
    budget = key.budget
    if budget is not None:  # after the slot: a key that cannot sign spends no budget
        record.rate_group = await budget.take(method, path)  # raises RateLimited
    auth = await signed_headers(
        creds.signer, creds.api_key, method, path, raw_query, body.raw, key.clock.now()
    )
    headers = upstream_headers(request.headers) + list(auth.items())
    sent = time.perf_counter()
    upstream = await key.forwarder.send(UpstreamRequest(method, path, raw_query, headers, body.raw))
    record.upstream_latency_s = time.perf_counter() - sent
    record.upstream_status = upstream.status
    record.label = upstream.gate_label()
    record.upstream_date = upstream.header("Date")  # clock drift detection (sidecar.ops.clocksync)
    if budget is not None:
        await budget.observe(method, path, upstream.headers)  # Gate's own count tightens ours
    return BotResponse(upstream.status, relay_headers(upstream.headers), upstream.body)


def new_record(key: KeyRuntime, method: str, target: str) -> RequestRecord:
    raw_path, _, raw_query = target.partition("?")
    return RequestRecord(key.name, method, raw_path, len(raw_query))


async def answer(key: KeyRuntime, request: BotRequest) -> BotResponse:
    """The whole request: forwarded, or refused with a SIDECAR_* answer; recorded either way."""
    record = new_record(key, request.method, request.target)
    try:
        response = await forward(key, request, record)
    except SidecarError as exc:
        record.label = exc.label
        if isinstance(exc, RateLimited):
            record.rate_group = exc.group
        response = error_response(exc)
    except Exception:
        log.exception("internal error", extra={"key": key.name})
        internal = SidecarError("internal error in gate-sidecar")
        record.label = internal.label
        response = error_response(internal)
    finish(key, record, response.status)
    return response


def finish(key: KeyRuntime, record: RequestRecord, status: int) -> None:
    """Close the record and hand it to every observer (an observer's bug never reaches a bot)."""
    record.finish(status)
    for observe in key.observers:
        try:
            observe(record)
        except Exception:
            log.exception("observer failed")
