"""One bot request through the sidecar, whatever server received it.

A listener (aiohttp's, or a leaner one) turns bytes into a :class:`BotRequest`, calls
:func:`answer` and writes the :class:`BotResponse` back. Everything in between happens here, in
this order: the canonical-path check, the body (read through the listener's bounded reader), the
policy decision, one credential pair, the signature, the forwarder, the relayed answer; every
refusal becomes a ``SIDECAR_*`` JSON answer; every request becomes one :class:`RequestRecord`
handed to the observers (audit line, metrics, clock sync).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sidecar.credentials.slot import KeySlot
from sidecar.errors import PolicyDenied, SidecarError, error_body
from sidecar.gate.clock import Clock
from sidecar.gate.headers import relay_headers, upstream_headers
from sidecar.gate.paths import check_path, split_target
from sidecar.gate.signing import signed_headers
from sidecar.policy.engine import Policy
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest, deliver
from sidecar.proxy.record import Observer, RequestRecord

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


@dataclass(frozen=True, slots=True)
class Peer:
    """The bot's end of the connection, as every listener gives it (``Peer(transport)``).

    Read from the transport only when asked (peer address, ``socket`` for SO_PEERCRED,
    ``peercert`` / ``ssl_object`` for a client certificate), so it costs nothing per request.
    """

    transport: asyncio.BaseTransport | None = None

    def info(self, name: str) -> Any:
        return None if self.transport is None else self.transport.get_extra_info(name)

    @property
    def address(self) -> Any:
        """``(host, port)`` for TCP, the socket path (often empty) for a unix socket."""
        return self.info("peername")


NO_PEER = Peer()


@dataclass(slots=True)
class BotRequest:
    method: str
    target: str  # the request target exactly as received: what is checked is what is sent
    headers: list[tuple[str, str]]
    read_body: BodyReader
    peer: Peer = NO_PEER


@dataclass(slots=True)
class BotResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def error_response(exc: SidecarError) -> BotResponse:
    return BotResponse(exc.status, [("Content-Type", "application/json")], error_body(exc))


async def forward(key: KeyRuntime, request: BotRequest, record: RequestRecord) -> BotResponse:
    """Check, decide, sign and forward one request; raises :class:`SidecarError` to refuse."""
    method = request.method
    path, raw_query = split_target(request.target)
    check_path(path)
    body = await request.read_body(key.max_body_bytes)
    decision = key.policy.decide(method, path, raw_query, body)
    record.rule, record.origin = decision.rule, decision.origin
    if not decision.allowed:
        record.decision = "deny"
        raise PolicyDenied(f"{key.name} may not {method} {path} ({decision.reason})")
    record.decision = "allow"
    creds = key.slot.current()  # one whole pair for this request, whatever rotates meanwhile
    record.version = creds.version
    headers = upstream_headers(request.headers)

    async def build() -> UpstreamRequest:
        # Signed at the moment it is sent: a resent GET (forwarder.deliver) gets a fresh pair.
        auth = await signed_headers(
            creds.signer, creds.api_key, method, path, raw_query, body, key.clock.now()
        )
        return UpstreamRequest(method, path, raw_query, headers + list(auth.items()), body)

    first = await build()
    sent = time.perf_counter()
    upstream = await deliver(key.forwarder, first, build)
    record.upstream_latency_s = time.perf_counter() - sent
    record.upstream_status = upstream.status
    record.label = upstream.gate_label()
    record.upstream_date = upstream.header("Date")  # clock drift detection (sidecar.ops.clocksync)
    return BotResponse(upstream.status, relay_headers(upstream.headers), upstream.body)


def new_record(key: KeyRuntime, method: str, target: str) -> RequestRecord:
    raw_path, _, raw_query = target.partition("?")
    return RequestRecord(key.name, method, raw_path, len(raw_query))


async def respond(key: KeyRuntime, request: BotRequest) -> tuple[BotResponse, RequestRecord]:
    """The whole request, forwarded or refused with a SIDECAR_* answer, and its still open
    record: the caller sends the response, then hands the record to :func:`finish`. A listener
    that writes first keeps the observers' time (the audit line) out of the bot's latency."""
    record = new_record(key, request.method, request.target)
    try:
        response = await forward(key, request, record)
    except SidecarError as exc:
        record.label = exc.label
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
