"""The guards themselves: each reads a :class:`~sidecar.policy.guards.reading.Call` and the
limits of its key, and refuses with a message naming the guard, the limit, the value and where
it was read (``max_order_size 100 < size 250 in orders[3].size``). Pure.

Prices and contract multipliers that the call does not carry (market orders, futures notional)
come in as :class:`Quote` values the proxy fetched from Gate's public market data beforehand
(:func:`quote_needs` says which); one that could not be fetched refuses the order, saying why.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal

from sidecar.policy.guards.reading import Call, Number, Order
from sidecar.policy.guards.shapes import Op, Product
from sidecar.policy.guards.values import Limits, Need, Quote, QuoteKey, Refusal, fmt


def _names(values: Collection[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]"


def _instrument(call: Call, order: Order) -> str | None:
    if order.instrument is not None:
        return order.instrument.value
    names = {n.value for n in call.instruments}
    return next(iter(names)) if len(names) == 1 else None


def quote_needs(call: Call, limits: Limits) -> dict[QuoteKey, Need]:
    """The public market data the checks of ``call`` need (none for most calls)."""
    needs: dict[QuoteKey, Need] = {}
    if limits.max_order_size is None and limits.max_notional is None:
        return needs
    if _scope(call, limits) is not None:
        return needs  # refused before any price matters: fetch nothing
    for order in call.orders:
        name = _instrument(call, order)
        if name is None:
            continue
        key = QuoteKey(call.product, call.settle.value if call.settle else None, name)
        if call.product is Product.SPOT:
            # A spot market buy gives its amount in quote currency, a market sell in base.
            buy = order.side != "sell"
            last = order.market and (
                (buy and limits.max_order_size is not None)
                or (not buy and limits.max_notional is not None)
            )
            need = Need(last, False)
        else:
            contract = limits.max_notional is not None
            need = Need(contract and order.market and call.shape.op is not Op.AMEND, contract)
        if need.last or need.contract:
            old = needs.get(key, Need(False, False))
            needs[key] = Need(old.last or need.last, old.contract or need.contract)
    return needs


# -- the guards ----------------------------------------------------------------------------


def check_cancel_only(call: Call | None, *, write: bool, label: str, why: str) -> Refusal | None:
    """The emergency brake: only reads, cancels and position closes pass."""
    op = call.shape.op if call is not None else None
    if op in (Op.LIST, Op.GET_ONE, Op.CANCEL, Op.CANCEL_ALL) or not write:
        return None
    if call is not None and op is Op.PLACE and call.product is not Product.SPOT and call.orders:
        if all(order.closing is not None for order in call.orders):
            return None  # every order only reduces or closes a position
    return Refusal(
        "cancel_only",
        f"cancel_only is on ({why}): only reads, cancels and position closes pass, "
        f"and {label} is none of them",
    )


def _scope(call: Call, limits: Limits) -> Refusal | None:
    if limits.settle is not None and call.settle is not None:
        if call.settle.value not in limits.settle:
            return Refusal(
                "settle",
                f"settle {call.settle.value} ({call.settle.where}) is not in settle "
                f"{_names(limits.settle)}",
            )
    if limits.instruments is None:
        return None
    named = call.all_instruments()
    for item in named:
        if item.value not in limits.instruments:
            return Refusal(
                "instruments",
                f"instrument {item.value} ({item.where}) is not in instruments "
                f"{_names(limits.instruments)}",
            )
    if call.shape.op in (Op.PLACE, Op.TRIGGER):
        for order in call.orders:
            if _instrument(call, order) is None:
                return Refusal("instruments", f"{order.where} names no instrument")
    if not named and call.shape.unscoped_if_no_instrument and not limits.allow_unscoped:
        return Refusal(
            "allow_unscoped",
            f"{call.label} names no instrument, so it concerns every market, and "
            "allow_unscoped is false",
        )
    return None


def _shape_of_order(call: Call, order: Order, limits: Limits) -> Refusal | None:
    if call.shape.op not in (Op.PLACE, Op.TRIGGER):
        return None  # an amend changes neither type, time in force nor reduce-only
    kind = "market" if order.market else "limit"
    if limits.order_types is not None and kind not in limits.order_types:
        return Refusal(
            "order_types",
            f"order_types {_names(limits.order_types)} does not include {kind} "
            f"({order.type_where})",
        )
    tif = order.tif
    if limits.time_in_force is not None and tif is not None:
        if tif.value not in limits.time_in_force:
            return Refusal(
                "time_in_force",
                f"time_in_force {_names(limits.time_in_force)} does not include {tif.value} "
                f"({tif.where})",
            )
    if limits.reduce_only and call.product is not Product.SPOT and order.closing is None:
        fields = call.shape.fields.closing if call.shape.fields else ()
        return Refusal(
            "reduce_only",
            f"reduce_only is true and {order.where} sets none of {', '.join(fields)}",
        )
    return None


def _missing_quote(guard: str, what: str, name: str, quote: Quote | None) -> Refusal:
    why = quote.problem if quote is not None and quote.problem else "not fetched"
    return Refusal(guard, f"{guard}: no {what} for {name} ({why}), so the order cannot be checked")


def _size(
    call: Call, order: Order, limits: Limits, quotes: Mapping[QuoteKey, Quote]
) -> Refusal | None:
    limit, size = limits.max_order_size, order.size
    if limit is None or size is None:
        return None
    amount, detail = abs(size.value), ""
    if call.product is Product.SPOT and order.market and order.side != "sell":
        name = _instrument(call, order) or "?"
        quote = quotes.get(QuoteKey(call.product, None, name))
        if quote is None or quote.last is None or quote.last <= 0:
            return _missing_quote("max_order_size", "last price", name, quote)
        # A spot market buy's amount is in quote currency: its size in base is amount / last.
        amount = size.value / quote.last
        detail = f" (market buy: {fmt(size.value)} quote / last price {fmt(quote.last)})"
    if amount > limit:
        return Refusal(
            "max_order_size", f"max_order_size {fmt(limit)} < size {fmt(amount)}{detail} "
            f"in {size.where}",
        )  # fmt: skip
    return None


def _notional(
    call: Call, order: Order, limits: Limits, quotes: Mapping[QuoteKey, Quote]
) -> Refusal | None:
    limit = limits.max_notional
    if limit is None:
        return None
    size, price = order.size, order.price
    if size is None or (price is None and not order.market):
        if call.shape.op is Op.AMEND:
            return Refusal(
                "max_notional",
                f"max_notional: {order.where} must give both size and price to be checked",
            )
        return Refusal("max_notional", f"max_notional: {order.where} gives no size or price")
    name = _instrument(call, order)
    if name is None:
        return Refusal(
            "max_notional",
            f"max_notional: {call.label} names no instrument, so its price and multiplier are "
            "unknown (cancel and place a new order instead)",
        )
    quote = quotes.get(QuoteKey(call.product, call.settle.value if call.settle else None, name))
    used: Number | None = price if price is not None and not order.market else None
    price_value = used.value if used is not None else None
    if price_value is None:
        if call.product is Product.SPOT and order.side != "sell":
            price_value = Decimal(1)  # a spot market buy: the amount is the notional
        elif quote is None or quote.last is None:
            return _missing_quote("max_notional", "last price", name, quote)
        else:
            price_value = quote.last
    notional = abs(size.value) * price_value
    detail = f"price {fmt(price_value)} x size {fmt(abs(size.value))}"
    if call.product is Product.SPOT and order.market and order.side != "sell":
        detail = f"market buy of {fmt(size.value)} quote"
    elif call.product is not Product.SPOT:
        if quote is None or (quote.multiplier is None and not quote.inverse):
            return _missing_quote("max_notional", "contract multiplier", name, quote)
        if quote.inverse:
            notional, detail = abs(size.value), f"inverse: size {fmt(abs(size.value))}"
        else:
            assert quote.multiplier is not None
            notional *= quote.multiplier
            detail += f" x multiplier {fmt(quote.multiplier)}"
    if notional > limit:
        return Refusal(
            "max_notional",
            f"max_notional {fmt(limit)} < notional {fmt(notional)} ({detail}) in {order.where}",
        )
    return None


def _leverage(call: Call, limits: Limits) -> Refusal | None:
    limit = limits.max_leverage
    if limit is None or call.shape.op is not Op.LEVERAGE:
        return None
    values = {n.where.split()[-1]: n for n in call.leverage}
    leverage = values.get("leverage")
    if leverage is None:
        return Refusal("max_leverage", f"max_leverage: {call.label} gives no query leverage")
    if leverage.value == 0:  # 0 = cross margin, whose leverage is cross_leverage_limit
        cross = values.get("cross_leverage_limit")
        if cross is None:
            return Refusal(
                "max_leverage",
                f"max_leverage {fmt(limit)}: leverage 0 (cross margin) without "
                "cross_leverage_limit leaves the leverage to Gate's default",
            )
        leverage = cross
    if leverage.value > limit:
        return Refusal(
            "max_leverage", f"max_leverage {fmt(limit)} < leverage {fmt(leverage.value)} "
            f"in {leverage.where}",
        )  # fmt: skip
    for other in call.leverage:
        if other.value > limit:
            return Refusal(
                "max_leverage",
                f"max_leverage {fmt(limit)} < {fmt(other.value)} in {other.where}",
            )
    return None


def check_call(
    call: Call, limits: Limits, quotes: Mapping[QuoteKey, Quote] | None = None
) -> Refusal | None:
    """Every guard but the brake, in order: scope, then each order, then leverage."""
    quotes = quotes or {}
    refusal = _scope(call, limits)
    if refusal is not None:
        return refusal
    for order in call.orders if call.shape.fields is not None else ():
        refusal = (
            _shape_of_order(call, order, limits)
            or _size(call, order, limits, quotes)
            or _notional(call, order, limits, quotes)
        )
        if refusal is not None:
            return refusal
    return _leverage(call, limits)
