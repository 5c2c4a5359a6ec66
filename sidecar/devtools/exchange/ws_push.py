"""What the exchange pushes to WebSocket subscribers when an account's orders change, whether the
change came over REST or the WebSocket trading API (shapes: Gate API v4 WebSocket docs,
``spot.orders``, ``spot.balances``, ``futures.orders``, ``futures.positions``,
``futures.balances``; what ccxt.pro parses from them)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sidecar.devtools.exchange import handlers_futures as fut
from sidecar.devtools.exchange import handlers_spot as spot
from sidecar.devtools.exchange.calls import Handler
from sidecar.devtools.exchange.state import Account, ExchangeState

ORDER_WRITES: dict[Handler, str] = {
    spot.create_order: "spot",
    spot.batch_orders: "spot",
    spot.cancel_order: "spot",
    spot.cancel_orders: "spot",
    fut.create_order: "futures",
    fut.batch_orders: "futures",
    fut.cancel_order: "futures",
    fut.cancel_orders: "futures",
}


@dataclass(eq=False)
class Conn:
    """One client connection to the exchange's WebSocket side."""

    ws: web.WebSocketResponse
    raw_path: str
    product: str  # spot | futures
    settle: str  # "" on spot
    login: str | None = None  # the API key a *.login verified
    subs: dict[str, str] = field(default_factory=dict)  # channel -> API key ("" when public)


def frame(channel: str, event: str, **fields: Any) -> str:
    now = time.time()
    return json.dumps(
        {"time": int(now), "time_ms": int(now * 1000), "channel": channel, "event": event, **fields}
    )


async def publish(
    state: ExchangeState, api_key: str, product: str, settle: str, channel: str, result: Any
) -> None:
    text = frame(channel, "update", result=result)
    for conn in list(state.ws_connections):
        if (
            conn.product == product
            and conn.settle == settle
            and conn.subs.get(channel) == api_key
            and not conn.ws.closed
        ):
            await conn.ws.send_str(text)


def _orders(doc: Any) -> list[dict[str, Any]]:
    items = doc if isinstance(doc, list) else [doc]
    return [o for o in items if isinstance(o, dict) and "id" in o]


async def order_change(
    state: ExchangeState, api_key: str, account: Account, product: str, settle: str, doc: Any
) -> None:
    """Push the changed orders, and the balance and position updates they imply."""
    orders = _orders(doc)
    if not orders:
        return
    now = time.time()
    if product == "spot":
        result = [{**o, "event": "put" if o["status"] == "open" else "finish"} for o in orders]
        await publish(state, api_key, "spot", "", "spot.orders", result)
        balance = {
            "timestamp": str(int(now)),
            "timestamp_ms": str(int(now * 1000)),
            "user": str(account.uid),
            "currency": "USDT",
            "change": "0",
            "total": "10000",
            "available": "10000",
            "freeze": "0",
            "freeze_change": "0",
            "change_type": "order-create",
        }
        await publish(state, api_key, "spot", "", "spot.balances", [balance])
        return
    result = [{**o, "time": int(now), "time_ms": int(now * 1000)} for o in orders]
    await publish(state, api_key, "futures", settle, "futures.orders", result)
    touched = {o["contract"] for o in orders if o.get("finish_as") == "filled"}
    positions = [
        {**p, "time": int(now), "time_ms": int(now * 1000)}
        for key, p in account.positions.items()
        if key.startswith(f"{settle}/") and p["contract"] in touched
    ]
    if positions:
        await publish(state, api_key, "futures", settle, "futures.positions", positions)
    futures_balance: dict[str, Any] = {
        "balance": "5000",
        "change": "0",
        "currency": settle.upper(),
        "text": "order",
        "time": int(now),
        "time_ms": int(now * 1000),
        "type": "fee",
        "user": str(account.uid),
    }
    await publish(state, api_key, "futures", settle, "futures.balances", [futures_balance])
