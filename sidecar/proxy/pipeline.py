"""One bot request through the sidecar, whatever server received it.

A listener (aiohttp's, or a leaner one) turns bytes into a :class:`BotRequest`, calls
:func:`answer` and writes the :class:`BotResponse` back. Everything in between happens here, in
this order: admission (header values, browser requests, ``Host``, peer, client token: see
:mod:`sidecar.proxy.admission`), the canonical-path and query checks, the body (read through the
listener's bounded reader within ``body_timeout_s``, JSON only), the policy decision, the trading
guards (:mod:`sidecar.proxy.guarding`), the rate budget, one credential pair, the signature, the
forwarder, the relayed answer; every refusal becomes a ``SIDECAR_*`` JSON answer; every request
becomes one :class:`RequestRecord` handed to the observers (audit line, metrics, clock sync).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sidecar.aio import task_from_here
from sidecar.credentials.slot import KeySlot
from sidecar.errors import (
    BadRequest,
    BodyTooLarge,
    PolicyDenied,
    RateLimited,
    RequestTimeout,
    SidecarError,
    UnsupportedMediaType,
    WindowDenied,
    error_body,
)
from sidecar.gate.clock import Clock
from sidecar.gate.head import Kinds, RequestHead
from sidecar.gate.paths import check_path, split_target
from sidecar.gate.ratelimits import retry_after_header
from sidecar.gate.signing import signed_headers
from sidecar.gate.wire import body_refusal, query_refusal
from sidecar.policy.conditions import Body
from sidecar.policy.engine import Policy
from sidecar.policy.guards import Guards
from sidecar.proxy import safety
from sidecar.proxy.admission import OPEN, Admission
from sidecar.proxy.brake import Brake
from sidecar.proxy.budget import KeyBudget
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest, deliver
from sidecar.proxy.market import Market
from sidecar.proxy.peer import UNKNOWN_PEER, Peer
from sidecar.proxy.record import Observer, RequestRecord
from sidecar.proxy.safety import Safety
from sidecar.proxy.ws.runtime import WsRuntime

log = logging.getLogger("sidecar.proxy")

#: The steps of :func:`forward`, in order. docs/security.md ("What every request goes through")
#: lists the same steps (tests/test_docs_site.py compares), so a step added here must be described.
STEPS = (
    "admission",
    "heartbeat",
    "canonical path and query",
    "body",
    "policy",
    "brake",
    "guards",
    "windows",
    "JSON only",
    "credentials",
    "rate budget",
    "headers",
    "signing",
    "forwarding",
)

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
    admission: Admission = OPEN  # swapped whole on a reload, like policy
    body_timeout_s: float | None = None
    safety: Safety = field(default_factory=Safety)  # warn mode, windows, expiry, dead man


class BotRequest:
    """One request as a listener received it. ``headers``: the listener's one pass over them
    (a :class:`~sidecar.gate.head.RequestHead`), or text pairs from any other caller."""

    __slots__ = ("_head", "_headers", "method", "peer", "read_body", "target")

    def __init__(
        self,
        method: str,
        target: str,  # the request target exactly as received: what is checked is what is sent
        headers: RequestHead | list[tuple[str, str]],
        read_body: BodyReader,
        peer: Peer = UNKNOWN_PEER,  # filled by the listener (sidecar.proxy.peer)
    ) -> None:
        self.method, self.target, self.read_body, self.peer = method, target, read_body, peer
        if isinstance(headers, RequestHead):
            self._head: RequestHead | None = headers
            self._headers: list[tuple[str, str]] | None = None
        else:
            self._head, self._headers = None, headers

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header as text (decoded on first use: the hot path reads :meth:`head`)."""
        if self._headers is None:
            assert self._head is not None
            self._headers = self._head.headers
        return self._headers

    def head(self, kinds: Kinds) -> RequestHead:
        """The headers as read with ``kinds`` (the key's table when the request is served)."""
        head = self._head
        if head is None:
            head = self._head = RequestHead.of(self.headers, kinds)
        elif head.kinds is not kinds:  # the key's config was reloaded since the head was read
            head = self._head = head.again(kinds)
        return head


@dataclass(slots=True)
class BotResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    close: bool = False  # the listener closes the connection after this answer
    lines: bytes = b""  # more headers, as bytes (Gate's relayed ones), before ``headers``


def error_response(exc: SidecarError) -> BotResponse:
    headers = [("Content-Type", "application/json")]
    if isinstance(exc, RateLimited | WindowDenied):
        headers.append(("Retry-After", retry_after_header(exc.retry_after_s)))
    # After a body deadline the connection's framing is unknown: it cannot carry another request.
    close = isinstance(exc, RequestTimeout)
    return BotResponse(exc.status, headers, error_body(exc), close)


