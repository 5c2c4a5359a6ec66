"""The one field table: which order shape each endpoint (and WebSocket trading-API channel)
carries, and which JSON fields, query parameters and path segments each guard reads. Pure.

Endpoint facts from Gate's API v4 documentation (v4.105) and the official Python SDK (gate-api
7.2.161: ``Order``, ``BatchAmendItem``, ``SpotPriceTriggeredOrder``, ``FuturesOrder``,
``FuturesPriceTriggeredOrder``, ``FuturesOrderAmendment``, ``OptionsOrder``); WebSocket channel
names from the reference's "Order channels". ``docs/guards.md`` shows this table
(:mod:`sidecar.policy.guards.describe`), so the documentation cannot drift from what is
enforced.

A source is written ``where:name``: ``path:contract`` (a ``{contract}`` path segment),
``query:currency_pair``, ``body:market`` (a field of the top-level JSON object) or
``order:contract`` (a field of each order object: the body, each element of a batch, or the
``put`` / ``initial`` object of a price-triggered order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Product(Enum):
    SPOT = "spot"
    FUTURES = "futures"
    DELIVERY = "delivery"
    OPTIONS = "options"


class Op(Enum):
    PLACE = "place"  # new order(s)
    TRIGGER = "price-triggered"  # a new order placed when a price is reached
    AMEND = "amend"
    CANCEL = "cancel"  # by id (or ids): names its orders, not a market
    CANCEL_ALL = "cancel all"  # every order of a market (or of every market)
    LEVERAGE = "leverage"
    POSITION = "position setting"  # margin, risk limit of one contract's position
    LIST = "list"  # reads that name a market, or every market when they name none
    GET_ONE = "read one"  # a read by id
    OTHER = "other"  # any other private call under a {settle} segment: only settle applies


class Orders(Enum):
    NONE = "none"  # no order objects
    OBJECT = "object"  # the body (or its nested object) is one order
    LIST = "list"  # the body is a list of orders: one bad element refuses the whole request
    UNKNOWN = "unknown"  # an order shape no guard can read: refused when a guard applies


@dataclass(frozen=True)
class OrderFields:
    """The order object's field names, per product."""

    size: str | None
    price: str | None
    type: str | None  # None: the type follows from the price (0 = market), as in futures
    tif: str | None
    side: str | None  # None: the sign of the size says it (futures, options)
    closing: tuple[str, ...] = ()  # fields that make an order reduce or close a position


SPOT_FIELDS = OrderFields("amount", "price", "type", "time_in_force", "side")
SPOT_AMEND_FIELDS = OrderFields("amount", "price", None, None, None)
CONTRACT_FIELDS = OrderFields(
    "size", "price", None, "tif", None, ("reduce_only", "close", "auto_size")
)
CONTRACT_AMEND_FIELDS = OrderFields("size", "price", None, None, None)


@dataclass(frozen=True)
class Shape:
    product: Product
    op: Op
    orders: Orders = Orders.NONE
    nested: str | None = None  # the order object is this field of the body (put, initial)
    fields: OrderFields | None = None
    instrument: tuple[str, ...] = ()  # sources, all checked when present
    leverage: tuple[str, ...] = ()  # sources of leverage values

    @property
    def unscoped_if_no_instrument(self) -> bool:
        """A call that then concerns every market (allow_unscoped decides)."""
        return self.op in (Op.CANCEL_ALL, Op.LIST)


def _spot(op: Op, orders: Orders = Orders.NONE, *instrument: str, **kw: object) -> Shape:
    return Shape(Product.SPOT, op, orders, instrument=instrument, **kw)  # type: ignore[arg-type]


def _contract(
    product: Product, op: Op, orders: Orders = Orders.NONE, *instrument: str, **kw: object
) -> Shape:
    return Shape(product, op, orders, instrument=instrument, **kw)  # type: ignore[arg-type]


