"""Reading one call's orders out of its path, query and JSON body, as the field table says. Pure.

Whatever a guard needs and cannot read makes the call :class:`Unreadable`, and an unreadable call
is refused, never passed: a field given twice in different letter cases (Gate's Go decoder would
take one of them, silently), a size that is not a number, a batch that is not a list of objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from sidecar.policy.conditions import NO_BODY, InvalidBody
from sidecar.policy.go_json import go_keys
from sidecar.policy.guards.kinds import Amount, OrderFields, Orders, Pricing, Product, Shape


class Unreadable(Exception):
    """The call's shape cannot be read; the message says where (never quotes a whole body)."""


class Ambiguous(Unreadable):
    """Gate could read the call two ways (a query parameter a guard reads, given twice or in
    another spelling): a bad request, refused with 400 rather than 403."""


@dataclass(frozen=True, slots=True)
class Named:
    """A value and where it was read (``orders[3].size``, ``query leverage``)."""

    value: str
    where: str


@dataclass(frozen=True, slots=True)
class Number:
    value: Decimal
    where: str


@dataclass(slots=True)
class Order:
    where: str  # "body", "orders[3]", "body.put"
    instrument: Named | None = None
    size: Number | None = None
    price: Number | None = None
    market: bool = False  # a market order (type market, or price 0 where the price says it)
    type_where: str = ""  # what says the type, for messages
    tif: Named | None = None  # given, or Gate's default (where then says so)
    side: str | None = None  # buy | sell (spot); None where the size's sign says it
    closing: Named | None = None  # the field that makes it reduce or close a position
    amount_in: Amount = Amount.BASE  # BASE, QUOTE_IF_MARKET (a spot market buy) or EITHER


@dataclass(slots=True)
class Call:
    """One API call as the guards see it, whether REST or the WebSocket trading API."""

    shape: Shape
    label: str  # "POST /api/v4/spot/orders" or "futures.order_place"
    settle: Named | None = None
    instruments: list[Named] = field(default_factory=list)  # call-level (path, query, body)
    orders: list[Order] = field(default_factory=list)
    path_params: dict[str, str] = field(default_factory=dict)  # settle, contract, id...
    leverage: Number | None = None  # the leverage a leverage setting asks for
    cross_limit: Number | None = None  # futures: the cross-margin leverage, given beside it

    @property
    def product(self) -> Product:
        return self.shape.product

    def instrument_for(self, order: Order) -> str | None:
        """The market an order trades: its own field, or the one market the call names."""
        if order.instrument is not None:
            return order.instrument.value
        names = {n.value for n in self.instruments}
        return next(iter(names)) if len(names) == 1 else None

    def all_instruments(self) -> list[Named]:
        return self.instruments + [o.instrument for o in self.orders if o.instrument is not None]


def lookup(obj: Mapping[str, object], name: str, where: str) -> object | None:
    """``obj[name]`` in any letter case (Go's JSON decoder matches fields that way); a name given
    twice in different cases is unreadable rather than guessed."""
    hits = go_keys(obj, name)
    if len(hits) > 1:
        raise Unreadable(f"{where}.{name} is given {len(hits)} times in different letter cases")
    return obj[hits[0]] if hits else None


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise Unreadable(f"{where} is not a string")
    return value


