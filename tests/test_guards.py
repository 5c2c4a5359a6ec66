"""The trading guards, table by table: each guard on each order shape (single, batch, amend,
price-triggered) of each product (spot, futures, delivery, options), and the WebSocket
trading-API entry point. Pure: no sidecar runs here (tests/test_guards_e2e.py runs one)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from sidecar.config.guards import GuardsConfig
from sidecar.gate.endpoints import template_path
from sidecar.policy.conditions import Body
from sidecar.policy.guards import Guards, Quote, QuoteKey, Refusal
from sidecar.policy.guards.describe import field_table_markdown
from sidecar.policy.guards.shapes import ENDPOINTS, WS_CHANNELS, Product

LIMITS: dict[str, Any] = {
    "instruments": ["BTC_USDT", "ETH_USDT", "BTC_USDT_20300331", "BTC_USDT-20300331-60000-C"],
    "settle": ["usdt"],
    "max_order_size": 100,
    "max_notional": 50000,
    "max_leverage": 10,
    "order_types": ["limit", "market"],
    "time_in_force": ["gtc", "ioc", "poc", "fok"],
}
QUOTES = {
    QuoteKey(Product.SPOT, None, "BTC_USDT"): Quote(last=Decimal(60000)),
    QuoteKey(Product.FUTURES, "usdt", "BTC_USDT"): Quote(Decimal(60000), Decimal("0.0001")),
    QuoteKey(Product.DELIVERY, "usdt", "BTC_USDT_20300331"): Quote(
        Decimal(60000), Decimal("0.0001")
    ),
    QuoteKey(Product.OPTIONS, None, "BTC_USDT-20300331-60000-C"): Quote(
        Decimal(1200), Decimal("0.0001")
    ),
}


def judge(
    target: str,
    body: object = None,
    *,
    quotes: dict[QuoteKey, Quote] | None = None,
    brake: str | None = None,
    **overrides: Any,
) -> Refusal | None:
    method, _, rest = target.partition(" ")
    path, _, query = rest.partition("?")
    guards = Guards(GuardsConfig(**{**LIMITS, **overrides}))
    raw = b"" if body is None else json.dumps(body).encode()
    call = guards.http_call(method, path, query, Body(raw), template=template_path(method, path))
    refusal = guards.check_brake(call, write=method != "GET", label=target, brake=brake)
    return refusal or guards.check(call, QUOTES if quotes is None else quotes)


def spot(pair: str = "BTC_USDT", amount: object = "1", price: object = "100", **kw: Any) -> Any:
    return {"currency_pair": pair, "side": "buy", "amount": amount, "price": price, **kw}


def fut(contract: object = "BTC_USDT", size: object = 1, price: object = "60000", **kw: Any) -> Any:
    return {"contract": contract, "size": size, "price": price, **kw}


def pov(pair: str = "BTC_USDT", **kw: Any) -> Any:
    order = {"currency_pair": pair, "side": "buy", "amount": "0.1", "limit_price": "60000"}
    order.update(kw)
    return {k: v for k, v in order.items() if v is not None}


def opt(size: object = 1, price: object = "1200", **kw: Any) -> Any:
    return {"contract": "BTC_USDT-20300331-60000-C", "size": size, "price": price, **kw}


BATCH = "POST /api/v4/futures/usdt/batch_orders"

# (case, target, body, overrides, the refusing guard or None, a part of the message)
CASES: list[tuple[str, str, object, dict[str, Any], str | None, str]] = [
    # -- spot: single, batch, amend, amend batch, price-triggered ------------------------------
    ("spot order inside every limit", "POST /api/v4/spot/orders", spot(), {}, None, ""),
    ("spot order on another pair", "POST /api/v4/spot/orders", spot("DOGE_USDT"), {},
     "instruments", "instrument DOGE_USDT (body.currency_pair) is not in instruments"),
    ("spot order too large", "POST /api/v4/spot/orders", spot(amount="250", price="1"), {},
     "max_order_size", "max_order_size 100 < size 250 in body.amount"),
    ("spot order too dear", "POST /api/v4/spot/orders", spot(price="60000"), {},
     "max_notional", "max_notional 50000 < notional 60000 (price 60000 x size 1) in body"),
    ("spot market order when only limit", "POST /api/v4/spot/orders",
     spot(type="market", time_in_force="ioc"), {"order_types": ["limit"]},
     "order_types", "order_types [limit] does not include market (body.type)"),
    ("spot fok when not listed", "POST /api/v4/spot/orders", spot(time_in_force="fok"),
     {"time_in_force": ["gtc", "ioc"]}, "time_in_force", "does not include fok"),
    ("spot market buy over the size in base", "POST /api/v4/spot/orders",
     spot(amount="6060000", type="market", price=None), {"max_notional": None},
     "max_order_size", "max_order_size 100 < size 101 (market buy: 6060000 quote"),
    ("spot market sell over the notional at the last price", "POST /api/v4/spot/orders",
     spot(side="sell", amount="1", type="market", price=None), {},
     "max_notional", "notional 60000 (price 60000 x size 1)"),
    ("spot batch with one bad element", "POST /api/v4/spot/batch_orders",
     [spot(), spot(), spot(), spot(amount="250", price="1")], {},
     "max_order_size", "max_order_size 100 < size 250 in orders[3].amount"),
    ("spot margin order through the same path", "POST /api/v4/spot/orders",
     spot("DOGE_USDT", account="margin"), {}, "instruments", "DOGE_USDT"),
    ("spot amend naming another pair in the query",
     "PATCH /api/v4/spot/orders/12?currency_pair=DOGE_USDT",
     {"amount": "1", "price": "1"}, {}, "instruments", "(query currency_pair)"),
    ("spot amend too large", "PATCH /api/v4/spot/orders/12",
     {"currency_pair": "BTC_USDT", "amount": "250", "price": "1"}, {},
     "max_order_size", "size 250 in body.amount"),
    ("spot amend of price alone under max_notional", "PATCH /api/v4/spot/orders/12",
     {"currency_pair": "BTC_USDT", "price": "1"}, {},
     "max_notional", "must give both size and price"),
    ("spot amend batch with a bad pair", "POST /api/v4/spot/amend_batch_orders",
     [{"currency_pair": "BTC_USDT", "order_id": "1", "amount": "1", "price": "1"},
      {"currency_pair": "DOGE_USDT", "order_id": "2", "amount": "1", "price": "1"}], {},
     "instruments", "orders[1].currency_pair"),
    ("spot price-triggered order on another market", "POST /api/v4/spot/price_orders",
     {"market": "DOGE_USDT", "trigger": {"price": "1", "rule": ">="},
      "put": {"type": "limit", "side": "buy", "price": "1", "amount": "1"}}, {},
     "instruments", "(body.market)"),
    ("spot price-triggered order too large", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "trigger": {"price": "1", "rule": ">="},
      "put": {"type": "limit", "side": "buy", "price": "1", "amount": "250"}}, {},
     "max_order_size", "size 250 in body.put.amount"),
    ("spot price-triggered market order when only limit", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "trigger": {"price": "1", "rule": ">="},
      "put": {"type": "market", "side": "buy", "amount": "1"}}, {"order_types": ["limit"]},
     "order_types", "(body.put.type)"),
    ("spot cancel-all naming no pair", "DELETE /api/v4/spot/orders", None, {},
     "allow_unscoped", "names no instrument"),
    ("spot cancel-all naming no pair, allowed", "DELETE /api/v4/spot/orders", None,
     {"allow_unscoped": True}, None, ""),
    ("spot cancel of another pair's order", "DELETE /api/v4/spot/orders/9?currency_pair=DOGE_USDT",
     None, {}, "instruments", "DOGE_USDT"),
    ("spot listing of another pair", "GET /api/v4/spot/orders?currency_pair=DOGE_USDT&status=open",
     None, {}, "instruments", "(query currency_pair)"),
    ("spot open orders of every pair", "GET /api/v4/spot/open_orders", None, {},
     "allow_unscoped", "names no instrument"),
    ("spot balances: no instrument to check", "GET /api/v4/spot/accounts", None, {}, None, ""),
    ("spot POV order inside every limit", "POST /api/v4/spot/pov_orders", pov(), {}, None, ""),
    ("spot POV order on another pair", "POST /api/v4/spot/pov_orders", pov("DOGE_USDT"), {},
     "instruments", "DOGE_USDT (body.currency_pair)"),
    ("spot POV sell too large", "POST /api/v4/spot/pov_orders",
     pov(side="sell", amount="250", limit_price="1"), {}, "max_order_size",
     "max_order_size 100 < size 250 in body.amount"),
    ("spot POV buy too large when its amount is read as quote", "POST /api/v4/spot/pov_orders",
     pov(amount="2", limit_price="0.01"), {}, "max_order_size",
     "size 200 (read as quote: 2 / price 0.01) in body.amount"),
    ("spot POV market buy priced at the last trade", "POST /api/v4/spot/pov_orders",
     pov(amount="1", limit_price=None), {}, "max_notional",
     "max_notional 50000 < notional 60000 (price 60000 x size 1) in body"),
    ("spot POV market buy within the notional", "POST /api/v4/spot/pov_orders",
     pov(amount="0.5", limit_price=None), {}, None, ""),
    ("spot POV market order when only limit", "POST /api/v4/spot/pov_orders",
     pov(limit_price=None), {"order_types": ["limit"]}, "order_types",
     "does not include market (body (no limit_price))"),
    ("spot cross-margin liquidation too large", "POST /api/v4/spot/cross_liquidate_orders",
     {"currency_pair": "BTC_USDT", "amount": "101", "price": "1"}, {}, "max_order_size",
     "size 101 in body.amount"),
    ("spot cross-margin liquidation of another pair", "POST /api/v4/spot/cross_liquidate_orders",
     {"currency_pair": "DOGE_USDT", "amount": "1", "price": "1"}, {}, "instruments", "DOGE_USDT"),
    # -- margin, unified and CrossEx leverage -------------------------------------------------
    ("margin market leverage above the limit", "POST /api/v4/margin/leverage/user_market_setting",
     {"currency_pair": "BTC_USDT", "leverage": "20"}, {}, "max_leverage",
     "max_leverage 10 < leverage 20 in body.leverage"),
    ("margin market leverage within the limit", "POST /api/v4/margin/leverage/user_market_setting",
     {"currency_pair": "BTC_USDT", "leverage": "5"}, {}, None, ""),
    ("margin market leverage of another pair", "POST /api/v4/margin/leverage/user_market_setting",
     {"currency_pair": "DOGE_USDT", "leverage": "2"}, {}, "instruments",
     "DOGE_USDT (body.currency_pair)"),
    ("margin market leverage that gives none", "POST /api/v4/margin/leverage/user_market_setting",
     {"currency_pair": "BTC_USDT"}, {}, "max_leverage", "gives no body.leverage"),
    ("margin market leverage of 0", "POST /api/v4/margin/leverage/user_market_setting",
     {"currency_pair": "BTC_USDT", "leverage": 0}, {}, "max_leverage",
     "leverage 0 in body.leverage is no leverage this guard can check"),
    ("margin market leverage that is not a number",
     "POST /api/v4/margin/leverage/user_market_setting",
     {"currency_pair": "BTC_USDT", "leverage": "ten"}, {}, "order_shape",
     "body.leverage is not a number"),
    ("unified currency leverage names no market",
     "POST /api/v4/unified/leverage/user_currency_setting",
     {"currency": "BTC", "leverage": "3"}, {}, "allow_unscoped", "names no instrument"),
    ("unified currency leverage above the limit",
     "POST /api/v4/unified/leverage/user_currency_setting", {"currency": "BTC", "leverage": "11"},
     {"allow_unscoped": True}, "max_leverage", "max_leverage 10 < leverage 11 in body.leverage"),
    ("unified currency leverage within the limit",
     "POST /api/v4/unified/leverage/user_currency_setting", {"currency": "BTC", "leverage": "3"},
     {"allow_unscoped": True}, None, ""),
    ("unified leverage of every currency above the limit",
     "POST /api/v4/unified/leverage/user_setting",
     {"leverage": "50"}, {"allow_unscoped": True}, "max_leverage", "leverage 50 in body.leverage"),
    ("unified leverage given twice in different letter cases",
     "POST /api/v4/unified/leverage/user_setting", {"leverage": "5", "LEVERAGE": "50"},
     {"allow_unscoped": True}, "order_shape", "body.leverage is given 2 times"),
    ("CrossEx position leverage above the limit", "POST /api/v4/crossex/positions/leverage",
     {"symbol": "BTC_USDT", "leverage": "20"}, {}, "max_leverage", "leverage 20 in body.leverage"),
    ("CrossEx margin position leverage of another symbol",
     "POST /api/v4/crossex/margin_positions/leverage",
     {"symbol": "DOGE_USDT", "leverage": "2"}, {}, "instruments", "DOGE_USDT (body.symbol)"),
    # -- perpetual futures --------------------------------------------------------------------
    ("futures order inside every limit", "POST /api/v4/futures/usdt/orders", fut(), {}, None, ""),
    ("futures order on the btc settle", "POST /api/v4/futures/btc/orders", fut("BTC_USD"), {},
     "settle", "settle btc (path {settle}) is not in settle [usdt]"),
    ("futures order on another contract", "POST /api/v4/futures/usdt/orders", fut("DOGE_USDT"),
     {}, "instruments", "(body.contract)"),
    ("futures short too large", "POST /api/v4/futures/usdt/orders", fut(size=-250), {},
     "max_order_size", "max_order_size 100 < size 250 in body.size"),
    ("futures order over the notional with the multiplier", "POST /api/v4/futures/usdt/orders",
     fut(size=100, price="60000"), {"max_notional": 500},
     "max_notional", "notional 600 (price 60000 x size 100 x multiplier 0.0001) in body"),
    ("futures market order priced at the last trade", "POST /api/v4/futures/usdt/orders",
     fut(size=100, price="0", tif="ioc"), {"max_notional": 500}, "max_notional", "notional 600"),
    ("futures market order with no price known", "POST /api/v4/futures/usdt/orders",
     fut(size=1, price="0", tif="ioc"), {"quotes": {}},
     "max_notional", "no last price for BTC_USDT (not fetched)"),
    ("futures market order when only limit", "POST /api/v4/futures/usdt/orders",
     fut(price="0", tif="ioc"), {"order_types": ["limit"]},
     "order_types", "does not include market (body.price)"),
    ("futures poc when only gtc", "POST /api/v4/futures/usdt/orders", fut(tif="poc"),
     {"time_in_force": ["gtc"]}, "time_in_force", "(body.tif)"),
    ("futures order that does not reduce", "POST /api/v4/futures/usdt/orders", fut(),
     {"reduce_only": True}, "reduce_only", "body sets none of reduce_only, close, auto_size"),
    ("futures reduce-only order under reduce_only", "POST /api/v4/futures/usdt/orders",
     fut(reduce_only=True), {"reduce_only": True}, None, ""),
    ("futures batch with one bad element", BATCH,
     [fut(), fut(), fut(), fut(size=250, price="1")], {},
     "max_order_size", "max_order_size 100 < size 250 in orders[3].size"),
    ("futures batch with a bad contract", BATCH, [fut(), fut("SOL_USDT")], {},
     "instruments", "orders[1].contract"),
    ("futures amend too large", "PUT /api/v4/futures/usdt/orders/5", {"size": 250}, {
        "max_notional": None}, "max_order_size", "size 250 in body.size"),
    ("futures amend under max_notional: no contract to price", "PUT /api/v4/futures/usdt/orders/5",
     {"size": 2, "price": "60000"}, {}, "max_notional",
     "PUT /api/v4/futures/usdt/orders/5 names no contract (Gate's futures amend carries none), "
     "so its notional cannot be checked; instead, cancel the order (DELETE "
     "/api/v4/futures/usdt/orders/5) and place it again with the new size and price (POST "
     "/api/v4/futures/usdt/orders)"),
    ("futures amend batch under max_notional", "POST /api/v4/futures/usdt/batch_amend_orders",
     [{"order_id": 1, "size": 1, "price": "1"}], {}, "max_notional",
     "instead, cancel the orders (POST /api/v4/futures/usdt/batch_cancel_orders) and place them "
     "again (POST /api/v4/futures/usdt/batch_orders)"),
    ("futures BBO order priced at the last trade", "POST /api/v4/futures/usdt/bbo_orders",
     {"contract": "BTC_USDT", "size": 100, "direction": "buy", "level": 1}, {"max_notional": 500},
     "max_notional", "notional 600 (price 60000 x size 100 x multiplier 0.0001)"),
    ("futures BBO order: a price Gate ignores is not read", "POST /api/v4/futures/usdt/bbo_orders",
     {"contract": "BTC_USDT", "size": 100, "price": "1", "direction": "buy"},
     {"max_notional": 500}, "max_notional", "notional 600"),
    ("futures BBO order when only limit", "POST /api/v4/futures/usdt/bbo_orders",
     {"contract": "BTC_USDT", "size": 1, "direction": "buy"}, {"order_types": ["limit"]},
     "order_types", "does not include market (body (no price))"),
    ("futures price-triggered order too large in its amount",
     "POST /api/v4/futures/usdt/price_orders",
     {"initial": fut(size=1, amount="250", price="1"), "trigger": {"price": "1", "rule": 1}}, {},
     "max_order_size", "size 250 in body.initial.amount"),
    ("futures price-triggered amend by id too large",
     "PUT /api/v4/futures/usdt/price_orders/amend/7",
     {"amount": "300"}, {"max_notional": None}, "max_order_size", "size 300 in body.amount"),
    ("futures price-triggered amend by id under max_notional",
     "PUT /api/v4/futures/usdt/price_orders/amend/7", {"size": 1, "price": "1"}, {},
     "max_notional", "cancel the order (DELETE /api/v4/futures/usdt/price_orders/7)"),
    ("futures chase order: no field semantics to read",
     "POST /api/v4/futures/usdt/autoorder/v1/chase/create", {"contract": "BTC_USDT"}, {},
     "allow_unread", 'add "POST /api/v4/futures/{settle}/autoorder/v1/chase/create" to guards'),
    ("futures chase order opted in unread: only settle reads it",
     "POST /api/v4/futures/btc/autoorder/v1/chase/create", {"contract": "BTC_USDT"},
     {"allow_unread": ["POST /api/v4/futures/{settle}/autoorder/v1/chase/create"]},
     "settle", "settle btc (path {settle}) is not in settle [usdt]"),
    ("futures set_leverage above the limit",
     "POST /api/v4/futures/usdt/positions/BTC_USDT/set_leverage?leverage=20&margin_mode=cross",
     None, {}, "max_leverage", "max_leverage 10 < leverage 20 in query leverage"),
    ("futures set_leverage within the limit",
     "POST /api/v4/futures/usdt/positions/BTC_USDT/set_leverage?leverage=10&margin_mode=isolated",
     None, {}, None, ""),
    ("futures set_leverage of 0", "POST /api/v4/futures/usdt/positions/BTC_USDT/set_leverage"
     "?leverage=0&margin_mode=cross", None, {}, "max_leverage", "is no leverage this guard can"),
    ("futures set_leverage on another contract",
     "POST /api/v4/futures/usdt/positions/SOL_USDT/set_leverage?leverage=1&margin_mode=cross",
     None, {}, "instruments", "SOL_USDT (path {contract})"),
    ("futures amend batch too large", "POST /api/v4/futures/usdt/batch_amend_orders",
     [{"order_id": 1, "size": 1}, {"order_id": 2, "size": 300}], {"max_notional": None},
     "max_order_size", "orders[1].size"),
    ("futures price-triggered order on another contract", "POST /api/v4/futures/usdt/price_orders",
     {"initial": fut("SOL_USDT"), "trigger": {"price": "1", "rule": 1}}, {},
     "instruments", "(body.initial.contract)"),
    ("futures price-triggered order too large", "POST /api/v4/futures/usdt/price_orders",
     {"initial": fut(size=250, price="1"), "trigger": {"price": "1", "rule": 1}}, {},
     "max_order_size", "in body.initial.size"),
    ("futures price-triggered order that does not reduce", "POST /api/v4/futures/usdt/price_orders",
     {"initial": fut(), "trigger": {"price": "1", "rule": 1}}, {"reduce_only": True},
     "reduce_only", "body.initial sets none"),
    ("futures leverage above the limit",
     "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=20",
     None, {}, "max_leverage", "max_leverage 10 < leverage 20 in query leverage"),
    ("futures cross leverage above the limit",
     "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=0&cross_leverage_limit=25",
     None, {}, "max_leverage", "< leverage 25 in query cross_leverage_limit"),
    ("futures cross margin with no cross limit",
     "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=0", None, {},
     "max_leverage", "without cross_leverage_limit"),
    ("futures leverage within the limit",
     "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=10&cross_leverage_limit=5",
     None, {}, None, ""),
    ("futures dual-mode leverage above the limit",
     "POST /api/v4/futures/usdt/dual_comp/positions/BTC_USDT/leverage?leverage=50", None, {},
     "max_leverage", "leverage 50"),
    ("futures leverage on another contract",
     "POST /api/v4/futures/usdt/positions/SOL_USDT/leverage?leverage=1", None, {},
     "instruments", "(path {contract})"),
    ("futures cancel-all naming no contract", "DELETE /api/v4/futures/usdt/orders", None, {},
     "allow_unscoped", "DELETE /api/v4/futures/usdt/orders names no instrument"),
    ("futures cancel-all of one contract", "DELETE /api/v4/futures/usdt/orders?contract=BTC_USDT",
     None, {}, None, ""),
    ("futures cancel by id", "DELETE /api/v4/futures/usdt/orders/77", None, {}, None, ""),
    ("futures accounts on the btc settle", "GET /api/v4/futures/btc/accounts", None, {},
     "settle", "settle btc"),
    ("futures position of another contract", "GET /api/v4/futures/usdt/positions/SOL_USDT",
     None, {}, "instruments", "SOL_USDT"),
    # -- delivery -----------------------------------------------------------------------------
    ("delivery order inside every limit", "POST /api/v4/delivery/usdt/orders",
     fut("BTC_USDT_20300331"), {}, None, ""),
    ("delivery order on the btc settle", "POST /api/v4/delivery/btc/orders",
     fut("BTC_USDT_20300331"), {}, "settle", "settle btc"),
    ("delivery order too large", "POST /api/v4/delivery/usdt/orders",
     fut("BTC_USDT_20300331", size=101, price="1"), {}, "max_order_size", "size 101"),
    ("delivery order over the notional", "POST /api/v4/delivery/usdt/orders",
     fut("BTC_USDT_20300331", size=100), {"max_notional": 100}, "max_notional", "notional 600"),
    ("delivery price-triggered order too large", "POST /api/v4/delivery/usdt/price_orders",
     {"initial": fut("BTC_USDT_20300331", size=300, price="1"), "trigger": {"price": "1"}}, {},
     "max_order_size", "body.initial.size"),
    ("delivery leverage above the limit",
     "POST /api/v4/delivery/usdt/positions/BTC_USDT_20300331/leverage?leverage=11", None, {},
     "max_leverage", "leverage 11"),
    # -- options ------------------------------------------------------------------------------
    ("options order inside every limit", "POST /api/v4/options/orders", opt(), {}, None, ""),
    ("options order on another contract", "POST /api/v4/options/orders",
     {**opt(), "contract": "BTC_USDT-20300331-90000-P"}, {}, "instruments", "body.contract"),
    ("options order too large", "POST /api/v4/options/orders", opt(size=-101), {},
     "max_order_size", "size 101 in body.size"),
    ("options order over the notional", "POST /api/v4/options/orders", opt(size=100),
     {"max_notional": 10}, "max_notional", "notional 12 (price 1200 x size 100 x multiplier"),
    ("options market order under reduce_only", "POST /api/v4/options/orders",
     opt(price="0", tif="ioc"), {"reduce_only": True}, "reduce_only", "body sets none"),
    ("options close order under reduce_only", "POST /api/v4/options/orders",
     opt(close=True, size=0), {"reduce_only": True}, None, ""),
    ("options amend too large", "PUT /api/v4/options/orders/5", opt(size=101), {},
     "max_order_size", "size 101 in body.size"),
    ("options amend of another contract", "PUT /api/v4/options/orders/5",
     {**opt(), "contract": "BTC_USDT-20300331-90000-P"}, {}, "instruments", "body.contract"),
    ("options amend over the notional", "PUT /api/v4/options/orders/5", opt(size=100),
     {"max_notional": 10}, "max_notional", "notional 12 (price 1200 x size 100 x multiplier"),
    ("options cancel-all naming no contract", "DELETE /api/v4/options/orders", None, {},
     "allow_unscoped", "names no instrument"),
    # -- shapes no guard can read are refused, not passed -------------------------------------
    ("a field given twice in different letter cases", "POST /api/v4/futures/usdt/orders",
     {**fut(), "SIZE": 1000}, {}, "order_shape", "body.size is given 2 times"),
    ("a size that is not a number", "POST /api/v4/futures/usdt/orders", fut(size="ten"), {},
     "order_shape", "body.size is not a number"),
    ("a size of NaN", "POST /api/v4/spot/orders", spot(amount="NaN"), {},
     "order_shape", "not a finite number"),
    ("a batch that is not a list", BATCH, fut(), {}, "order_shape", "not a JSON list"),
    ("an instrument that is not a string", "POST /api/v4/futures/usdt/orders",
     fut(contract=["BTC_USDT"]), {}, "order_shape", "body.contract is not a string"),
    ("a query parameter given twice",
     "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=1&leverage=50", None, {},
     "order_shape", "query parameter leverage is given twice"),
    ("a price-triggered order without its order", "POST /api/v4/futures/usdt/price_orders",
     {"trigger": {"price": "1"}}, {}, "order_shape", "body.initial is not a JSON object"),
    ("a body that is not JSON", "POST /api/v4/spot/orders", "not json", {},
     "order_shape", "not valid UTF-8 JSON"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("target", "body", "overrides", "guard", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_each_guard_reads_each_order_shape_of_each_product(
    target: str, body: object, overrides: dict[str, Any], guard: str | None, message: str
) -> None:
    overrides = dict(overrides)
    quotes = overrides.pop("quotes", None)
    if body == "not json":
        guards = Guards(GuardsConfig(**LIMITS))
        method, _, path = target.partition(" ")
        call = guards.http_call(method, path, "", Body(b"not json"), template=None)
        refusal = guards.check(call)
    else:
        refusal = judge(target, body, quotes=quotes, **overrides)
    if guard is None:
        assert refusal is None
    else:
        assert refusal is not None, "expected a refusal"
        assert refusal.guard == guard, refusal
        assert message in refusal.message, refusal.message


BRAKE = "switched on by admin at 2030-01-01T00:00:00Z"
# (case, target, body, passes the brake)
BRAKE_CASES: list[tuple[str, str, object, bool]] = [
    ("a read", "GET /api/v4/futures/usdt/positions", None, True),
    ("a balance read outside the table", "GET /api/v4/wallet/total_balance", None, True),
    ("a cancel by id", "DELETE /api/v4/futures/usdt/orders/5", None, True),
    ("a cancel-all", "DELETE /api/v4/spot/orders?currency_pair=BTC_USDT", None, True),
    ("a batch cancel", "POST /api/v4/spot/cancel_batch_orders",
     [{"currency_pair": "BTC_USDT", "id": "1"}], True),
    ("a countdown cancel", "POST /api/v4/futures/usdt/countdown_cancel_all",
     {"timeout": 10, "contract": "BTC_USDT"}, True),
    ("a position close", "POST /api/v4/futures/usdt/orders", fut(size=0, close=True), True),
    ("a reduce-only batch", BATCH, [fut(reduce_only=True), fut(size=-1, reduce_only=True)], True),
    ("a dual-mode close", "POST /api/v4/futures/usdt/orders",
     fut(size=0, auto_size="close_long"), True),
    ("a new futures order", "POST /api/v4/futures/usdt/orders", fut(), False),
    ("a batch with one opening order", BATCH, [fut(reduce_only=True), fut()], False),
    ("a new spot order", "POST /api/v4/spot/orders", spot(), False),
    ("an amend", "PUT /api/v4/futures/usdt/orders/5", {"size": 1}, False),
    ("a price-triggered close", "POST /api/v4/futures/usdt/price_orders",
     {"initial": fut(size=0, close=True), "trigger": {"price": "1"}}, False),
    ("a leverage change", "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=1",
     None, False),
    ("a transfer", "POST /api/v4/wallet/transfers", {"currency": "USDT"}, False),
    ("a POV order", "POST /api/v4/spot/pov_orders", {"currency_pair": "BTC_USDT"}, False),
    ("an unreadable order", "POST /api/v4/futures/usdt/autoorder/v1/trail/create", {}, False),
    ("a margin leverage change", "POST /api/v4/margin/leverage/user_market_setting",
     {"currency_pair": "BTC_USDT", "leverage": "2"}, False),
    ("a chase order stop", "POST /api/v4/futures/usdt/autoorder/v1/chase/stop", {"id": 1}, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("target", "body", "passes"), [pytest.param(*c[1:], id=c[0]) for c in BRAKE_CASES]
)
def test_cancel_only_lets_only_reads_cancels_and_closes_pass(
    target: str, body: object, passes: bool
) -> None:
    refusal = judge(target, body, brake=BRAKE, allow_unscoped=True)
    if passes:
        assert refusal is None
    else:
        assert refusal is not None and refusal.guard == "cancel_only"
        assert BRAKE in refusal.message and target in refusal.message


def test_the_brake_applies_with_no_other_guard_configured() -> None:
    guards = Guards(None)
    body = Body(json.dumps(spot()).encode())
    call = guards.http_call("POST", "/api/v4/spot/orders", "", body, template=None)
    assert guards.check(call) is None  # no guard: passes
    refusal = guards.check_brake(call, write=True, label="POST /api/v4/spot/orders", brake=BRAKE)
    assert refusal is not None and refusal.guard == "cancel_only"


def ws(channel: str, req_param: object, settle: str | None = "usdt", **kw: Any) -> Refusal | None:
    guards = Guards(GuardsConfig(**{**LIMITS, **kw}))
    call = guards.ws_call(channel, settle, req_param)
    return guards.check_brake(call, write=True, label=channel, brake=None) or guards.check(
        call, QUOTES
    )


def test_websocket_trading_calls_are_judged_like_their_rest_twins() -> None:
    refusal = ws("futures.order_place", fut(size=250, price="1"))
    assert refusal is not None and refusal.message == "max_order_size 100 < size 250 in body.size"
    refusal = ws("futures.order_batch_place", [fut(), fut("SOL_USDT")])
    assert refusal is not None and "orders[1].contract" in refusal.message
    assert ws("futures.order_place", fut(), settle="btc") is not None
    assert ws("spot.order_place", spot()) is None
    refusal = ws("spot.order_cancel_cp", {"currency_pair": "DOGE_USDT", "side": "buy"})
    assert refusal is not None and refusal.guard == "instruments"
    assert ws("futures.login", {}) is None  # a channel no guard reads
    # spot.order_place takes one order or a list of them: each element is read.
    refusal = ws("spot.order_place", [spot(), spot(amount="250", price="1")], settle=None)
    assert refusal is not None and refusal.message == (
        "max_order_size 100 < size 250 in orders[1].amount"
    )
    refusal = ws("spot.order_place", "BTC_USDT", settle=None)
    assert refusal is not None and refusal.guard == "order_shape"
    assert "not a JSON object or a list of objects" in refusal.message
    refusal = ws("futures.order_amend", {"order_id": "1", "size": 2, "price": "1"})
    assert refusal is not None and refusal.message.endswith(
        "instead, cancel the order (futures.order_cancel) and place it again with the new size "
        "and price (futures.order_place)"
    )
    guards = Guards(GuardsConfig(**LIMITS))
    brake = guards.check_brake(
        guards.ws_call("futures.order_place", "usdt", fut(size=0, close=True)),
        write=True,
        label="futures.order_place",
        brake=BRAKE,
    )
    assert brake is None


def test_a_refusal_needs_no_market_data_fetch_when_the_scope_already_refuses() -> None:
    guards = Guards(GuardsConfig(**LIMITS))
    body = Body(json.dumps(fut("SOL_USDT", price="0", tif="ioc")).encode())
    call = guards.http_call("POST", "/api/v4/futures/usdt/orders", "", body, template=None)
    assert not isinstance(call, Refusal) and call is not None
    assert guards.quote_needs(call) == {}
    body = Body(json.dumps(fut(price="0", tif="ioc")).encode())
    call = guards.http_call("POST", "/api/v4/futures/usdt/orders", "", body, template=None)
    assert not isinstance(call, Refusal) and call is not None
    key = QuoteKey(Product.FUTURES, "usdt", "BTC_USDT")
    assert set(guards.quote_needs(call)) == {key}


def test_the_body_is_parsed_once_for_the_policy_and_the_guards() -> None:
    body = Body(json.dumps(spot()).encode())
    first = body.doc
    assert body.doc is first  # the same object: parsed once


def test_every_endpoint_of_the_table_is_in_the_documented_field_table() -> None:
    table = field_table_markdown()
    for endpoint in ENDPOINTS:
        assert f"`{endpoint.method} {endpoint.template}`" in table
    for channel in WS_CHANNELS:
        assert f"`WS {channel}`" in table
