"""The vocabulary of the field table (:mod:`sidecar.policy.guards.shapes`): products, operations,
how a call carries its orders, which fields an order's size, price and type are read from, and
where a leverage setting is. Pure.

A source is written ``where:name``: ``path:contract`` (a ``{contract}`` path segment),
``query:currency_pair``, ``body:market`` (a field of the top-level JSON object) or
``order:contract`` (a field of each order object: the body, each element of a batch, or the
``put`` / ``initial`` object of a price-triggered order).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Product(Enum):
    SPOT = "spot"
    MARGIN = "margin"  # spot margin settings (margin orders go through /spot/orders)
    UNIFIED = "unified"  # unified account settings
    FUTURES = "futures"
    DELIVERY = "delivery"
    OPTIONS = "options"
    CROSSEX = "crossex"  # Gate's cross-exchange trading


class Op(Enum):
    PLACE = "place"  # new order(s)
    TRIGGER = "price-triggered"  # a new order placed when a price is reached
    AMEND = "amend"
    CANCEL = "cancel"  # by id (or ids): names its orders, not a market
    CANCEL_ALL = "cancel all"  # every order of a market (or of every market)
    LEVERAGE = "leverage"
    POSITION = "position setting"  # margin, risk limit of one contract's position
    LOAN = "borrow or repay"  # a margin loan of one market: only the instrument guard reads it
    LIST = "list"  # reads that name a market, or every market when they name none
    GET_ONE = "read one"  # a read by id
    OTHER = "other"  # any other private call under a {settle} segment: only settle applies


class Orders(Enum):
    NONE = "none"  # no order objects
    OBJECT = "object"  # the body (or its nested object) is one order
    LIST = "list"  # the body is a list of orders: one bad element refuses the whole request
    OBJECT_OR_LIST = "object or list"  # either (spot.order_place takes one order or a batch)
    UNKNOWN = "unknown"  # an order shape no guard can read: refused when a guard applies


class Pricing(Enum):
    """How an order says whether it is a market order."""

    TYPE = "type"  # a type field: "market" or "limit" (spot)
    PRICE = "price"  # no type: a price absent or 0 means a market order (futures, options)
    NONE = "none"  # the order names no price at all (BBO orders): read as a market order


class Amount(Enum):
    """Which currency a buy order's amount is in (a sell's is always the base currency)."""

    BASE = "base"  # contracts, or the base currency
    QUOTE_IF_MARKET = "quote if market"  # Gate's spot rule: a market buy gives quote currency
    EITHER = "either"  # Gate does not say (POV orders): the stricter reading counts


@dataclass(frozen=True)
class OrderFields:
    """The order object's field names, per product."""

    size: str | None
    price: str | None
    type: str | None  # with Pricing.TYPE only
    tif: str | None
    side: str | None  # None: the sign of the size says it (futures, options)
    closing: tuple[str, ...] = ()  # fields that make an order reduce or close a position
    size_aliases: tuple[str, ...] = ()  # other names Gate takes the size from: all are checked
    pricing: Pricing = Pricing.PRICE
    buy_amount: Amount = Amount.BASE


@dataclass(frozen=True)
class LeverageFields:
    """Where a leverage setting gives its leverage."""

    value: str  # query:leverage, body:leverage
    # Futures and delivery: leverage 0 means cross margin, whose leverage is this value. Without
    # it, a leverage of 0 or less is refused: no guard can tell what Gate would make of it.
    cross_limit: str | None = None


@dataclass(frozen=True)
class Shape:
    product: Product
    op: Op
    orders: Orders = Orders.NONE
    nested: str | None = None  # the order object is this field of the body (put, initial)
    fields: OrderFields | None = None
    instrument: tuple[str, ...] = ()  # sources, all checked when present
    leverage: LeverageFields | None = None
    # What to do instead when max_notional cannot price the call (an amend naming no contract);
    # "{settle}" and "{id}" are filled in from the call's path.
    instead: str = ""

    @property
    def unscoped_if_no_instrument(self) -> bool:
        """A call that then concerns every market (allow_unscoped decides): listings, cancel-alls
        and account-wide leverage settings (a unified account's leverage per currency)."""
        return self.op in (Op.CANCEL_ALL, Op.LIST) or (
            self.op is Op.LEVERAGE and not self.instrument
        )

    def sources(self) -> tuple[str, ...]:
        """Every source this shape reads, for deciding whether the body must be parsed."""
        lev = self.leverage
        return self.instrument + (() if lev is None else (lev.value, lev.cross_limit or ""))

    @property
    def needs_body(self) -> bool:
        return self.fields is not None or any(
            s.startswith(("body:", "order:")) for s in self.sources()
        )
