"""The guards that weigh an order: ``max_order_size`` and ``max_notional``. Pure.

A size is read in the base currency (or contracts); a spot market buy gives quote currency, a
POV buy either (the stricter reading counts). A notional is price x size, x the contract's
multiplier for futures, delivery and options. Market orders are priced at the last trade, which
the proxy fetched beforehand (:func:`sidecar.policy.guards.checks.quote_needs`); when it could not,
the order is refused and the message says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from sidecar.policy.guards.kinds import Amount, Op, Product
from sidecar.policy.guards.reading import Call, Order
from sidecar.policy.guards.values import Limits, Quote, QuoteKey, Refusal, fmt


def _missing_quote(guard: str, what: str, name: str, quote: Quote | None) -> Refusal:
    why = quote.problem if quote is not None and quote.problem else "not fetched"
    return Refusal(guard, f"{guard}: no {what} for {name} ({why}), so the order cannot be checked")


def _reference_price(
    call: Call, order: Order, quotes: Mapping[QuoteKey, Quote], guard: str
) -> Decimal | Refusal:
    """The price an order trades at as the guards see it: its own, or the last trade for a
    market order (a refusal when that is unknown)."""
    if not order.market and order.price is not None:
        return order.price.value
    name = call.instrument_for(order) or "?"
    key = QuoteKey(call.product, call.settle.value if call.settle else None, name)
    quote = quotes.get(key)
    if quote is None or quote.last is None or quote.last <= 0:
        return _missing_quote(guard, "last price", name, quote)
    return quote.last


def size_refusal(
    call: Call, order: Order, limits: Limits, quotes: Mapping[QuoteKey, Quote]
) -> Refusal | None:
    limit, size = limits.max_order_size, order.size
    if limit is None or size is None:
        return None
    amount, detail = abs(size.value), ""
    if order.amount_in is not Amount.BASE:
        price = _reference_price(call, order, quotes, "max_order_size")
        if isinstance(price, Refusal):
            return price
        in_base = amount / price
        if order.amount_in is Amount.QUOTE_IF_MARKET:
            # A spot market buy's amount is in quote currency: its size in base is amount / last.
            amount = in_base
            detail = f" (market buy: {fmt(size.value)} quote / last price {fmt(price)})"
        elif in_base > amount:  # either currency: the stricter reading counts
            amount = in_base
            detail = f" (read as quote: {fmt(size.value)} / price {fmt(price)})"
    if amount > limit:
        return Refusal(
            "max_order_size", f"max_order_size {fmt(limit)} < size {fmt(amount)}{detail} "
            f"in {size.where}",
        )  # fmt: skip
    return None


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _unpriced(call: Call, guard: str = "max_notional") -> Refusal:
    """max_notional for a call that names no market: what to do instead, where there is a way."""
    params = _Keep(call.path_params)
    if call.settle is not None:
        params["settle"] = call.settle.value
    hint = call.shape.instead.format_map(params)
    if not hint:
        return Refusal(
            guard,
            f"{guard}: {call.label} names no instrument, so its price and multiplier are unknown",
        )
    if call.product is Product.SPOT:
        what = "no currency pair"
    else:
        what = f"no contract (Gate's {call.product.value} amend carries none)"
    return Refusal(
        guard,
        f"{guard}: {call.label} names {what}, so its notional cannot be checked; instead, {hint}",
    )


def order_notional(
    call: Call, order: Order, quotes: Mapping[QuoteKey, Quote], guard: str = "max_notional"
) -> tuple[Decimal, str] | Refusal:
    """An order's notional in quote currency and how it was reached (``price 60000 x size 2``),
    or the refusal saying why it cannot be known; shared by ``max_notional`` and the rolling
    windows (:mod:`sidecar.policy.windows`), which name themselves as ``guard``."""
    size, price = order.size, order.price
    if size is None or (price is None and not order.market):
        if call.shape.op is Op.AMEND:
            return Refusal(
                guard, f"{guard}: {order.where} must give both size and price to be checked"
            )
        return Refusal(guard, f"{guard}: {order.where} gives no size or price")
    name = call.instrument_for(order)
    if name is None:
        return _unpriced(call, guard)
    quote = quotes.get(QuoteKey(call.product, call.settle.value if call.settle else None, name))
    amount = abs(size.value)
    if order.amount_in is Amount.QUOTE_IF_MARKET:
        notional, detail = amount, f"market buy of {fmt(size.value)} quote"
    else:
        reference = _reference_price(call, order, quotes, guard)
        if isinstance(reference, Refusal):
            return reference
        notional = amount * reference
        detail = f"price {fmt(reference)} x size {fmt(amount)}"
        if order.amount_in is Amount.EITHER and amount > notional:
            notional, detail = amount, f"read as quote: {fmt(amount)}"
    if call.product is not Product.SPOT:
        if quote is None or (quote.multiplier is None and not quote.inverse):
            return _missing_quote(guard, "contract multiplier", name, quote)
        if quote.inverse:
            notional, detail = amount, f"inverse: size {fmt(amount)}"
        else:
            assert quote.multiplier is not None
            notional *= quote.multiplier
            detail += f" x multiplier {fmt(quote.multiplier)}"
    return notional, detail


def notional_refusal(
    call: Call, order: Order, limits: Limits, quotes: Mapping[QuoteKey, Quote]
) -> Refusal | None:
    limit = limits.max_notional
    if limit is None:
        return None
    weighed = order_notional(call, order, quotes)
    if isinstance(weighed, Refusal):
        return weighed
    notional, detail = weighed
    if notional > limit:
        return Refusal(
            "max_notional",
            f"max_notional {fmt(limit)} < notional {fmt(notional)} ({detail}) in {order.where}",
        )
    return None