# -- spot (also margin, cross-margin and unified orders: same paths, `account` differs) --------
SPOT_PLACE = _spot(Op.PLACE, Orders.OBJECT, "order:currency_pair", fields=SPOT_FIELDS)
SPOT_BATCH = _spot(Op.PLACE, Orders.LIST, "order:currency_pair", fields=SPOT_FIELDS)
SPOT_AMEND = _spot(
    Op.AMEND, Orders.OBJECT, "query:currency_pair", "order:currency_pair", fields=SPOT_AMEND_FIELDS
)
SPOT_AMEND_BATCH = _spot(Op.AMEND, Orders.LIST, "order:currency_pair", fields=SPOT_AMEND_FIELDS)
SPOT_TRIGGER = _spot(Op.TRIGGER, Orders.OBJECT, "body:market", nested="put", fields=SPOT_FIELDS)
SPOT_CANCEL = _spot(Op.CANCEL, Orders.NONE, "query:currency_pair")
SPOT_CANCEL_BATCH = _spot(Op.CANCEL, Orders.LIST, "order:currency_pair")
SPOT_CANCEL_ALL = _spot(Op.CANCEL_ALL, Orders.NONE, "query:currency_pair")
SPOT_TRIGGER_CANCEL_ALL = _spot(Op.CANCEL_ALL, Orders.NONE, "query:market")
SPOT_COUNTDOWN = _spot(Op.CANCEL_ALL, Orders.NONE, "body:currency_pair")
SPOT_LIST = _spot(Op.LIST, Orders.NONE, "query:currency_pair")
SPOT_TRIGGER_LIST = _spot(Op.LIST, Orders.NONE, "query:market")
SPOT_GET_ONE = _spot(Op.GET_ONE, Orders.NONE, "query:currency_pair")


def _contract_shapes(p: Product) -> dict[str, Shape]:
    return {
        "place": _contract(p, Op.PLACE, Orders.OBJECT, "order:contract", fields=CONTRACT_FIELDS),
        "batch": _contract(p, Op.PLACE, Orders.LIST, "order:contract", fields=CONTRACT_FIELDS),
        "amend": _contract(p, Op.AMEND, Orders.OBJECT, fields=CONTRACT_AMEND_FIELDS),
        "amend_batch": _contract(p, Op.AMEND, Orders.LIST, fields=CONTRACT_AMEND_FIELDS),
        "trigger": _contract(
            p, Op.TRIGGER, Orders.OBJECT, "order:contract", nested="initial",
            fields=CONTRACT_FIELDS,
        ),
        "trigger_amend": _contract(
            p, Op.AMEND, Orders.OBJECT, "order:contract", fields=CONTRACT_AMEND_FIELDS
        ),
        "cancel": _contract(p, Op.CANCEL),
        "cancel_all": _contract(p, Op.CANCEL_ALL, Orders.NONE, "query:contract"),
        "countdown": _contract(p, Op.CANCEL_ALL, Orders.NONE, "body:contract"),
        "leverage": _contract(
            p, Op.LEVERAGE, Orders.NONE, "path:contract",
            leverage=("query:leverage", "query:cross_leverage_limit"),
        ),
        "position": _contract(p, Op.POSITION, Orders.NONE, "path:contract"),
        "list": _contract(p, Op.LIST, Orders.NONE, "query:contract"),
        "list_path": _contract(p, Op.LIST, Orders.NONE, "path:contract"),
        "get_one": _contract(p, Op.GET_ONE),
    }  # fmt: skip


FUT = _contract_shapes(Product.FUTURES)
DLV = _contract_shapes(Product.DELIVERY)
OPT = _contract_shapes(Product.OPTIONS)


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str  # /api/v4/futures/{settle}/orders/{id}
    shape: Shape
    pattern: re.Pattern[str]


def _endpoint(method: str, template: str, shape: Shape) -> Endpoint:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return Endpoint(method, template, shape, re.compile(regex))


def _contract_endpoints(prefix: str, s: dict[str, Shape], *, batch: bool) -> list[Endpoint]:
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
    if batch:
        rows += [
            ("POST", "/batch_orders", s["batch"]),
            ("POST", "/batch_amend_orders", s["amend_batch"]),
            ("POST", "/batch_cancel_orders", s["cancel"]),
            ("POST", "/dual_comp/positions/{contract}/leverage", s["leverage"]),
            ("POST", "/dual_comp/positions/{contract}/margin", s["position"]),
            ("POST", "/dual_comp/positions/{contract}/risk_limit", s["position"]),
            ("GET", "/dual_comp/positions/{contract}", s["list_path"]),
        ]
    return [_endpoint(m, prefix + path, shape) for m, path, shape in rows]