class ReadyBody:
    """A body reader over a body the listener has already received whole."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body

    def within(self, limit: int) -> bytes:
        if len(self.body) > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")
        return self.body

    async def __call__(self, limit: int) -> bytes:
        return self.within(limit)


async def read_body(key: KeyRuntime, request: BotRequest) -> bytes:
    """The body, within ``max_body_bytes`` and ``body_timeout_s``."""
    reader = request.read_body
    if isinstance(reader, ReadyBody):  # already whole: no deadline to keep, nothing to await
        return reader.within(key.max_body_bytes)
    await task_from_here()  # asyncio.timeout below needs one
    try:
        async with asyncio.timeout(key.body_timeout_s):
            body = await request.read_body(key.max_body_bytes)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {key.body_timeout_s:g} s"
        ) from None
    return body


async def forward(key: KeyRuntime, request: BotRequest, record: RequestRecord) -> BotResponse:
    """Check, decide, sign and forward one request; raises :class:`SidecarError` to refuse."""
    method = request.method
    admission = key.admission  # one reference for the whole request, whatever reloads
    head = request.head(admission.kinds)  # the one pass over the headers (the listener's)
    admission.check(head, request.peer)
    path, raw_query = split_target(request.target)
    # -- trading safety: the dead man's signs of life, its heartbeat ----------------------------
    key.safety.seen()
    if path == safety.HEARTBEAT_PATH:
        body_text = safety.heartbeat(key, method, record)  # raises NotFound without a dead man
        return BotResponse(200, [("Content-Type", "application/json")], body_text)
    # --------------------------------------------------------------------------------------------
    check_path(path)
    why = query_refusal(raw_query)
    if why is not None:
        raise BadRequest(why)
    body = Body(await read_body(key, request))  # parsed once, if ever
    decision = key.policy.decide(method, path, raw_query, body)
    record.rule, record.origin = decision.rule, decision.origin
    if not decision.allowed:
        record.would_deny = safety.policy_passes(key, decision, f"{method} {path}")  # warn mode
        if record.would_deny is None:
            record.decision = "deny"
            raise PolicyDenied(f"{key.name} may not {method} {path} ({decision.reason})")
    record.decision = "would_deny" if record.would_deny is not None else "allow"
    await safety.judge_rest(key, method, path, raw_query, body, record)  # guards, windows
    # After the decision, so a denied request is told why it is denied whatever its body type.
    why = body_refusal(body.raw, head.content_type)
    if why is not None:
        raise UnsupportedMediaType(why)
    creds = key.slot.current()  # one whole pair for this request, whatever rotates meanwhile
    record.version = creds.version
    budget = key.budget
    if budget is not None:  # after the slot: a key that cannot sign spends no budget
        record.rate_group = await budget.take(method, path)  # raises RateLimited
    lines = safety.rest_headers(key, method, path, head)  # x-gate-exptime (order_ttl_ms)

    async def build() -> UpstreamRequest:
        # Signed at the moment it is sent: a resent GET (forwarder.deliver) gets a fresh pair.
        auth = await signed_headers(
            creds.signer, creds.api_key, method, path, raw_query, body.raw, key.clock.now()
        )
        return UpstreamRequest(method, path, raw_query, list(auth.items()), body.raw, lines)

    first = await build()
    sent = time.perf_counter()
    upstream = await deliver(key.forwarder, first, build)
    record.upstream_latency_s = time.perf_counter() - sent
    record.upstream_status = upstream.status
    record.label = upstream.gate_label()
    record.upstream_date = upstream.header("Date")  # clock drift detection (sidecar.ops.clocksync)
    if budget is not None:
        await budget.observe(method, path, upstream.read())  # Gate's own count tightens ours
    return BotResponse(upstream.status, [], upstream.body, lines=upstream.relayed())


def new_record(
    key: KeyRuntime, method: str, target: str, peer: Peer = UNKNOWN_PEER
) -> RequestRecord:
    raw_path, _, raw_query = target.partition("?")
    record = RequestRecord(key.name, method, raw_path, len(raw_query))
    record.client_cert = peer.client_cert
    return record


async def respond(key: KeyRuntime, request: BotRequest) -> tuple[BotResponse, RequestRecord]:
    """The whole request, forwarded or refused with a SIDECAR_* answer, and its still open
    record: the caller sends the response, then hands the record to :func:`finish`. A listener
    that writes first keeps the observers' time (the audit line) out of the bot's latency."""
    record = new_record(key, request.method, request.target, request.peer)
    try:
        response = await forward(key, request, record)
    except SidecarError as exc:
        record.label = exc.label
        if exc.status >= 500 and record.decision in ("allow", "would_deny"):
            # Allowed, then not served (no usable secret, Gate unreachable): the audit line must
            # not say "allow" beside a 503.
            record.decision = "error"
        if isinstance(exc, RateLimited):
            record.rate_group = exc.group
        response = error_response(exc)
    except Exception:
        log.exception("internal error", extra={"key": key.name})
        internal = SidecarError("internal error in gate-sidecar")
        record.label = internal.label
        response = error_response(internal)
    return response, record


async def answer(key: KeyRuntime, request: BotRequest) -> BotResponse:
    """The whole request: forwarded, or refused with a SIDECAR_* answer; recorded either way."""
    response, record = await respond(key, request)
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
