"""Public market data: no signature needed (Gate answers these to anyone)."""

from __future__ import annotations

from sidecar.devtools.exchange import markets as m
from sidecar.devtools.exchange.calls import ApiError, Call, Result


def server_time(call: Call) -> Result:
    return 200, {"server_time": int(call.state.now() * 1000)}


def currency_pairs(call: Call) -> Result:
    return 200, [m.pair(p) for p in m.PAIRS]


def currency_pair(call: Call) -> Result:
    name = call.params["pair"]
    if name not in m.PAIRS:
        raise ApiError(400, "INVALID_CURRENCY_PAIR", f"unknown currency pair {name}")
    return 200, m.pair(name)


def currencies(call: Call) -> Result:
    return 200, [m.currency(c) for c in m.CURRENCIES]


def tickers(call: Call) -> Result:
    wanted = call.query.get("currency_pair")
    if wanted is not None and wanted not in m.PAIRS:
        raise ApiError(400, "INVALID_CURRENCY_PAIR", f"unknown currency pair {wanted}")
    return 200, [m.ticker(p) for p in m.PAIRS if wanted in (None, p)]


def settle(call: Call) -> str:
    name = call.params["settle"]
    if name not in m.SETTLES:
        raise ApiError(400, "INVALID_PARAM_VALUE", f"settle must be one of {', '.join(m.SETTLES)}")
    return name


def known_contract(call: Call, name: str) -> str:
    if name not in m.CONTRACTS[settle(call)]:
        raise ApiError(400, "CONTRACT_NOT_FOUND", f"contract {name} not found")
    return name


def contracts(call: Call) -> Result:
    return 200, [m.contract(c, settle(call)) for c in m.CONTRACTS[settle(call)]]


def contract(call: Call) -> Result:
    name = known_contract(call, call.params["contract"])
    return 200, m.contract(name, settle(call))


def futures_tickers(call: Call) -> Result:
    wanted = call.query.get("contract")
    names = m.CONTRACTS[settle(call)]
    return 200, [m.futures_ticker(c) for c in names if wanted in (None, c)]


def empty_list(call: Call) -> Result:
    """Markets this exchange does not list (margin, delivery, options): ccxt loads them all."""
    return 200, []


def delivery_contracts(call: Call) -> Result:
    names = m.DELIVERY.get(call.params["settle"], ())
    return 200, [m.delivery_contract(c, call.params["settle"]) for c in names]


def delivery_contract(call: Call) -> Result:
    name, settle_name = call.params["contract"], call.params["settle"]
    if name not in m.DELIVERY.get(settle_name, ()):
        raise ApiError(400, "CONTRACT_NOT_FOUND", f"contract {name} not found")
    return 200, m.delivery_contract(name, settle_name)


def delivery_tickers(call: Call) -> Result:
    wanted = call.query.get("contract")
    names = m.DELIVERY.get(call.params["settle"], ())
    return 200, [m.futures_ticker(c) for c in names if wanted in (None, c)]


def options_contract(call: Call) -> Result:
    name = call.params["contract"]
    if name not in m.OPTIONS:
        raise ApiError(400, "CONTRACT_NOT_FOUND", f"contract {name} not found")
    return 200, m.options_contract(name)
