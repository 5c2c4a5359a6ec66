"""The guards that weigh and price an order: ``max_order_size``, ``max_notional`` and
``max_price_deviation_pct``. Pure.

A size is read in the base currency (or contracts); a spot market buy gives quote currency, a
POV buy either (the stricter reading counts). A notional is price x size, x the contract's
multiplier for futures, delivery and options. Market orders are priced at the last trade; a
limit sell at the higher of its own price and the last trade (a sell at 0.0001 fills near the
market, so its own price would understate it), and an order whose side cannot be read is taken
for a sell. The last trade is fetched by the proxy beforehand
(:func:`sidecar.policy.guards.checks.quote_needs`); when it could not be, the order is refused
and the message says why. ``max_price_deviation_pct`` refuses a limit order priced further than
that from the last trade, above or below (fat-finger protection).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal

from sidecar.policy.guards.kinds import Amount, Op, Product
from sidecar.policy.guards.reading import Call, Order
from sidecar.policy.guards.values import Limits, Quote, QuoteKey, Refusal, fmt


def _missing_quote(guard: str, what: str, name: str, quote: Quote | None) -> Refusal:
    why = quote.problem if quote is not None and quote.problem else "not fetched"
    return Refusal(guard, f"{guard}: no {what} for {name} ({why}), so the order cannot be checked")


def may_sell(call: Call, order: Order) -> bool:
    """Whether the order sells (or may: a side that cannot be read counts as a sell)."""
    f = call.shape.fields
    if f is not None and f.side is not None and order.side is not None:
        return order.side == "sell"
    if call.product is not Product.SPOT and order.size is not None:
        return order.size.value < 0  # futures, delivery, options: the size's sign is the side
    return True


def _last(
    call: Call, order: Order, quotes: Mapping[QuoteKey, Quote], guard: str
) -> Decimal | Refusal:
    name = call.instrument_for(order) or "?"
    key = QuoteKey(call.product, call.settle.value if call.settle else None, name)
    quote = quotes.get(key)
    if quote is None or quote.last is None or quote.last <= 0:
        return _missing_quote(guard, "last price", name, quote)
    return quote.last


def _reference_price(
    call: Call, order: Order, quotes: Mapping[QuoteKey, Quote], guard: str
) -> Decimal | Refusal:
    """The price an order trades at as its size is read: its own, or the last trade for a
    market order (a refusal when that is unknown)."""
    if order.market or order.price is None:
        return _last(call, order, quotes, guard)
    return order.price.value


def _notional_price(
    call: Call, order: Order, quotes: Mapping[QuoteKey, Quote], guard: str
) -> Decimal | Refusal:
    """The price an order is weighed at: as :func:`_reference_price`, but a limit sell at no
    less than the last trade, since it fills there however low its own price."""
    price = _reference_price(call, order, quotes, guard)
    if isinstance(price, Refusal) or order.market or not may_sell(call, order):
        return price
    last = _last(call, order, quotes, guard)
    return last if isinstance(last, Refusal) else max(price, last)


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


_CHECKED = {"max_notional": "notional"}


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _unpriced(call: Call, guard: str = "max_notional") -> Refusal:
    """A price guard for a call that names no market: what to do instead, where there is a
    way."""
    params = _Keep(call.path_params)
    if call.settle is not None:
        params["settle"] = call.settle.value
    hint = call.shape.instead.format_map(params)
    if not hint:
        return Refusal(
            guard,
            f"{guard}: {call.label} names no instrument, so its market price is unknown",
        )
    if call.product is Product.SPOT:
        what = "no currency pair"
    else:
        what = f"no contract (Gate's {call.product.value} amend carries none)"
    return Refusal(
        guard,
        f"{guard}: {call.label} names {what}, so its {_CHECKED.get(guard, 'price')} cannot be "
        f"checked; instead, {hint}",
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
        reference = _notional_price(call, order, quotes, guard)
        if isinstance(reference, Refusal):
            return reference
        notional = amount * reference
        detail = f"price {fmt(reference)} x size {fmt(amount)}"
        if price is not None and not order.market and reference != price.value:
            detail = (
                f"a sell priced at the last trade {fmt(reference)} above its price "
                f"{fmt(price.value)} x size {fmt(amount)}"
            )
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


_HUNDREDTH = Decimal("0.01")


def deviation_applies(call: Call, order: Order) -> bool:
    """Whether ``max_price_deviation_pct`` compares this order's price with the last trade: a
    new or amended limit order that gives a price."""
    return not order.market and order.price is not None and call.shape.op in (Op.PLACE, Op.AMEND)


def deviation_refusal(
    call: Call, order: Order, limits: Limits, quotes: Mapping[QuoteKey, Quote]
) -> Refusal | None:
    """``max_price_deviation_pct``: a new or amended limit order's price against the last
    trade. A price-triggered order is left alone: its price follows its trigger, not the last
    trade."""
    limit, price = limits.max_price_deviation_pct, order.price
    if limit is None or price is None or not deviation_applies(call, order):
        return None
    if call.instrument_for(order) is None:
        return _unpriced(call, "max_price_deviation_pct")
    last = _last(call, order, quotes, "max_price_deviation_pct")
    if isinstance(last, Refusal):
        return last
    deviation = abs(price.value - last) / last * 100
    if deviation <= limit:
        return None
    side = "above" if price.value > last else "below"
    # Two decimals, rounded down (a price 1 against 60000 is 99.99% below, not 100%), unless
    # that would hide the excess itself.
    shown = deviation.quantize(_HUNDREDTH, ROUND_DOWN) if deviation < 10**9 else deviation
    if shown <= limit:
        shown = deviation
    return Refusal(
        "max_price_deviation_pct",
        f"max_price_deviation_pct {fmt(limit)} < {fmt(shown)}: price {fmt(price.value)} in "
        f"{price.where} is {fmt(shown)}% {side} the last trade {fmt(last)}",
    )