def number(value: object, where: str) -> Number:
    """A JSON number or numeric string, as Gate accepts sizes and prices."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Unreadable(f"{where} is not a number")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise Unreadable(f"{where} is not a number") from None
    if not parsed.is_finite():
        raise Unreadable(f"{where} is not a finite number")
    return Number(parsed, where)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fold(name: str) -> str:
    """A decoded query name as a lenient reader could take it: any letter case, cut at the
    first control character (``leverage%00`` is ``leverage`` to a C string), spaces trimmed."""
    return _CONTROL.split(name, maxsplit=1)[0].strip().casefold()


def _query(raw_query: str, read: frozenset[str]) -> dict[str, str]:
    """The query parameters a guard reads (``read``). One that Gate might read from another
    spelling (``Leverage``, ``leverage%00``, ``lev%65rage`` decodes to the name itself) or that
    is given twice is :class:`Ambiguous`: the guard would judge one value and Gate act on
    another. Parameters no guard reads are left to Gate."""
    values: dict[str, str] = {}
    spellings: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        folded = _fold(name)
        if folded not in read:
            continue
        spellings.setdefault(folded, []).append(name)
        if name != folded:
            # The name as sent is not quoted: past a control character it could carry anything.
            raise Ambiguous(
                f"a query parameter names {folded} in another spelling (another letter case, a "
                f"control character or a space): Gate might read it as {folded}, so the value "
                "read would not be certain"
            )
        values[folded] = value
    for folded, names in spellings.items():
        if len(names) > 1:
            times = "twice" if len(names) == 2 else f"{len(names)} times"
            raise Ambiguous(f"query parameter {folded} is given {times}: Gate might read either")
    return values


def _size(obj: Mapping[str, object], where: str, f: OrderFields) -> Number | None:
    """The order's size: of the size field and its aliases (Gate takes an order's size from
    either), every one given is read and the largest counts."""
    sizes = [
        number(value, f"{where}.{name}")
        for name in (f.size, *f.size_aliases)
        if name and (value := lookup(obj, name, where)) is not None
    ]
    if not sizes:
        return None
    return max(sizes, key=_magnitude)


def _magnitude(n: Number) -> Decimal:
    return abs(n.value)


def _read_order(obj: Mapping[str, object], where: str, shape: Shape) -> Order:
    order = Order(where)
    for source in shape.instrument:
        kind, _, name = source.partition(":")
        if kind == "order" and (value := lookup(obj, name, where)) is not None:
            order.instrument = Named(_text(value, f"{where}.{name}"), f"{where}.{name}")
    f: OrderFields | None = shape.fields
    if f is None:
        return order
    order.size = _size(obj, where, f)
    if f.price and (value := lookup(obj, f.price, where)) is not None:
        order.price = number(value, f"{where}.{f.price}")
    if f.pricing is Pricing.TYPE and f.type:
        given = lookup(obj, f.type, where)
        kind = "limit" if given is None else _text(given, f"{where}.{f.type}").casefold()
        order.market = kind == "market"
        order.type_where = f"{where}.{f.type}" if given is not None else f"{where} (no type)"
    elif f.pricing is Pricing.PRICE:
        # Futures, delivery and options orders have no type: price 0 means a market order.
        order.market = order.price is None or order.price.value == 0
        order.type_where = order.price.where if order.price else f"{where} (no {f.price})"
    else:  # a BBO order names no price: it trades where the book is, read as a market order
        order.market = True
        order.type_where = f"{where} (no price)"
    if f.tif:
        given = lookup(obj, f.tif, where)
        if given is None:  # Gate's default: gtc, and ioc where a market order needs it
            order.tif = Named("ioc" if order.market else "gtc", f"{where} (default)")
        else:
            order.tif = Named(_text(given, f"{where}.{f.tif}").casefold(), f"{where}.{f.tif}")
    if f.side and (value := lookup(obj, f.side, where)) is not None:
        order.side = _text(value, f"{where}.{f.side}").casefold()
    if order.side != "sell":  # a buy (or no side: read as the stricter buy)
        if f.buy_amount is Amount.EITHER:
            order.amount_in = Amount.EITHER
        elif f.buy_amount is Amount.QUOTE_IF_MARKET and order.market:
            order.amount_in = Amount.QUOTE_IF_MARKET
    for name in f.closing:
        value = lookup(obj, name, where)
        # reduce_only/close must be JSON true; auto_size (close_long/close_short) closes a
        # dual-mode position.
        if value is True or (name == "auto_size" and isinstance(value, str) and value):
            order.closing = Named(str(value).lower(), f"{where}.{name}")
    return order


def _orders(shape: Shape, doc: object) -> list[Order]:
    if shape.orders is Orders.NONE:
        return []
    if shape.orders is Orders.UNKNOWN:
        raise Unreadable("no guard can read this order shape")
    if isinstance(doc, InvalidBody):
        raise Unreadable(str(doc))
    batch = shape.orders is Orders.OBJECT_OR_LIST and isinstance(doc, list)
    if shape.orders is Orders.LIST or batch:
        if not isinstance(doc, list) or not all(isinstance(item, dict) for item in doc):
            raise Unreadable("the body is not a JSON list of objects")
        return [_read_order(item, f"orders[{i}]", shape) for i, item in enumerate(doc)]
    if not isinstance(doc, dict):
        either = " or a list of objects" if shape.orders is Orders.OBJECT_OR_LIST else ""
        raise Unreadable(f"the body is not a JSON object{either}")
    if shape.nested is None:
        return [_read_order(doc, "body", shape)]
    nested = lookup(doc, shape.nested, "body")
    if not isinstance(nested, dict):
        raise Unreadable(f"body.{shape.nested} is not a JSON object")
    return [_read_order(nested, f"body.{shape.nested}", shape)]


def read_call(
    shape: Shape,
    label: str,
    *,
    path_params: Mapping[str, str],
    raw_query: str = "",
    doc: object = NO_BODY,
    settle: str | None = None,
) -> Call:
    """The call's settle, instruments, orders and leverage values; raises :class:`Unreadable`."""
    call = Call(shape, label, path_params=dict(path_params))
    settle = path_params.get("settle", settle)
    if settle is not None:
        call.settle = Named(settle, "path {settle}")
    read = frozenset(
        name for kind, _, name in (s.partition(":") for s in shape.sources()) if kind == "query"
    )
    query = _query(raw_query, read) if raw_query and read else {}
    for source in shape.instrument:
        kind, _, name = source.partition(":")
        if kind == "path" and name in path_params:
            call.instruments.append(Named(path_params[name], "path {" + name + "}"))
        elif kind == "query" and name in query:
            call.instruments.append(Named(query[name], f"query {name}"))
        elif kind == "body" and isinstance(doc, dict):
            if (value := lookup(doc, name, "body")) is not None:
                call.instruments.append(Named(_text(value, f"body.{name}"), f"body.{name}"))
        elif kind == "body" and isinstance(doc, InvalidBody):
            raise Unreadable(str(doc))
    if shape.leverage is not None:
        call.leverage = _value(shape.leverage.value, query, doc)
        if shape.leverage.cross_limit is not None:
            call.cross_limit = _value(shape.leverage.cross_limit, query, doc)
    call.orders = _orders(shape, doc)
    return call


def where_of(source: str) -> str:
    """A source as messages name it: ``query leverage``, ``body.leverage``."""
    kind, _, name = source.partition(":")
    return f"{kind} {name}" if kind in ("query", "path") else f"{kind}.{name}"


def _value(source: str, query: Mapping[str, str], doc: object) -> Number | None:
    kind, _, name = source.partition(":")
    if kind == "query":
        return number(query[name], where_of(source)) if name in query else None
    if isinstance(doc, InvalidBody):
        raise Unreadable(str(doc))
    if isinstance(doc, dict) and (value := lookup(doc, name, "body")) is not None:
        return number(value, where_of(source))
    return None


def instrument_names(values: Sequence[Named]) -> list[str]:
    return sorted({v.value for v in values})