ENDPOINTS: tuple[Endpoint, ...] = (
    _endpoint("POST", "/api/v4/spot/orders", SPOT_PLACE),
    _endpoint("POST", "/api/v4/spot/batch_orders", SPOT_BATCH),
    _endpoint("PATCH", "/api/v4/spot/orders/{id}", SPOT_AMEND),
    _endpoint("POST", "/api/v4/spot/amend_batch_orders", SPOT_AMEND_BATCH),
    _endpoint("POST", "/api/v4/spot/price_orders", SPOT_TRIGGER),
    # Gate's POV (percentage of volume) orders: no published field list to read.
    _endpoint("POST", "/api/v4/spot/pov_orders", _spot(Op.PLACE, Orders.UNKNOWN)),
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
    *_contract_endpoints("/api/v4/futures/{settle}", FUT, batch=True),
    *_contract_endpoints("/api/v4/delivery/{settle}", DLV, batch=False),
    _endpoint("POST", "/api/v4/options/orders", OPT["place"]),
    _endpoint("DELETE", "/api/v4/options/orders", OPT["cancel_all"]),
    _endpoint("DELETE", "/api/v4/options/orders/{id}", OPT["cancel"]),
    _endpoint("POST", "/api/v4/options/countdown_cancel_all", OPT["countdown"]),
    _endpoint("GET", "/api/v4/options/orders", OPT["list"]),
    _endpoint("GET", "/api/v4/options/orders/{id}", OPT["get_one"]),
    _endpoint("GET", "/api/v4/options/my_trades", OPT["list"]),
    _endpoint("GET", "/api/v4/options/positions", OPT["list"]),
    _endpoint("GET", "/api/v4/options/positions/{contract}", OPT["list_path"]),
    _endpoint("GET", "/api/v4/options/position_close", OPT["list"]),
)

#: The WebSocket trading API (``event: "api"``): channel -> the shape its ``req_param`` has.
#: A channel's ``req_param`` is read like a REST body (``body:`` and ``order:`` sources); the
#: futures settle currency comes from the connection's URL (``/v4/ws/usdt``).
WS_CHANNELS: dict[str, Shape] = {
    "spot.order_place": SPOT_PLACE,
    "spot.order_amend": _spot(
        Op.AMEND, Orders.OBJECT, "order:currency_pair", fields=SPOT_AMEND_FIELDS
    ),
    "spot.order_cancel": _spot(Op.CANCEL, Orders.NONE, "body:currency_pair"),
    "spot.order_cancel_ids": SPOT_CANCEL_BATCH,
    "spot.order_cancel_cp": _spot(Op.CANCEL_ALL, Orders.NONE, "body:currency_pair"),
    "spot.order_status": _spot(Op.GET_ONE, Orders.NONE, "body:currency_pair"),
    "spot.order_list": _spot(Op.LIST, Orders.NONE, "body:currency_pair"),
    "futures.order_place": FUT["place"],
    "futures.order_batch_place": FUT["batch"],
    "futures.order_amend": FUT["amend"],
    "futures.order_cancel": FUT["cancel"],
    "futures.order_cancel_ids": FUT["cancel"],
    "futures.order_cancel_cp": FUT["countdown"],  # {contract, side}: every order of a contract
    "futures.order_status": FUT["get_one"],
    "futures.order_list": _contract(Product.FUTURES, Op.LIST, Orders.NONE, "body:contract"),
}


def find_endpoint(method: str, path: str) -> tuple[Endpoint | None, dict[str, str]]:
    """The table row for a request, with its path parameters (``settle``, ``contract``...)."""
    for endpoint in ENDPOINTS:
        if endpoint.method == method:
            match = endpoint.pattern.fullmatch(path)
            if match:
                return endpoint, match.groupdict()
    return None, {}
