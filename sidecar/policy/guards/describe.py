"""The field table as documentation: what each guard reads, per endpoint. Pure.

``docs/guards.md`` shows :func:`field_table_markdown`; a test fails when the page falls behind.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.policy.guards.kinds import Amount, Op, Orders, Pricing, Shape
from sidecar.policy.guards.shapes import ENDPOINTS, WS_CHANNELS


def _shape_fields(shape: Shape) -> dict[str, str]:
    """Guard name -> what it reads, for one shape."""
    out: dict[str, str] = {}
    order = f"{shape.nested}." if shape.nested else ""

    def sources(names: Sequence[str]) -> str:
        return ", ".join(
            f"`{order}{n.split(':', 1)[1]}`" if n.startswith("order:") else f"`{n}`" for n in names
        )

    if shape.instrument:
        out["instruments"] = sources(shape.instrument)
    f = shape.fields
    if f is not None:
        sizes = [f"order:{n}" for n in (f.size, *f.size_aliases) if n]
        either = f.buy_amount is Amount.EITHER
        either_text = " (a buy's in base or quote: the stricter)" if either else ""
        out["max_order_size"] = sources(sizes) + either_text
        priced = sizes + ([f"order:{f.price}"] if f.price else [])
        out["max_notional"] = sources(priced) + (
            " (a sell: at least the last price)" if f.price else " x last price"
        )
        if f.price and shape.op in (Op.PLACE, Op.AMEND):
            out["max_price_deviation_pct"] = sources([f"order:{f.price}"]) + " vs last price"
        if shape.op in (Op.PLACE, Op.TRIGGER):
            if f.pricing is Pricing.TYPE:
                out["order_types"] = sources([f"order:{f.type}"])
            elif f.pricing is Pricing.PRICE:
                out["order_types"] = sources([f"order:{f.price}"]) + " absent or 0"
            else:
                out["order_types"] = "no price: market"
            if f.tif:
                out["time_in_force"] = sources([f"order:{f.tif}"])
            if f.closing:
                out["reduce_only"] = sources([f"order:{c}" for c in f.closing])
    if shape.leverage is not None:
        lev = shape.leverage
        out["max_leverage"] = sources([lev.value, *([lev.cross_limit] if lev.cross_limit else [])])
    if shape.orders is Orders.UNKNOWN:
        out["(all)"] = "no published field semantics: refused unless in allow_unread"
    return out


def field_table_rows() -> list[tuple[str, str, str, str]]:
    """(endpoint, product and operation, batch, guard reads) rows: REST then WebSocket."""
    rows = []
    entries: list[tuple[str, Shape]] = [(f"{e.method} {e.template}", e.shape) for e in ENDPOINTS]
    entries += [(f"WS {channel}", shape) for channel, shape in WS_CHANNELS.items()]
    for name, shape in entries:
        reads = _shape_fields(shape)
        if "{settle}" in name:
            reads = {"settle": "`path:settle`", **reads}
        text = "; ".join(f"{guard}: {what}" for guard, what in reads.items()) or "-"
        batch = {Orders.LIST: "yes", Orders.OBJECT_OR_LIST: "either"}.get(shape.orders, "")
        rows.append((f"`{name}`", f"{shape.product.value} {shape.op.value}", batch, text))
    return rows


def field_table_markdown() -> str:
    lines = ["| Endpoint | Product, operation | Batch | Guards read |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in field_table_rows()]
    return "\n".join(lines)
