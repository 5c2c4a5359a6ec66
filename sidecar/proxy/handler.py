"""The key listener: one small handler and the middleware that maps errors in one place."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from sidecar.credentials.slot import KeySlot
from sidecar.errors import (
    BadRequest,
    BodyTooLarge,
    PolicyDenied,
    SidecarError,
    error_body,
    for_status,
)
from sidecar.gate.clock import Clock
from sidecar.gate.headers import relay_headers, upstream_headers
from sidecar.gate.paths import check_path, split_target
from sidecar.gate.signing import signed_headers
from sidecar.policy.engine import Policy
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest
from sidecar.proxy.record import Observer, RequestRecord

log = logging.getLogger("sidecar.proxy")


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


KEY_RUNTIME = web.AppKey("key_runtime", KeyRuntime)
RECORD = web.RequestKey("record", RequestRecord)


def error_response(exc: SidecarError) -> web.Response:
    return web.Response(status=exc.status, body=error_body(exc), content_type="application/json")


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"request body exceeds {limit} bytes")
            chunks.append(chunk)
    except web.RequestPayloadError:
        # The client's fault (a gzip/deflate body that does not decode, broken chunking): a
        # 400, not an internal error.
        raise BadRequest(
            "the request body cannot be read (bad Content-Encoding or chunking)"
        ) from None
    return b"".join(chunks)


async def handle(request: web.Request) -> web.Response:
    key = request.app[KEY_RUNTIME]
    record = request[RECORD]
    method = request.method
    # raw_path is the request target exactly as received: what we check is what we sign and send.
    path, raw_query = split_target(request.raw_path)
    check_path(path)
    body = await read_body(request, key.max_body_bytes)
    decision = key.policy.decide(method, path, raw_query, body)
    record.rule, record.origin = decision.rule, decision.origin
    if not decision.allowed:
        record.decision = "deny"
        raise PolicyDenied(f"{key.name} may not {method} {path} ({decision.reason})")
    record.decision = "allow"
    creds = key.slot.current()  # one whole pair for this request, whatever rotates meanwhile
    record.version = creds.version
    auth = await signed_headers(
        creds.signer, creds.api_key, method, path, raw_query, body, key.clock.now()
    )
    headers = upstream_headers(request.headers.items()) + list(auth.items())
    sent = time.perf_counter()
    upstream = await key.forwarder.send(UpstreamRequest(method, path, raw_query, headers, body))
    record.upstream_latency_s = time.perf_counter() - sent
    record.upstream_status = upstream.status
    record.label = upstream.gate_label()
    record.upstream_date = upstream.header("Date")  # clock drift detection (sidecar.ops.clocksync)
    response = web.Response(status=upstream.status, body=upstream.body)
    for name, value in relay_headers(upstream.headers):
        response.headers.add(name, value)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.app[KEY_RUNTIME]
    raw_path, _, raw_query = request.raw_path.partition("?")
    record = RequestRecord(key.name, request.method, raw_path, len(raw_query))
    request[RECORD] = record
    response: web.StreamResponse
    try:
        response = await handler(request)
    except SidecarError as exc:
        record.label = exc.label
        response = error_response(exc)
    except web.HTTPException as exc:
        # aiohttp's own refusals (e.g. a target its router cannot even match) still answer in
        # the sidecar's JSON shape, never as an HTML page or a 500.
        mapped = for_status(exc.status, exc.reason or "refused")
        record.label = mapped.label
        response = error_response(mapped)
    except Exception:
        log.exception("internal error", extra={"key": key.name})
        internal = SidecarError("internal error in gate-sidecar")
        record.label = internal.label
        response = error_response(internal)
    record.finish(response.status)
    for observe in key.observers:
        try:
            observe(record)
        except Exception:
            log.exception("observer failed")
    return response


def create_key_app(runtime: KeyRuntime) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=runtime.max_body_bytes)
    app[KEY_RUNTIME] = runtime
    # [\s\S]: the router matches the *decoded* path, where `.` would stop at an encoded newline.
    app.router.add_route("*", r"/{tail:[\s\S]*}", handle)
    return app
