"""The guards themselves: each reads a :class:`~sidecar.policy.guards.reading.Call` and the
limits of its key, and refuses with a message naming the guard, the limit, the value and where
it was read (``max_order_size 100 < size 250 in orders[3].size``). Pure.

Prices and contract multipliers that the call does not carry (market orders, futures notional)
come in as :class:`Quote` values the proxy fetched from Gate's public market data beforehand
(:func:`quote_needs` says which); one that could not be fetched refuses the order, saying why.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sidecar.policy.guards.amounts import (
    deviation_applies,
    deviation_refusal,
    may_sell,
    notional_refusal,
    size_refusal,
)
from sidecar.policy.guards.kinds import Amount, Op, Product
from sidecar.policy.guards.reading import Call, Order, where_of
from sidecar.policy.guards.values import Limits, Need, Quote, QuoteKey, Refusal, fmt


def _names(values: Collection[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]"


def quote_needs(call: Call, limits: Limits) -> dict[QuoteKey, Need]:
    """The public market data the checks of ``call`` need (none for most calls)."""
    needs: dict[QuoteKey, Need] = {}
    weighed = limits.max_order_size is not None or limits.max_notional is not None
    if not weighed and limits.max_price_deviation_pct is None:
        return needs
    if _scope(call, limits) is not None:
        return needs  # refused before any price matters: fetch nothing
    for order in call.orders if call.shape.fields is not None else ():
        name = call.instrument_for(order)
        if name is None:
            continue
        key = QuoteKey(call.product, call.settle.value if call.settle else None, name)
        # A limit sell is priced at the higher of its price and the last trade; a limit order
        # is compared with the last trade by max_price_deviation_pct.
        limit_needs_last = not order.market and (
            (limits.max_notional is not None and may_sell(call, order))
            or (limits.max_price_deviation_pct is not None and deviation_applies(call, order))
        )
        if call.product is Product.SPOT:
            need = Need(
                limit_needs_last or (order.market and _spot_needs_last(order, limits)), False
            )
        else:
            contract = limits.max_notional is not None
            market = order.market and call.shape.op is not Op.AMEND
            need = Need(limit_needs_last or (contract and market), contract)
        if need.last or need.contract:
            old = needs.get(key, Need(False, False))
            needs[key] = Need(old.last or need.last, old.contract or need.contract)
    return needs


def _spot_needs_last(order: Order, limits: Limits) -> bool:
    """Whether a spot market order needs the last price: a buy given in quote currency to know
    its size in base, one given in base to know its notional, one in either for both."""
    if order.amount_in is Amount.QUOTE_IF_MARKET:
        return limits.max_order_size is not None
    if order.amount_in is Amount.EITHER:
        return limits.max_order_size is not None or limits.max_notional is not None
    return limits.max_notional is not None


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
            if call.instrument_for(order) is None:
                return Refusal("instruments", f"{order.where} names no instrument")
    if call.shape.op is Op.LOAN and not named:
        return Refusal("instruments", f"{call.label} names no instrument")
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


def _leverage(call: Call, limits: Limits) -> Refusal | None:
    limit, spec = limits.max_leverage, call.shape.leverage
    if limit is None or spec is None:
        return None
    leverage = call.leverage
    if leverage is None:
        return Refusal(
            "max_leverage", f"max_leverage: {call.label} gives no {where_of(spec.value)}"
        )
    if leverage.value < 0 or (leverage.value == 0 and spec.cross_limit is None):
        return Refusal(
            "max_leverage",
            f"max_leverage {fmt(limit)}: leverage {fmt(leverage.value)} in {leverage.where} "
            "is no leverage this guard can check",
        )
    if leverage.value == 0:
        cross = call.cross_limit  # 0 = cross margin, whose leverage is cross_leverage_limit
        if cross is None:
            name = (spec.cross_limit or "").partition(":")[2]
            return Refusal(
                "max_leverage",
                f"max_leverage {fmt(limit)}: leverage 0 (cross margin) in {leverage.where} "
                f"without {name} leaves the leverage to Gate's default",
            )
        leverage = cross
    if leverage.value > limit:
        return Refusal(
            "max_leverage", f"max_leverage {fmt(limit)} < leverage {fmt(leverage.value)} "
            f"in {leverage.where}",
        )  # fmt: skip
    cross = call.cross_limit  # given beside a leverage: it may not exceed the limit either
    if cross is not None and cross.value > limit:
        return Refusal(
            "max_leverage", f"max_leverage {fmt(limit)} < {fmt(cross.value)} in {cross.where}"
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
            or size_refusal(call, order, limits, quotes)
            or notional_refusal(call, order, limits, quotes)
            or deviation_refusal(call, order, limits, quotes)
        )
        if refusal is not None:
            return refusal
    return _leverage(call, limits)
