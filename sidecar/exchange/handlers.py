"""Gate-shaped answers for the endpoints bots and the official SDKs use. In memory only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sidecar.exchange.state import Account, ExchangeState

PAIRS = ("BTC_USDT", "ETH_USDT")
CONTRACTS = ("BTC_USDT", "ETH_USDT")


@dataclass
class Call:
    state: ExchangeState
    method: str
    params: dict[str, str]  # path parameters
    query: dict[str, str]
    body: Any  # parsed JSON or None
    account: Account | None


Result = tuple[int, Any]


class ApiError(Exception):
    def __init__(self, status: int, label: str, message: str) -> None:
        super().__init__(message)
        self.status, self.label, self.message = status, label, message


def _now() -> str:
    return str(int(time.time()))


def _acct(call: Call) -> Account:
    assert call.account is not None
    return call.account


def _obj(call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise ApiError(400, "INVALID_PARAM_VALUE", "a JSON object body is required")
    return call.body


# -- public ------------------------------------------------------------------------------------


def server_time(call: Call) -> Result:
    return 200, {"server_time": int(call.state.now() * 1000)}


def _pair(name: str) -> dict[str, Any]:
    base, quote = name.split("_")
    return {
        "id": name,
        "base": base,
        "quote": quote,
        "fee": "0.2",
        "min_base_amount": "0.0001",
        "min_quote_amount": "1",
        "amount_precision": 4,
        "precision": 2,
        "trade_status": "tradable",
        "sell_start": 0,
        "buy_start": 0,
        "type": "normal",
        "max_quote_amount": "10000000",
    }


def currency_pairs(call: Call) -> Result:
    return 200, [_pair(p) for p in PAIRS]


def currency_pair(call: Call) -> Result:
    if call.params["pair"] not in PAIRS:
        raise ApiError(400, "INVALID_CURRENCY_PAIR", "unknown currency pair")
    return 200, _pair(call.params["pair"])


def currencies(call: Call) -> Result:
    return 200, [
        {
            "currency": c,
            "delisted": False,
            "withdraw_disabled": False,
            "deposit_disabled": False,
            "trade_disabled": False,
            "chain": c,
        }
        for c in ("BTC", "ETH", "USDT")
    ]


def tickers(call: Call) -> Result:
    return 200, [
        {
            "currency_pair": p,
            "last": "60000",
            "lowest_ask": "60001",
            "highest_bid": "59999",
            "change_percentage": "1.5",
            "base_volume": "100",
            "quote_volume": "6000000",
            "high_24h": "61000",
            "low_24h": "59000",
        }
        for p in PAIRS
    ]


def _contract(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "direct",
        "quanto_multiplier": "0.0001",
        "leverage_min": "1",
        "leverage_max": "100",
        "mark_price": "60000",
        "index_price": "60000",
        "last_price": "60000",
        "order_price_round": "0.1",
        "mark_price_round": "0.01",
        "order_size_min": 1,
        "order_size_max": 1000000,
        "maker_fee_rate": "-0.00025",
        "taker_fee_rate": "0.00075",
        "in_delisting": False,
        "settle_price": "60000",
    }


def contracts(call: Call) -> Result:
    return 200, [_contract(c) for c in CONTRACTS]


def contract(call: Call) -> Result:
    if call.params["contract"] not in CONTRACTS:
        raise ApiError(404, "CONTRACT_NOT_FOUND", "contract not found")
    return 200, _contract(call.params["contract"])


def futures_tickers(call: Call) -> Result:
    return 200, [
        {
            "contract": c,
            "last": "60000",
            "mark_price": "60000",
            "index_price": "60000",
            "volume_24h": "1000",
            "change_percentage": "1.2",
        }
        for c in CONTRACTS
    ]


# -- private reads -----------------------------------------------------------------------------


def account_detail(call: Call) -> Result:
    return 200, {
        "user_id": _acct(call).uid,
        "ip_whitelist": [],
        "currency_pairs": [],
        "key": {"mode": 1},
        "tier": 2,
    }


def spot_accounts(call: Call) -> Result:
    return 200, [
        {"currency": "USDT", "available": "10000", "locked": "0", "update_id": 1},
        {"currency": "BTC", "available": "1.5", "locked": "0", "update_id": 1},
    ]


def futures_accounts(call: Call) -> Result:
    return 200, {
        "total": "5000",
        "unrealised_pnl": "0",
        "position_margin": "0",
        "order_margin": "0",
        "available": "5000",
        "point": "0",
        "currency": call.params["settle"].upper(),
        "in_dual_mode": False,
        "enable_credit": False,
    }


def total_balance(call: Call) -> Result:
    return 200, {
        "total": {"amount": "15000", "currency": "USDT"},
        "details": {
            "spot": {"amount": "10000", "currency": "USDT"},
            "futures": {"amount": "5000", "currency": "USDT"},
        },
    }


# -- spot orders -------------------------------------------------------------------------------


def _new_spot_order(call: Call, spec: dict[str, Any]) -> dict[str, Any]:
    for name in ("currency_pair", "side", "amount"):
        if name not in spec:
            raise ApiError(400, "MISSING_REQUIRED_PARAM", f"{name} is required")
    order = {
        "id": call.state.next_id(),
        "text": spec.get("text", "apiv4"),
        "create_time": _now(),
        "update_time": _now(),
        "status": "open",
        "currency_pair": spec["currency_pair"],
        "type": spec.get("type", "limit"),
        "account": spec.get("account", "spot"),
        "side": spec["side"],
        "amount": str(spec["amount"]),
        "price": str(spec.get("price", "0")),
        "time_in_force": spec.get("time_in_force", "gtc"),
        "left": str(spec["amount"]),
        "filled_total": "0",
        "fee": "0",
        "fee_currency": "USDT",
    }
    _acct(call).spot_orders[order["id"]] = order
    return order


def create_spot_order(call: Call) -> Result:
    return 201, _new_spot_order(call, _obj(call))


def batch_spot_orders(call: Call) -> Result:
    if not isinstance(call.body, list):
        raise ApiError(400, "INVALID_PARAM_VALUE", "a JSON list body is required")
    return 200, [{"succeeded": True, **_new_spot_order(call, spec)} for spec in call.body]


def list_spot_orders(call: Call) -> Result:
    status = call.query.get("status", "open")
    pair = call.query.get("currency_pair")
    orders = [
        o
        for o in _acct(call).spot_orders.values()
        if (o["status"] == "open") == (status == "open")
        and (pair is None or o["currency_pair"] == pair)
    ]
    return 200, orders


def open_spot_orders(call: Call) -> Result:
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for o in _acct(call).spot_orders.values():
        if o["status"] == "open":
            by_pair.setdefault(o["currency_pair"], []).append(o)
    return 200, [{"currency_pair": p, "total": len(v), "orders": v} for p, v in by_pair.items()]


def _spot_order(call: Call) -> dict[str, Any]:
    order = _acct(call).spot_orders.get(call.params["id"])
    if order is None:
        raise ApiError(404, "ORDER_NOT_FOUND", "Order not found")
    return order


def get_spot_order(call: Call) -> Result:
    return 200, _spot_order(call)


def cancel_spot_order(call: Call) -> Result:
    order = _spot_order(call)
    order.update(status="cancelled", update_time=_now())
    return 200, order


def cancel_spot_orders(call: Call) -> Result:
    pair = call.query.get("currency_pair")
    cancelled = []
    for o in _acct(call).spot_orders.values():
        if o["status"] == "open" and (pair is None or o["currency_pair"] == pair):
            o.update(status="cancelled", update_time=_now())
            cancelled.append(o)
    return 200, cancelled


# -- futures -----------------------------------------------------------------------------------


def _new_futures_order(call: Call, spec: dict[str, Any]) -> dict[str, Any]:
    if "contract" not in spec or "size" not in spec:
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "contract and size are required")
    order = {
        "id": int(call.state.next_id()),
        "user": _acct(call).uid,
        "contract": spec["contract"],
        "create_time": time.time(),
        "size": spec["size"],
        "iceberg": 0,
        "left": spec["size"],
        "price": str(spec.get("price", "0")),
        "fill_price": "0",
        "status": "open",
        "tif": spec.get("tif", "gtc"),
        "text": spec.get("text", "api"),
        "is_reduce_only": False,
        "is_close": False,
        "is_liq": False,
        "finish_as": None,
    }
    _acct(call).futures_orders[str(order["id"])] = order
    return order


def create_futures_order(call: Call) -> Result:
    return 201, _new_futures_order(call, _obj(call))


def batch_futures_orders(call: Call) -> Result:
    if not isinstance(call.body, list):
        raise ApiError(400, "INVALID_PARAM_VALUE", "a JSON list body is required")
    return 200, [{"succeeded": True, **_new_futures_order(call, spec)} for spec in call.body]


def list_futures_orders(call: Call) -> Result:
    status = call.query.get("status", "open")
    contract_name = call.query.get("contract")
    return 200, [
        o
        for o in _acct(call).futures_orders.values()
        if (o["status"] == "open") == (status == "open")
        and (contract_name is None or o["contract"] == contract_name)
    ]


def _futures_order(call: Call) -> dict[str, Any]:
    order = _acct(call).futures_orders.get(call.params["id"])
    if order is None:
        raise ApiError(404, "ORDER_NOT_FOUND", "Order not found")
    return order


def get_futures_order(call: Call) -> Result:
    return 200, _futures_order(call)


def cancel_futures_order(call: Call) -> Result:
    order = _futures_order(call)
    order.update(status="finished", finish_as="cancelled", finish_time=time.time())
    return 200, order


def positions(call: Call) -> Result:
    return 200, []


def set_leverage(call: Call) -> Result:
    leverage = call.query.get("leverage")
    if leverage is None:
        raise ApiError(400, "MISSING_REQUIRED_PARAM", "leverage is required (query)")
    _acct(call).leverage[call.params["contract"]] = leverage
    return 200, {
        "user": _acct(call).uid,
        "contract": call.params["contract"],
        "size": 0,
        "leverage": leverage,
        "cross_leverage_limit": call.query.get("cross_leverage_limit", "0"),
        "mode": "single",
    }


# -- things the sidecar must never let through by default ---------------------------------------


def withdraw(call: Call) -> Result:
    spec = _obj(call)
    return 200, {
        "id": "w" + call.state.next_id(),
        "currency": spec.get("currency"),
        "amount": spec.get("amount"),
        "address": spec.get("address"),
        "status": "REQUEST",
    }


def transfer(call: Call) -> Result:
    return 200, {"tx_id": int(call.state.next_id())}


def sub_account_key(call: Call) -> Result:
    return 200, {"user_id": call.params["uid"], "key": "new-sub-key", "state": 1}
