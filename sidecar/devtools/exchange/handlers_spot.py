"""Spot accounts and orders, per API key, in memory (shapes: gate-api Order, BatchOrder...)."""

from __future__ import annotations

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

ACCOUNTS = ("spot", "margin", "cross_margin", "unified")
TIME_IN_FORCE = ("gtc", "ioc", "poc", "fok")


def spot_accounts(call: Call) -> Result:
    wanted = call.query.get("currency")
    balances = {"USDT": "10000", "BTC": "1.5", "ETH": "20"}
    return 200, [
        {"currency": c, "available": amount, "locked": "0", "update_id": 1}
        for c, amount in balances.items()
        if wanted in (None, c)
    ]


def _pair(name: Any) -> str:
    if name not in m.PAIRS:
        raise ApiError(400, "INVALID_CURRENCY_PAIR", f"unknown currency pair {name}")
    return str(name)


def _new_order(call: Call, spec: dict[str, Any]) -> dict[str, Any]:
    required(spec, "currency_pair", "side", "amount")
    pair = _pair(spec["currency_pair"])
    side = choice(spec, "side", ("buy", "sell"), "buy")
    kind = choice(spec, "type", ("limit", "market"), "limit")
    account = choice(spec, "account", ACCOUNTS, "spot")
    tif = choice(spec, "time_in_force", TIME_IN_FORCE, "ioc" if kind == "market" else "gtc")
    amount = decimal(spec["amount"], "amount")
    if amount <= 0:
        raise invalid("amount must be positive")
    if kind == "limit":
        required(spec, "price")
        if decimal(spec["price"], "price") <= 0:
            raise invalid("price must be positive")
    text = spec.get("text", "apiv4")
    if not isinstance(text, str):
        raise invalid("text must be a string")
    now = call.state.now()
    filled = kind == "market"  # a market order fills at once here; the rest rest on the book
    price = str(spec.get("price", "0")) if kind == "limit" else "0"
    order: dict[str, Any] = {
        "id": str(call.state.next_id()),
        "text": text,
        "amend_text": "-",
        "create_time": str(int(now)),
        "update_time": str(int(now)),
        "create_time_ms": int(now * 1000),
        "update_time_ms": int(now * 1000),
        "status": "closed" if filled else "open",
        "currency_pair": pair,
        "type": kind,
        "account": account,
        "side": side,
        "amount": str(spec["amount"]),
        "price": price,
        "time_in_force": tif,
        "iceberg": str(spec.get("iceberg", "0")),
        "left": "0" if filled else str(spec["amount"]),
        "filled_amount": str(spec["amount"]) if filled else "0",
        "fill_price": "0",
        "filled_total": "0",
        "avg_deal_price": m.price(pair) if filled else "0",
        "fee": "0",
        "fee_currency": pair.split("_")[1 if side == "sell" else 0],
        "point_fee": "0",
        "gt_fee": "0",
        "gt_maker_fee": "0",
        "gt_taker_fee": "0",
        "gt_discount": False,
        "rebated_fee": "0",
        "rebated_fee_currency": pair.split("_")[1],
        "finish_as": "filled" if filled else "open",
    }
    call.acct.spot_orders[order["id"]] = order
    return order


def create_order(call: Call) -> Result:
    return 201, _new_order(call, obj_body(call))


def batch_orders(call: Call) -> Result:
    results: list[dict[str, Any]] = []
    for spec in list_body(call):
        try:
            order = _new_order(call, spec)
            results.append({"succeeded": True, "label": "", "message": "", **order})
        except ApiError as exc:  # Gate answers per order, not for the whole batch
            results.append(
                {"succeeded": False, "label": exc.label, "message": exc.message, "text": ""}
            )
    return 200, results


def list_orders(call: Call) -> Result:
    status = call.query.get("status")
    if status not in ("open", "finished"):
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "status must be open or finished")
    pair = call.query.get("currency_pair")
    if status == "open" and not pair:
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "currency_pair is required")
    account, side = call.query.get("account"), call.query.get("side")
    orders = [
        o
        for o in call.acct.spot_orders.values()
        if (o["status"] == "open") == (status == "open")
        and pair in (None, o["currency_pair"])
        and account in (None, o["account"])
        and side in (None, o["side"])
    ]
    return 200, orders[: limit(call)]


