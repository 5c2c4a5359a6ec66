"""The exchange's HTTP side: one catch-all handler routing on the raw path, never normalised."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from sidecar.devtools.exchange import countdown, routes, ws_app, ws_channels, ws_push
from sidecar.devtools.exchange.auth import AuthError, verify
from sidecar.devtools.exchange.calls import ApiError, Call
from sidecar.devtools.exchange.responses import encode_body, gate_headers
from sidecar.devtools.exchange.state import ExchangeState, RecordedRequest
from sidecar.devtools.exchange.subaccounts import SubKeyRefused

STATE = web.AppKey("exchange_state", ExchangeState)
log = logging.getLogger(__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN/Infinity; Gate's parser does not


def parse_json(body: bytes) -> Any:
    """The body as JSON, parsed from the exact bytes received (None when empty)."""
    if not body.strip():
        return None
    return json.loads(body, parse_constant=_reject_constant)


class _Answer:
    """Builds responses that all carry Gate's headers and honour Accept-Encoding."""

    def __init__(
        self, request: web.Request, state: ExchangeState, received: float, raw_path: str
    ) -> None:
        self.request, self.state, self.received = request, state, received
        caller = request.headers.get("KEY") or request.remote or "-"
        self.remaining, self.reset_at = state.rates.hit(caller, raw_path, state.now())

    def __call__(
        self, status: int, doc: object, extra: dict[str, str] | None = None
    ) -> web.Response:
        headers = gate_headers(
            self.state.now(), self.received, self.remaining, self.state.rates.limit, self.reset_at
        )
        headers.update(extra or {})
        accept = self.request.headers.get("Accept-Encoding", "")
        body = b"" if status == 204 else encode_body(doc, accept, headers)  # No Content: none
        return web.Response(status=status, body=body, headers=headers)

    def error(self, status: int, label: str, message: str) -> web.Response:
        return self(status, {"label": label, "message": message})


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    received = time.time()
    raw_path, _, raw_query = request.raw_path.partition("?")
    body = await request.read()
    record = RecordedRequest(
        request.method,
        raw_path,
        raw_query,
        CIMultiDict(request.headers),
        body,
        request.headers.get("KEY"),
        timestamp=received,
    )
    state.requests.append(record)
    answer = _Answer(request, state, received, raw_path)
    delay = state.delays.get(raw_path)
    if delay:
        await asyncio.sleep(delay)
    if raw_path != routes.PREFIX and not raw_path.startswith(routes.PREFIX + "/"):
        record.verdict = "NOT_FOUND"
        return answer.error(404, "NOT_FOUND", "not found")
    route, params = routes.find(request.method, raw_path)
    account = None
    api_key = None
    if route is not None and not route.private:
        record.verdict = "public"  # Gate answers market data without looking at signatures
    else:
        try:
            api_key = verify(
                request.headers,
                state.secrets(),
                request.method,
                raw_path,
                raw_query,
                body,
                state.now(),
                state.window_s,
            )
            state.sub_accounts.admit(api_key, request.remote, state.now(), request.method, raw_path)
        except (AuthError, SubKeyRefused) as exc:
            record.verdict = exc.label
            return answer.error(401, exc.label, exc.message)
        record.verdict = "ok"
        account = state.accounts[api_key]
    if state.enforce_rate_limit and answer.remaining < 0:
        return answer.error(429, "TOO_MANY_REQUESTS", "Request Rate limit Exceeded")
    try:
        parsed = parse_json(body)
    except ValueError:
        return answer.error(400, "INVALID_PARAM_VALUE", "body is not valid JSON")
    late = countdown.expired(state, request.headers.get("x-gate-exptime"))
    if late is not None:  # checked when handled: a request held back past it never executes
        return answer.error(late.status, late.label, late.message)
    if route is None:
        echo = {"method": request.method, "path": raw_path, "query": raw_query}
        return answer(200, {"echo": echo}, {"X-Exchange-Echo": "1"})
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    call = Call(state, request.method, params, query, parsed, account, record.headers)
    fault = state.sub_accounts.fault(request.method, raw_path, after=False)
    if fault is not None and fault.delay_s:  # a test's slow answer: the call still happens
        await asyncio.sleep(fault.delay_s)
    elif fault is not None:  # a test's injected failure, before the call takes effect
        return answer.error(fault.status, fault.label, "injected failure")
    try:
        status, doc = route.handler(call)
    except ApiError as exc:
        return answer.error(exc.status, exc.label, exc.message)
    except Exception:  # a bug here must read as one, not as a dropped connection
        log.exception("test exchange handler failed for %s %s", request.method, raw_path)
        return answer.error(500, "SERVER_ERROR", "internal error in the test exchange")
    product = ws_push.ORDER_WRITES.get(route.handler)
    if product is not None and account is not None and api_key is not None:
        # WebSocket subscribers of this account see REST's order changes too, as on Gate.
        amended = route.handler in ws_push.AMENDS
        settle = params.get("settle", "")
        await ws_push.order_change(state, api_key, account, product, settle, doc, amended)
    if (fault := state.sub_accounts.fault(request.method, raw_path, after=True)) is not None:
        return answer.error(fault.status, fault.label, "injected failure after the call")
    return answer(status, doc)


@web.middleware
async def _every_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    # aiohttp's router sees a decoded path and would answer 404/405 itself; the exchange routes
    # every request on the raw path instead (sidecar.devtools.exchange.routes), so all of them
    # are recorded. The app has no routes: aiohttp's not-found handler passes through here too.
    raw_path = request.raw_path.partition("?")[0]
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    if upgrade and ws_channels.ws_target(raw_path) is not None:
        return await ws_app.serve(request, request.app[STATE])
    return await handle(request)


def create_exchange_app(state: ExchangeState) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[_every_request])
    app[STATE] = state
    return app
