"""The exchange's WebSocket side: spot, perpetual futures, delivery and options
(:mod:`.ws_channels`), verifying like Gate and trading on the same order book as REST.

Per frame: ``*.ping`` gets ``*.pong``; a (un)subscription to a private channel must carry a valid
``auth`` (:mod:`.ws_auth`), a public one needs none; a trading-API call (``event: "api"``) must be
signed, ``*.login`` marks the connection logged in, and orders are placed, amended, listed and
cancelled through the REST handlers (:mod:`.ws_trading`). Delivery and options have no trading
API: a call there is answered as an unknown channel. Every frame is recorded in
``state.ws_frames`` with its verdict, like REST requests in ``state.requests``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from sidecar.devtools.exchange import countdown
from sidecar.devtools.exchange.calls import ApiError
from sidecar.devtools.exchange.state import ExchangeState, RecordedFrame
from sidecar.devtools.exchange.ws_auth import WsAuthError, verify_api, verify_subscription
from sidecar.devtools.exchange.ws_channels import PRODUCTS, ws_target
from sidecar.devtools.exchange.ws_push import Conn, frame, order_change
from sidecar.devtools.exchange.ws_trading import PLACE_CHANNELS, run_call


async def serve(request: web.Request, state: ExchangeState) -> web.WebSocketResponse:
    raw_path = request.raw_path.partition("?")[0]
    kind, settle = ws_target(raw_path) or (PRODUCTS["spot"], "")
    ws = web.WebSocketResponse()  # answers protocol pings itself, as Gate's servers do
    await ws.prepare(request)
    conn = Conn(ws, raw_path, kind, settle)
    headers = CIMultiDict(request.headers)
    state.ws_connections.add(conn)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await _frame(state, conn, headers, msg.data)
    finally:
        state.ws_connections.discard(conn)
    return ws


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _frame(state: ExchangeState, conn: Conn, headers: CIMultiDict[str], text: str) -> None:
    record = RecordedFrame(conn.raw_path, text, None, None, None)
    state.ws_frames.append(record)
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        record.verdict = "BAD_FORMAT"
        error = {"code": 1, "message": "invalid request body format"}
        await conn.ws.send_str(frame("", "", error=error, result=None))
        return
    channel, event = str(doc.get("channel", "")), str(doc.get("event", ""))
    record.channel, record.event = channel, event
    if channel == f"{conn.kind.prefix}.ping":
        record.verdict = "public"
        await conn.ws.send_str(frame(f"{conn.kind.prefix}.pong", "", error=None, result=None))
    elif event in ("subscribe", "unsubscribe"):
        await _subscription(state, conn, doc, record)
    elif event == "api" and conn.kind.trading_api:
        await _api(state, conn, headers, text, doc, record)
    elif event == "api":  # no trading API on this endpoint: Gate knows no such channel here
        record.verdict = "UNKNOWN_CHANNEL"
        error = {"code": 2, "message": f"unknown channel {channel[:64]}"}
        await conn.ws.send_str(frame(channel, event, error=error, result=None))
    else:
        record.verdict = "UNKNOWN_EVENT"
        error = {"code": 2, "message": f"unknown event {event[:32]}"}
        await conn.ws.send_str(frame(channel, event, error=error, result=None))


async def _subscription(
    state: ExchangeState, conn: Conn, doc: dict[str, Any], record: RecordedFrame
) -> None:
    channel, event = record.channel or "", record.event or ""
    echo: dict[str, Any] = {k: doc[k] for k in ("id", "payload") if k in doc}
    auth = doc.get("auth")
    record.api_key = auth.get("KEY") if isinstance(auth, dict) else None
    api_key = ""
    if channel in conn.kind.private:
        try:
            api_key = verify_subscription(doc, state.secrets(), state.now(), state.window_s)
        except WsAuthError as exc:
            record.verdict = exc.label
            error = {
                "code": exc.code,
                "message": json.dumps({"label": exc.label, "message": exc.message}),
            }
            await conn.ws.send_str(
                frame(channel, event, **echo, error=error, result={"status": "fail"})
            )
            return
        record.verdict = "ok"
    else:
        record.verdict = "public"
    if event == "subscribe":
        conn.subs[channel] = api_key
    else:
        conn.subs.pop(channel, None)
    await conn.ws.send_str(frame(channel, event, **echo, error=None, result={"status": "success"}))


def _api_answer(
    conn: Conn,
    channel: str,
    req_id: Any,
    status: int,
    data: dict[str, Any],
    ack: bool = False,
    rate: dict[str, int] | None = None,
) -> str:
    header = {
        "response_time": str(int(time.time() * 1000)),
        "status": str(status),
        "channel": channel,
        "event": "api",
        "client_id": "127.0.0.1-exchange",
        "conn_id": secrets.token_hex(8),
        "trace_id": secrets.token_hex(16),
        **(rate or {}),
    }
    return json.dumps({"request_id": req_id, "ack": ack, "header": header, "data": data})


def _rate_fields(state: ExchangeState, api_key: str, channel: str) -> dict[str, int]:
    """Gate's count in an order call's answer header (docs: "Order Place" result format):
    the count and the cap are hidden when 0; the reset is the next window once the count is
    spent, else the server's time. Counted per key and channel, like REST's per path."""
    now = state.now()
    remaining, reset_at = state.rates.hit(api_key, f"ws:{channel}", now)
    fields = {"x_gate_ratelimit_limit": state.rates.limit}
    if remaining > 0:
        fields["x_gate_ratelimit_requests_remain"] = remaining
    fields["x_gat_ratelimit_reset_timestamp"] = int((reset_at if remaining <= 0 else now) * 1000)
    return fields


async def _api(
    state: ExchangeState,
    conn: Conn,
    headers: CIMultiDict[str],
    text: str,
    doc: dict[str, Any],
    record: RecordedFrame,
) -> None:
    channel = record.channel or ""
    payload = doc.get("payload") if isinstance(doc.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    req_id = payload.get("req_id", doc.get("id"))
    record.api_key = payload.get("api_key") or None
    try:
        if channel == f"{conn.product}.login" or payload.get("signature"):
            api_key = verify_api(text, doc, state.secrets(), state.now(), state.window_s)
        elif conn.login is not None:
            api_key = conn.login
        else:
            raise WsAuthError("AUTHENTICATION_FAILED", "Not login")
    except WsAuthError as exc:
        record.verdict = exc.label
        errs = {"label": exc.label, "message": exc.message}
        await conn.ws.send_str(_api_answer(conn, channel, req_id, 401, {"errs": errs}))
        return
    record.verdict = "ok"
    account = state.accounts[api_key]
    if channel == f"{conn.product}.login":
        conn.login = api_key
        result = {"api_key": api_key, "uid": str(account.uid)}
        await conn.ws.send_str(_api_answer(conn, channel, req_id, 200, {"result": result}))
        return
    req_param = payload.get("req_param")
    delay = state.delays.get(f"ws:{channel}")
    if delay:  # tests: an answer still on its way while something else happens
        await asyncio.sleep(delay)
    rate = _rate_fields(state, api_key, channel)
    req_header = payload.get("req_header")
    late = countdown.expired(
        state, req_header.get("x-gate-exptime") if isinstance(req_header, dict) else None
    )
    if late is not None:  # checked when handled, as REST: held back past it, never executed
        errs = {"label": late.label, "message": late.message}
        await conn.ws.send_str(_api_answer(conn, channel, req_id, late.status, {"errs": errs}))
        return
    if channel in PLACE_CHANNELS:
        echo = {**payload, "api_key": "", "signature": "", "timestamp": ""}
        ack = _api_answer(conn, channel, req_id, 200, {"result": echo}, True, rate)
        await conn.ws.send_str(ack)
    try:
        result = run_call(state, account, conn.product, conn.settle, channel, req_param, headers)
    except ApiError as exc:
        errs = {"label": exc.label, "message": exc.message}
        answer = _api_answer(conn, channel, req_id, exc.status, {"errs": errs}, rate=rate)
        await conn.ws.send_str(answer)
        return
    await conn.ws.send_str(_api_answer(conn, channel, req_id, 200, {"result": result}, rate=rate))
    if not channel.endswith(("_status", "_list")):
        amended = channel.endswith("_amend")
        await order_change(state, api_key, account, conn.product, conn.settle, result, amended)
