"""The exchange's HTTP side: one catch-all handler routing on the raw path, never normalised."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import secrets
import time
from collections.abc import Callable
from email.utils import formatdate
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

from sidecar.exchange import handlers as h
from sidecar.exchange.auth import AuthError, verify
from sidecar.exchange.state import ExchangeState, RecordedRequest

STATE = web.AppKey("exchange_state", ExchangeState)

Route = tuple[str, re.Pattern[str], Callable[[h.Call], h.Result], bool]


def _route(method: str, path: str, fn: Callable[[h.Call], h.Result], private: bool = True) -> Route:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return method, re.compile(f"^/api/v4{pattern}$"), fn, private


ROUTES: list[Route] = [
    _route("GET", "/spot/time", h.server_time, private=False),
    _route("GET", "/spot/currency_pairs", h.currency_pairs, private=False),
    _route("GET", "/spot/currency_pairs/{pair}", h.currency_pair, private=False),
    _route("GET", "/spot/currencies", h.currencies, private=False),
    _route("GET", "/spot/tickers", h.tickers, private=False),
    _route("GET", "/futures/{settle}/contracts", h.contracts, private=False),
    _route("GET", "/futures/{settle}/contracts/{contract}", h.contract, private=False),
    _route("GET", "/futures/{settle}/tickers", h.futures_tickers, private=False),
    _route("GET", "/account/detail", h.account_detail),
    _route("GET", "/spot/accounts", h.spot_accounts),
    _route("GET", "/futures/{settle}/accounts", h.futures_accounts),
    _route("GET", "/wallet/total_balance", h.total_balance),
    _route("POST", "/spot/orders", h.create_spot_order),
    _route("GET", "/spot/orders", h.list_spot_orders),
    _route("DELETE", "/spot/orders", h.cancel_spot_orders),
    _route("GET", "/spot/orders/{id}", h.get_spot_order),
    _route("DELETE", "/spot/orders/{id}", h.cancel_spot_order),
    _route("POST", "/spot/batch_orders", h.batch_spot_orders),
    _route("GET", "/spot/open_orders", h.open_spot_orders),
    _route("POST", "/futures/{settle}/orders", h.create_futures_order),
    _route("GET", "/futures/{settle}/orders", h.list_futures_orders),
    _route("GET", "/futures/{settle}/orders/{id}", h.get_futures_order),
    _route("DELETE", "/futures/{settle}/orders/{id}", h.cancel_futures_order),
    _route("POST", "/futures/{settle}/batch_orders", h.batch_futures_orders),
    _route("GET", "/futures/{settle}/positions", h.positions),
    _route("POST", "/futures/{settle}/positions/{contract}/leverage", h.set_leverage),
    _route("POST", "/withdrawals", h.withdraw),
    _route("POST", "/withdrawals/push", h.withdraw),
    _route("POST", "/wallet/transfers", h.transfer),
    _route("POST", "/sub_accounts/{uid}/keys", h.sub_account_key),
]


def _find(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in ROUTES:
        m = route[1].match(path)
        if m and route[0] == method:
            return route, m.groupdict()
    return None, {}


def _response(
    request: web.Request,
    state: ExchangeState,
    status: int,
    doc: object,
    received: float,
    extra: dict[str, str] | None = None,
) -> web.Response:
    body = json.dumps(doc).encode()
    now = state.now()
    headers = CIMultiDict(
        {
            "Content-Type": "application/json",
            "X-Gate-RateLimit-Requests-Remain": "199",
            "X-Gate-RateLimit-Limit": "200",
            "X-Gate-RateLimit-Reset-Timestamp": str(int(now) + 10),
            "X-Gate-Trace-ID": secrets.token_hex(16),
            "X-In-Time": str(int(received * 1e6)),
            "X-Out-Time": str(int(time.time() * 1e6)),
            "Date": formatdate(now, usegmt=True),  # the exchange's clock, for skew tests
            **(extra or {}),
        }
    )
    if len(body) > 1024 and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return web.Response(status=status, body=body, headers=headers)


def _error(
    request: web.Request,
    state: ExchangeState,
    status: int,
    label: str,
    message: str,
    received: float,
) -> web.Response:
    return _response(request, state, status, {"label": label, "message": message}, received)


async def handle(request: web.Request) -> web.Response:
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
    )
    state.requests.append(record)
    delay = state.delays.get(raw_path)
    if delay:
        await asyncio.sleep(delay)
    if not raw_path.startswith("/api/v4/"):
        record.verdict = "NOT_FOUND"
        return _error(request, state, 404, "NOT_FOUND", "not found", received)
    route, params = _find(request.method, raw_path)
    private = route is None or route[3]
    account = None
    if private:
        try:
            api_key = verify(
                request.headers,
                {k: a.secret for k, a in state.accounts.items()},
                request.method,
                raw_path,
                raw_query,
                body,
                state.now(),
                state.window_s,
            )
        except AuthError as exc:
            record.verdict = exc.label
            return _error(request, state, 401, exc.label, exc.message, received)
        account = state.accounts[api_key]
        record.verdict = "ok"
    else:
        record.verdict = "public"
    if route is None:
        echo = {"method": request.method, "path": raw_path, "query": raw_query}
        return _response(request, state, 200, {"echo": echo}, received, {"X-Exchange-Echo": "1"})
    try:
        parsed = json.loads(body) if body.strip() else None
    except ValueError:
        return _error(
            request, state, 400, "INVALID_PARAM_VALUE", "body is not valid JSON", received
        )
    call = h.Call(state, request.method, params, dict(parse_qsl(raw_query)), parsed, account)
    try:
        status, doc = route[2](call)
    except h.ApiError as exc:
        return _error(request, state, exc.status, exc.label, exc.message, received)
    return _response(request, state, status, doc, received)


def create_exchange_app(state: ExchangeState) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STATE] = state
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