def open_orders(call: Call) -> Result:
    pair, account = call.query.get("currency_pair"), call.query.get("account")
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for o in call.acct.spot_orders.values():
        if (
            o["status"] == "open"
            and pair in (None, o["currency_pair"])
            and account in (None, o["account"])
        ):
            by_pair.setdefault(o["currency_pair"], []).append(o)
    return 200, [{"currency_pair": p, "total": len(v), "orders": v} for p, v in by_pair.items()]


def _find(call: Call, ident: str, pair: Any) -> dict[str, Any] | None:
    """By id or by custom text (``t-...``), within the currency pair Gate requires."""
    if not pair:
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "currency_pair is required")
    for order in call.acct.spot_orders.values():
        if ident in (order["id"], order["text"]) and order["currency_pair"] == pair:
            return order
    return None


def _order(call: Call, pair: Any = None) -> dict[str, Any]:
    order = _find(call, call.params["id"], pair or call.query.get("currency_pair"))
    if order is None:
        raise ApiError(404, "ORDER_NOT_FOUND", "Order not found")
    return order


def _cancel(call: Call, order: dict[str, Any]) -> None:
    now = call.state.now()
    order.update(
        status="cancelled",
        finish_as="cancelled",
        update_time=str(int(now)),
        update_time_ms=int(now * 1000),
    )


def get_order(call: Call) -> Result:
    return 200, _order(call)


def cancel_order(call: Call) -> Result:
    order = _order(call)
    if order["status"] != "open":
        raise ApiError(400, "ORDER_CLOSED", "Order has been closed or cancelled")
    _cancel(call, order)
    return 200, order


def cancel_orders(call: Call) -> Result:
    pair, side = call.query.get("currency_pair"), call.query.get("side")
    account = call.query.get("account")
    cancelled = []
    for o in call.acct.spot_orders.values():
        if (
            o["status"] == "open"
            and pair in (None, o["currency_pair"])
            and side in (None, o["side"])
            and account in (None, o["account"])
        ):
            _cancel(call, o)
            cancelled.append({"succeeded": True, **o})
    return 200, cancelled


def amend_order(call: Call) -> Result:
    """PATCH /spot/orders/{id}: a new amount and/or price for an open order (nothing fills
    here, so the amount left is the whole new amount). ``currency_pair`` may be in the query or
    the body, as Gate accepts both."""
    spec = obj_body(call)
    order = _order(call, call.query.get("currency_pair") or spec.get("currency_pair"))
    if order["status"] != "open":
        raise ApiError(400, "ORDER_CLOSED", "Order has been closed or cancelled")
    if spec.get("amount") in (None, "") and spec.get("price") in (None, ""):
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "amount or price is required")
    changes: dict[str, Any] = {}
    for name in ("amount", "price"):
        if spec.get(name) not in (None, ""):
            if decimal(spec[name], name) <= 0:
                raise invalid(f"{name} must be positive")
            changes[name] = str(spec[name])
    if "amount" in changes:
        changes["left"] = changes["amount"]
    now = call.state.now()
    order.update(
        changes,
        amend_text=str(spec.get("amend_text") or "-"),
        update_time=str(int(now)),
        update_time_ms=int(now * 1000),
    )
    return 200, order


def cancel_batch_orders(call: Call) -> Result:
    """POST /spot/cancel_batch_orders: ``[{currency_pair, id, account?}]``, answered per order
    (Gate's CancelOrderResult)."""
    results: list[dict[str, Any]] = []
    for spec in list_body(call):
        ident, pair = str(spec.get("id", "")), spec.get("currency_pair")
        result = {"currency_pair": pair, "id": ident, "account": spec.get("account", "spot")}
        order = _find(call, ident, pair) if ident and pair else None
        if order is None:
            label, message = "ORDER_NOT_FOUND", "Order not found"
        elif order["status"] != "open":
            label, message = "ORDER_CLOSED", "Order has been closed or cancelled"
        else:
            _cancel(call, order)
            results.append({**result, "text": order["text"], "succeeded": True})
            continue
        results.append({**result, "succeeded": False, "label": label, "message": message})
    return 200, results
