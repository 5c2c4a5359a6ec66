"""Perpetual futures: accounts, orders, positions and leverage, per API key, in memory.

Sizes are contracts: integers in Gate's classic answers, decimal strings when the request carries
``X-Gate-Size-Decimal: 1`` (the Python SDK always sends it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sidecar.devtools.exchange import markets as m
from sidecar.devtools.exchange.calls import (
    ApiError,
    Call,
    Result,
    choice,
    decimal,
    invalid,
    limit,
    list_body,
    obj_body,
    required,
)
from sidecar.devtools.exchange.handlers_public import known_contract, settle

SIZE_FIELDS = ("size", "left", "iceberg")


def _size(call: Call, value: str) -> str | int:
    if call.headers.get("X-Gate-Size-Decimal") == "1":
        return value
    number = Decimal(value)
    return int(number) if number == number.to_integral_value() else value


def _render(call: Call, doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for name in SIZE_FIELDS:
        if name in out:
            out[name] = _size(call, out[name])
    return out


def futures_accounts(call: Call) -> Result:
    currency = settle(call).upper()
    total = "5000" if currency == "USDT" else "0.1"
    return 200, {
        "total": total,
        "unrealised_pnl": "0",
        "position_margin": "0",
        "order_margin": "0",
        "available": total,
        "point": "0",
        "bonus": "0",
        "currency": currency,
        "in_dual_mode": False,
        "enable_credit": False,
        "position_initial_margin": "0",
        "maintenance_margin": "0",
        "enable_evolved_classic": True,
        "cross_order_margin": "0",
        "cross_initial_margin": "0",
        "cross_maintenance_margin": "0",
        "cross_unrealised_pnl": "0",
        "cross_available": total,
        "isolated_position_margin": "0",
        "history": {"dnw": total, "pnl": "0", "fee": "0", "refr": "0", "fund": "0"},
    }


def _position(call: Call, contract: str) -> dict[str, Any]:
    key = f"{settle(call)}/{contract}"
    return call.acct.positions.setdefault(
        key,
        {
            "user": call.acct.uid,
            "contract": contract,
            "size": "0",
            "leverage": "10",
            "risk_limit": "1000000",
            "leverage_max": "100",
            "maintenance_rate": "0.005",
            "value": "0",
            "margin": "0",
            "entry_price": "0",
            "liq_price": "0",
            "mark_price": m.price(contract),
            "unrealised_pnl": "0",
            "realised_pnl": "0",
            "history_pnl": "0",
            "last_close_pnl": "0",
            "realised_point": "0",
            "history_point": "0",
            "adl_ranking": 5,
            "pending_orders": 0,
            "mode": "single",
            "cross_leverage_limit": "0",
            "update_time": int(call.state.now()),
        },
    )


def _new_order(call: Call, spec: dict[str, Any]) -> dict[str, Any]:
    required(spec, "contract", "size")
    contract = known_contract(call, str(spec["contract"]))
    size = decimal(spec["size"], "size")
    if size == 0 and not spec.get("close"):
        raise invalid("size must not be 0 (unless close is set)")
    price = decimal(spec.get("price", "0"), "price")
    tif = choice(spec, "tif", ("gtc", "ioc", "poc", "fok"), "ioc" if price == 0 else "gtc")
    if price == 0 and tif not in ("ioc", "fok"):
        raise invalid("a market order (price 0) needs tif ioc or fok")
    filled = price == 0  # a market order fills at once here; limit orders rest on the book
    now = call.state.now()
    order: dict[str, Any] = {
        "id": call.state.next_id(),
        "user": call.acct.uid,
        "create_time": round(now, 3),
        "update_time": round(now, 3),
        "status": "finished" if filled else "open",
        "contract": contract,
        "size": str(size),
        "iceberg": str(spec.get("iceberg", "0")),
        "price": str(spec.get("price", "0")),
        "close": bool(spec.get("close", False)),
        "is_close": bool(spec.get("close", False)),
        "reduce_only": bool(spec.get("reduce_only", False)),
        "is_reduce_only": bool(spec.get("reduce_only", False)),
        "is_liq": False,
        "tif": tif,
        "left": "0" if filled else str(size),
        "fill_price": m.price(contract) if filled else "0",
        "text": str(spec.get("text", "api")),
        "tkfr": "0.00075",
        "mkfr": "-0.00025",
        "refu": 0,
        "stp_id": 0,
        "stp_act": "-",
        "amend_text": "-",
    }
    if filled:
        order.update(finish_as="filled", finish_time=round(now, 3))
        position = _position(call, contract)
        position["size"] = str(Decimal(position["size"]) + size)
    call.acct.futures_orders[f"{settle(call)}/{order['id']}"] = order
    return order


def create_order(call: Call) -> Result:
    return 201, _render(call, _new_order(call, obj_body(call)))


def batch_orders(call: Call) -> Result:
    results: list[dict[str, Any]] = []
    for spec in list_body(call):
        try:
            order = _render(call, _new_order(call, spec))
            results.append({"succeeded": True, **order})
        except ApiError as exc:  # Gate answers per order, not for the whole batch
            results.append({"succeeded": False, "label": exc.label, "detail": exc.message})
    return 200, results


def _orders(call: Call) -> list[dict[str, Any]]:
    prefix = f"{settle(call)}/"
    return [o for k, o in call.acct.futures_orders.items() if k.startswith(prefix)]


def list_orders(call: Call) -> Result:
    status = call.query.get("status")
    if status not in ("open", "finished"):
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "status must be open or finished")
    contract = call.query.get("contract")
    found = [
        _render(call, o)
        for o in _orders(call)
        if o["status"] == status and contract in (None, o["contract"])
    ]
    return 200, found[: limit(call)]


def _find(call: Call, ident: str) -> dict[str, Any] | None:
    """By id or by custom text (``t-...``)."""
    for order in _orders(call):
        if ident in (str(order["id"]), order["text"]):
            return order
    return None


def _order(call: Call) -> dict[str, Any]:
    order = _find(call, call.params["id"])
    if order is None:
        raise ApiError(404, "ORDER_NOT_FOUND", "Order not found")
    return order


def _cancel(call: Call, order: dict[str, Any]) -> None:
    now = round(call.state.now(), 3)
    order.update(status="finished", finish_as="cancelled", finish_time=now, update_time=now)


def get_order(call: Call) -> Result:
    return 200, _render(call, _order(call))


def cancel_order(call: Call) -> Result:
    order = _order(call)
    if order["status"] != "open":
        raise ApiError(400, "ORDER_FINISHED", "Order has been finished")
    _cancel(call, order)
    return 200, _render(call, order)


def cancel_orders(call: Call) -> Result:
    contract, side = call.query.get("contract"), call.query.get("side")
    cancelled = []
    for o in _orders(call):
        sign = "ask" if Decimal(o["size"]) < 0 else "bid"
        if o["status"] == "open" and contract in (None, o["contract"]) and side in (None, sign):
            _cancel(call, o)
            cancelled.append(_render(call, o))
    return 200, cancelled


def amend_order(call: Call) -> Result:
    """PUT /futures/{settle}/orders/{id}: a new size (the whole size, same direction) and/or
    price for an open order (Gate's FuturesOrderAmendment; nothing fills here, so all of it is
    left)."""
    spec = obj_body(call)
    order = _order(call)
    if order["status"] != "open":
        raise ApiError(400, "ORDER_FINISHED", "Order has been finished")
    if spec.get("size") in (None, "") and spec.get("price") in (None, ""):
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "size or price is required")
    if spec.get("size") not in (None, ""):
        size = decimal(spec["size"], "size")
        if size == 0 or (size > 0) != (Decimal(order["size"]) > 0):
            raise invalid("size must keep the order's direction")
        order.update(size=str(size), left=str(size))
    if spec.get("price") not in (None, ""):
        if decimal(spec["price"], "price") <= 0:
            raise invalid("price must be positive")
        order["price"] = str(spec["price"])
    order.update(
        amend_text=str(spec.get("amend_text") or "-"), update_time=round(call.state.now(), 3)
    )
    return 200, _render(call, order)


def cancel_batch_orders(call: Call) -> Result:
    """POST /futures/{settle}/batch_cancel_orders: a list of order ids, answered per order
    (Gate's FutureCancelOrderResult)."""
    if not isinstance(call.body, list) or not all(isinstance(x, str | int) for x in call.body):
        raise invalid("a JSON list of order ids is required")
    results: list[dict[str, Any]] = []
    for ident in call.body:
        order = _find(call, str(ident))
        result = {"id": str(ident), "user_id": call.acct.uid}
        if order is None or order["status"] != "open":
            message = "ORDER_NOT_FOUND" if order is None else "ORDER_FINISHED"
            results.append({**result, "succeeded": False, "message": message})
        else:
            _cancel(call, order)
            results.append({**result, "succeeded": True, "message": ""})
    return 200, results


def positions(call: Call) -> Result:
    prefix = f"{settle(call)}/"
    found = [p for k, p in call.acct.positions.items() if k.startswith(prefix)]
    if call.query.get("holding") == "true":
        found = [p for p in found if Decimal(p["size"]) != 0]
    return 200, [_render(call, p) for p in found]


def position(call: Call) -> Result:
    contract = known_contract(call, call.params["contract"])
    return 200, _render(call, _position(call, contract))


def set_leverage(call: Call) -> Result:
    """POST with its parameters in the query string (Gate's rule for positions/*/leverage)."""
    contract = known_contract(call, call.params["contract"])
    required(call.query, "leverage")
    leverage = decimal(call.query["leverage"], "leverage")
    if not 0 <= leverage <= 100:
        raise invalid("leverage must be 0 (cross) to 100")
    cross_limit = call.query.get("cross_leverage_limit", "0")
    decimal(cross_limit, "cross_leverage_limit")
    pos = _position(call, contract)
    pos.update(
        leverage=call.query["leverage"],
        cross_leverage_limit=cross_limit,
        update_time=int(call.state.now()),
    )
    return 200, _render(call, pos)
