"""The one field table: which order shape each endpoint (and WebSocket trading-API channel)
carries, and which JSON fields, query parameters and path segments each guard reads. Pure.

Endpoint facts from Gate's API v4 documentation (v4.105) and the official Python SDK (gate-api
7.2.161: ``Order``, ``BatchAmendItem``, ``SpotPriceTriggeredOrder``, ``SpotPovOrderCreator``,
``LiquidateOrder``, ``FuturesOrder``, ``FuturesBBOOrder``, ``FuturesInitialOrder``,
``FuturesPriceTriggeredOrder``, ``FuturesUpdatePriceTriggeredOrder``, ``FuturesOrderAmendment``,
``OptionsOrder``, ``AmendOptionsOrderRequest``, ``MarginMarketLeverage``,
``UnifiedLeverageSetting``, ``UserLeverageSetting``, ``CrossexLeverageRequest``); WebSocket
channel names from the reference's "Order channels". ``docs/guards.md`` shows this table
(:mod:`sidecar.policy.guards.describe`), so the documentation cannot drift from what is enforced.
The vocabulary (products, operations, sources) is :mod:`sidecar.policy.guards.kinds`.

Longer than the usual module on purpose: it is one table, and splitting it would put the rows of
one product in two places.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.policy.guards.kinds import (
    Amount,
    LeverageFields,
    Op,
    OrderFields,
    Orders,
    Pricing,
    Product,
    Shape,
)

__all__ = [
    "ENDPOINTS",
    "WS_CHANNELS",
    "Amount",
    "Endpoint",
    "LeverageFields",
    "Op",
    "OrderFields",
    "Orders",
    "Pricing",
    "Product",
    "Shape",
    "find_endpoint",
]

SPOT_FIELDS = OrderFields(
    "amount", "price", "type", "time_in_force", "side",
    pricing=Pricing.TYPE, buy_amount=Amount.QUOTE_IF_MARKET,
)  # fmt: skip
SPOT_AMEND_FIELDS = OrderFields("amount", "price", None, None, None)
# POV orders: no type (a missing limit_price trades at the market), no time in force (ttl is a
# lifetime, not one), and Gate does not say which currency a buy's amount is in.
POV_FIELDS = OrderFields("amount", "limit_price", None, None, "side", buy_amount=Amount.EITHER)
# Closes a cross-margin position at a price: no type, side or time in force of its own.
LIQUIDATE_FIELDS = OrderFields("amount", "price", None, None, None)
CLOSING = ("reduce_only", "close", "auto_size")
CONTRACT_FIELDS = OrderFields("size", "price", None, "tif", None, CLOSING)
# A price-triggered order's `initial` also takes `amount` (a decimal size that wins over `size`).
TRIGGER_FIELDS = OrderFields("size", "price", None, "tif", None, CLOSING, size_aliases=("amount",))
BBO_FIELDS = OrderFields("size", None, None, "tif", None, CLOSING, pricing=Pricing.NONE)
CONTRACT_AMEND_FIELDS = OrderFields("size", "price", None, None, None)
TRIGGER_AMEND_FIELDS = OrderFields("size", "price", None, None, None, size_aliases=("amount",))


def _spot(op: Op, orders: Orders = Orders.NONE, *instrument: str, **kw: object) -> Shape:
    return Shape(Product.SPOT, op, orders, instrument=instrument, **kw)  # type: ignore[arg-type]


def _contract(
    product: Product, op: Op, orders: Orders = Orders.NONE, *instrument: str, **kw: object
) -> Shape:
    return Shape(product, op, orders, instrument=instrument, **kw)  # type: ignore[arg-type]


def _leverage(product: Product, value: str, *instrument: str, cross: str | None = None) -> Shape:
    return Shape(product, Op.LEVERAGE, instrument=instrument, leverage=LeverageFields(value, cross))


# -- spot (also margin, cross-margin and unified orders: same paths, `account` differs) --------
SPOT_PLACE = _spot(Op.PLACE, Orders.OBJECT, "order:currency_pair", fields=SPOT_FIELDS)
SPOT_BATCH = _spot(Op.PLACE, Orders.LIST, "order:currency_pair", fields=SPOT_FIELDS)
SPOT_AMEND = _spot(
    Op.AMEND, Orders.OBJECT, "query:currency_pair", "order:currency_pair",
    fields=SPOT_AMEND_FIELDS, instead="give currency_pair (Gate requires it)",
)  # fmt: skip
SPOT_AMEND_BATCH = _spot(
    Op.AMEND, Orders.LIST, "order:currency_pair",
    fields=SPOT_AMEND_FIELDS, instead="give currency_pair (Gate requires it)",
)  # fmt: skip
SPOT_TRIGGER = _spot(Op.TRIGGER, Orders.OBJECT, "body:market", nested="put", fields=SPOT_FIELDS)
SPOT_POV = _spot(Op.PLACE, Orders.OBJECT, "order:currency_pair", fields=POV_FIELDS)
SPOT_LIQUIDATE = _spot(Op.PLACE, Orders.OBJECT, "order:currency_pair", fields=LIQUIDATE_FIELDS)
SPOT_CANCEL = _spot(Op.CANCEL, Orders.NONE, "query:currency_pair")
SPOT_CANCEL_BATCH = _spot(Op.CANCEL, Orders.LIST, "order:currency_pair")
SPOT_CANCEL_ALL = _spot(Op.CANCEL_ALL, Orders.NONE, "query:currency_pair")
SPOT_TRIGGER_CANCEL_ALL = _spot(Op.CANCEL_ALL, Orders.NONE, "query:market")
SPOT_COUNTDOWN = _spot(Op.CANCEL_ALL, Orders.NONE, "body:currency_pair")
SPOT_LIST = _spot(Op.LIST, Orders.NONE, "query:currency_pair")
SPOT_TRIGGER_LIST = _spot(Op.LIST, Orders.NONE, "query:market")
SPOT_GET_ONE = _spot(Op.GET_ONE, Orders.NONE, "query:currency_pair")


def _contract_shapes(p: Product, base: str) -> dict[str, Shape]:
    """``base``: the REST prefix (``/api/v4/futures/{settle}``) the refusal hints name."""
    again = "place it again with the new size and price"
    amend = f"cancel the order (DELETE {base}/orders/{{id}}) and {again} (POST {base}/orders)"
    return {
        "place": _contract(p, Op.PLACE, Orders.OBJECT, "order:contract", fields=CONTRACT_FIELDS),
        "batch": _contract(p, Op.PLACE, Orders.LIST, "order:contract", fields=CONTRACT_FIELDS),
        "bbo": _contract(p, Op.PLACE, Orders.OBJECT, "order:contract", fields=BBO_FIELDS),
        "amend": _contract(p, Op.AMEND, Orders.OBJECT, fields=CONTRACT_AMEND_FIELDS, instead=amend),
        "amend_batch": _contract(
            p, Op.AMEND, Orders.LIST, fields=CONTRACT_AMEND_FIELDS,
            instead=f"cancel the orders (POST {base}/batch_cancel_orders) and place them again "
            f"(POST {base}/batch_orders)",
        ),
        "trigger": _contract(
            p, Op.TRIGGER, Orders.OBJECT, "order:contract", nested="initial",
            fields=TRIGGER_FIELDS,
        ),
        "trigger_amend": _contract(
            p, Op.AMEND, Orders.OBJECT, "order:contract", fields=CONTRACT_AMEND_FIELDS
        ),
        "trigger_amend_by_id": _contract(
            p, Op.AMEND, Orders.OBJECT, fields=TRIGGER_AMEND_FIELDS,
            instead=f"cancel the order (DELETE {base}/price_orders/{{id}}) and {again} "
            f"(POST {base}/price_orders)",
        ),
        "cancel": _contract(p, Op.CANCEL),
        "cancel_all": _contract(p, Op.CANCEL_ALL, Orders.NONE, "query:contract"),
        "stop_all": _contract(p, Op.CANCEL_ALL),
        "countdown": _contract(p, Op.CANCEL_ALL, Orders.NONE, "body:contract"),
        "leverage": _leverage(
            p, "query:leverage", "path:contract", cross="query:cross_leverage_limit"
        ),
        "set_leverage": _leverage(p, "query:leverage", "path:contract"),
        "position": _contract(p, Op.POSITION, Orders.NONE, "path:contract"),
        "list": _contract(p, Op.LIST, Orders.NONE, "query:contract"),
        "list_path": _contract(p, Op.LIST, Orders.NONE, "path:contract"),
        "get_one": _contract(p, Op.GET_ONE),
        # Chase and trailing orders: Gate publishes no field semantics the guards could trust.
        "unknown": _contract(p, Op.PLACE, Orders.UNKNOWN),
    }  # fmt: skip


FUT = _contract_shapes(Product.FUTURES, "/api/v4/futures/{settle}")
DLV = _contract_shapes(Product.DELIVERY, "/api/v4/delivery/{settle}")
OPT = _contract_shapes(Product.OPTIONS, "/api/v4/options")
OPT_AMEND = _contract(
    Product.OPTIONS, Op.AMEND, Orders.OBJECT, "order:contract", fields=CONTRACT_AMEND_FIELDS
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str  # /api/v4/futures/{settle}/orders/{id}
    shape: Shape
    pattern: re.Pattern[str]


def _endpoint(method: str, template: str, shape: Shape) -> Endpoint:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return Endpoint(method, template, shape, re.compile(regex))


def _contract_endpoints(prefix: str, s: dict[str, Shape], *, futures: bool) -> list[Endpoint]:
    rows = [
        ("POST", "/orders", s["place"]),
        ("PUT", "/orders/{id}", s["amend"]),
        ("POST", "/price_orders", s["trigger"]),
        ("PUT", "/price_orders/{id}", s["trigger_amend"]),
        ("DELETE", "/orders", s["cancel_all"]),
        ("DELETE", "/orders/{id}", s["cancel"]),
        ("DELETE", "/price_orders", s["cancel_all"]),
        ("DELETE", "/price_orders/{id}", s["cancel"]),
        ("POST", "/countdown_cancel_all", s["countdown"]),
        ("POST", "/positions/{contract}/leverage", s["leverage"]),
        ("POST", "/positions/{contract}/margin", s["position"]),
        ("POST", "/positions/{contract}/risk_limit", s["position"]),
        ("GET", "/orders", s["list"]),
        ("GET", "/orders/{id}", s["get_one"]),
        ("GET", "/my_trades", s["list"]),
        ("GET", "/price_orders", s["list"]),
        ("GET", "/price_orders/{id}", s["get_one"]),
        ("GET", "/positions", s["list"]),
        ("GET", "/positions/{contract}", s["list_path"]),
        ("GET", "/position_close", s["list"]),
        ("GET", "/liquidates", s["list"]),
    ]
    if futures:
        rows += [
            ("POST", "/batch_orders", s["batch"]),
            ("POST", "/bbo_orders", s["bbo"]),
            ("POST", "/batch_amend_orders", s["amend_batch"]),
            ("POST", "/batch_cancel_orders", s["cancel"]),
            ("PUT", "/price_orders/amend/{id}", s["trigger_amend_by_id"]),
            ("POST", "/positions/{contract}/set_leverage", s["set_leverage"]),
            ("POST", "/dual_comp/positions/{contract}/leverage", s["leverage"]),
            ("POST", "/dual_comp/positions/{contract}/margin", s["position"]),
            ("POST", "/dual_comp/positions/{contract}/risk_limit", s["position"]),
            ("GET", "/dual_comp/positions/{contract}", s["list_path"]),
            ("POST", "/autoorder/v1/chase/create", s["unknown"]),
            ("POST", "/autoorder/v1/chase/stop", s["cancel"]),
            ("POST", "/autoorder/v1/chase/stop_all", s["stop_all"]),
            ("POST", "/autoorder/v1/trail/create", s["unknown"]),
            ("POST", "/autoorder/v1/trail/update", s["unknown"]),
            ("POST", "/autoorder/v1/trail/stop", s["cancel"]),
            ("POST", "/autoorder/v1/trail/stop_all", s["stop_all"]),
        ]
    return [_endpoint(m, prefix + path, shape) for m, path, shape in rows]


ENDPOINTS: tuple[Endpoint, ...] = (
    _endpoint("POST", "/api/v4/spot/orders", SPOT_PLACE),
    _endpoint("POST", "/api/v4/spot/batch_orders", SPOT_BATCH),
    _endpoint("PATCH", "/api/v4/spot/orders/{id}", SPOT_AMEND),
    _endpoint("POST", "/api/v4/spot/amend_batch_orders", SPOT_AMEND_BATCH),
    _endpoint("POST", "/api/v4/spot/price_orders", SPOT_TRIGGER),
    _endpoint("POST", "/api/v4/spot/pov_orders", SPOT_POV),
    _endpoint("POST", "/api/v4/spot/cross_liquidate_orders", SPOT_LIQUIDATE),
    _endpoint("DELETE", "/api/v4/spot/orders", SPOT_CANCEL_ALL),
    _endpoint("DELETE", "/api/v4/spot/orders/{id}", SPOT_CANCEL),
    _endpoint("POST", "/api/v4/spot/cancel_batch_orders", SPOT_CANCEL_BATCH),
    _endpoint("DELETE", "/api/v4/spot/price_orders", SPOT_TRIGGER_CANCEL_ALL),
    _endpoint("DELETE", "/api/v4/spot/price_orders/{id}", _spot(Op.CANCEL)),
    _endpoint("DELETE", "/api/v4/spot/pov_orders", _spot(Op.CANCEL_ALL)),
    _endpoint("DELETE", "/api/v4/spot/pov_orders/{id}", _spot(Op.CANCEL)),
    _endpoint("POST", "/api/v4/spot/countdown_cancel_all", SPOT_COUNTDOWN),
    _endpoint("GET", "/api/v4/spot/orders", SPOT_LIST),
    _endpoint("GET", "/api/v4/spot/orders/{id}", SPOT_GET_ONE),
    _endpoint("GET", "/api/v4/spot/open_orders", _spot(Op.LIST)),
    _endpoint("GET", "/api/v4/spot/my_trades", SPOT_LIST),
    _endpoint("GET", "/api/v4/spot/price_orders", SPOT_TRIGGER_LIST),
    _endpoint("GET", "/api/v4/spot/price_orders/{id}", _spot(Op.GET_ONE)),
    # Leverage of spot margin markets, of a unified account's borrowed currencies (one, or all
    # of them), of CrossEx positions: the leverage is a field of the JSON body.
    _endpoint(
        "POST", "/api/v4/margin/leverage/user_market_setting",
        _leverage(Product.MARGIN, "body:leverage", "body:currency_pair"),
    ),
    _endpoint(
        "POST", "/api/v4/unified/leverage/user_currency_setting",
        _leverage(Product.UNIFIED, "body:leverage"),
    ),
    _endpoint(
        "POST", "/api/v4/unified/leverage/user_setting",
        _leverage(Product.UNIFIED, "body:leverage"),
    ),
    _endpoint(
        "POST", "/api/v4/crossex/positions/leverage",
        _leverage(Product.CROSSEX, "body:leverage", "body:symbol"),
    ),
    _endpoint(
        "POST", "/api/v4/crossex/margin_positions/leverage",
        _leverage(Product.CROSSEX, "body:leverage", "body:symbol"),
    ),
    # A margin loan names its market: instruments reads it (a loan is no order: the size and
    # price guards have nothing to weigh).
    _endpoint(
        "POST", "/api/v4/margin/uni/loans",
        Shape(Product.MARGIN, Op.LOAN, instrument=("body:currency_pair",)),
    ),
    *_contract_endpoints("/api/v4/futures/{settle}", FUT, futures=True),
    *_contract_endpoints("/api/v4/delivery/{settle}", DLV, futures=False),
    _endpoint("POST", "/api/v4/options/orders", OPT["place"]),
    _endpoint("PUT", "/api/v4/options/orders/{id}", OPT_AMEND),
    _endpoint("DELETE", "/api/v4/options/orders", OPT["cancel_all"]),
    _endpoint("DELETE", "/api/v4/options/orders/{id}", OPT["cancel"]),
    _endpoint("POST", "/api/v4/options/countdown_cancel_all", OPT["countdown"]),
    _endpoint("GET", "/api/v4/options/orders", OPT["list"]),
    _endpoint("GET", "/api/v4/options/orders/{id}", OPT["get_one"]),
    _endpoint("GET", "/api/v4/options/my_trades", OPT["list"]),
    _endpoint("GET", "/api/v4/options/positions", OPT["list"]),
    _endpoint("GET", "/api/v4/options/positions/{contract}", OPT["list_path"]),
    _endpoint("GET", "/api/v4/options/position_close", OPT["list"]),
)  # fmt: skip

_WS_AMEND = (
    "cancel the order (futures.order_cancel) and place it again with the new size and price "
    "(futures.order_place)"
)

#: The WebSocket trading API (``event: "api"``): channel -> the shape its ``req_param`` has.
#: A channel's ``req_param`` is read like a REST body (``body:`` and ``order:`` sources); the
#: futures settle currency comes from the connection's URL (``/v4/ws/usdt``).
WS_CHANNELS: dict[str, Shape] = {
    # One order or a list of them (Gate: "could be an array with api order model").
    "spot.order_place": _spot(
        Op.PLACE, Orders.OBJECT_OR_LIST, "order:currency_pair", fields=SPOT_FIELDS
    ),
    "spot.order_amend": _spot(
        Op.AMEND, Orders.OBJECT, "order:currency_pair",
        fields=SPOT_AMEND_FIELDS, instead="give currency_pair (Gate requires it)",
    ),
    "spot.order_cancel": _spot(Op.CANCEL, Orders.NONE, "body:currency_pair"),
    "spot.order_cancel_ids": SPOT_CANCEL_BATCH,
    "spot.order_cancel_cp": _spot(Op.CANCEL_ALL, Orders.NONE, "body:currency_pair"),
    "spot.order_status": _spot(Op.GET_ONE, Orders.NONE, "body:currency_pair"),
    "spot.order_list": _spot(Op.LIST, Orders.NONE, "body:currency_pair"),
    "futures.order_place": FUT["place"],
    "futures.order_batch_place": FUT["batch"],
    "futures.order_amend": _contract(
        Product.FUTURES, Op.AMEND, Orders.OBJECT, fields=CONTRACT_AMEND_FIELDS, instead=_WS_AMEND
    ),
    "futures.order_cancel": FUT["cancel"],
    "futures.order_cancel_ids": FUT["cancel"],
    "futures.order_cancel_cp": FUT["countdown"],  # {contract, side}: every order of a contract
    "futures.order_status": FUT["get_one"],
    "futures.order_list": _contract(Product.FUTURES, Op.LIST, Orders.NONE, "body:contract"),
}  # fmt: skip


def find_endpoint(method: str, path: str) -> tuple[Endpoint | None, dict[str, str]]:
    """The table row for a request, with its path parameters (``settle``, ``contract``...)."""
    for endpoint in ENDPOINTS:
        if endpoint.method == method:
            match = endpoint.pattern.fullmatch(path)
            if match:
                return endpoint, match.groupdict()
    return None, {}
