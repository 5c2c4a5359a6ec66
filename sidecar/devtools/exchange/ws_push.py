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
from sidecar.devtools.exchange.ws_channels import WsProduct

ORDER_WRITES: dict[Handler, str] = {
    spot.create_order: "spot",
    spot.batch_orders: "spot",
    spot.amend_order: "spot",
    spot.cancel_order: "spot",
    spot.cancel_orders: "spot",
    spot.cancel_batch_orders: "spot",
    fut.create_order: "futures",
    fut.batch_orders: "futures",
    fut.amend_order: "futures",
    fut.cancel_order: "futures",
    fut.cancel_orders: "futures",
    fut.cancel_batch_orders: "futures",
}
AMENDS = frozenset({spot.amend_order, fut.amend_order})


@dataclass(eq=False)
class Conn:
    """One client connection to the exchange's WebSocket side."""

    ws: web.WebSocketResponse
    raw_path: str
    kind: WsProduct
    settle: str  # "" on spot
    login: str | None = None  # the API key a *.login verified
    subs: dict[str, str] = field(default_factory=dict)  # channel -> API key ("" when public)

    @property
    def product(self) -> str:
        return self.kind.name  # spot | futures | delivery | options


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


def _orders(doc: Any, account: Account, product: str, settle: str) -> list[dict[str, Any]]:
    """The orders an answer concerns: the orders it holds, or, for a cancel by ids (whose
    answer is one result per id), the orders it cancelled, from the book."""
    if product == "spot":
        book = list(account.spot_orders.values())
    else:
        book = [o for k, o in account.futures_orders.items() if k.startswith(f"{settle}/")]
    found = []
    for item in doc if isinstance(doc, list) else [doc]:
        if not isinstance(item, dict) or "id" not in item:
            continue
        if "status" in item:
            found.append(item)
        elif item.get("succeeded") is True:
            ident = str(item["id"])
            found += [o for o in book if ident in (str(o["id"]), o["text"])][:1]
    return found


async def order_change(
    state: ExchangeState,
    api_key: str,
    account: Account,
    product: str,
    settle: str,
    doc: Any,
    amended: bool = False,
) -> None:
    """Push the changed orders, and the balance and position updates they imply."""
    orders = _orders(doc, account, product, settle)
    if not orders:
        return
    now = time.time()
    if product == "spot":
        opened = "update" if amended else "put"
        result = [{**o, "event": opened if o["status"] == "open" else "finish"} for o in orders]
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
