"""Writes the guards do not read: which of them can open exposure or move funds. Pure.

With any guard set, a call that changes something (any method but GET) and that the field table
(:mod:`sidecar.policy.guards.shapes`) does not read is refused, unless it is one of the writes
below, which can neither open a position, place, amend or convert an order, lend, borrow,
subscribe nor move funds, or the key opts in to it by template in ``guards.allow_unread``.
Fail closed: an endpoint is harmless only when it is listed here (or is a DELETE, which cancels
or removes), never because it looks so; an endpoint Gate does not publish is never harmless.

Endpoints are named as Gate's catalogue names them (:mod:`sidecar.gate.endpoints`, which this
pure layer does not import: the proxy passes the template in); ``tests/test_guards_coverage.py``
checks every name here against the catalogue and walks every operation of the official SDK.
"""

from __future__ import annotations

from enum import Enum

#: Writes that open no exposure and move no funds, with why.
HARMLESS: dict[str, str] = {
    # Cancels and stops (the DELETE cancels are harmless by method).
    "POST /api/v4/futures/{settle}/autoorder/v1/chase/stop": "stops an order",
    "POST /api/v4/futures/{settle}/autoorder/v1/chase/stop_all": "stops orders",
    "POST /api/v4/futures/{settle}/autoorder/v1/trail/stop": "stops an order",
    "POST /api/v4/futures/{settle}/autoorder/v1/trail/stop_all": "stops orders",
    "POST /api/v4/crossex/batch_cancel_orders": "cancels orders",
    "POST /api/v4/bot/portfolio/stop": "stops a trading bot",
    "POST /api/v4/earn/autoinvest/plans/stop": "stops an auto-invest plan",
    "POST /api/v4/otc/order/cancel": "cancels an OTC order",
    "POST /api/v4/p2p/merchant/transaction/cancel": "cancels a P2P transaction",
    # Quotes and previews: they price, nothing executes.
    "POST /api/v4/alpha/quote": "a quote",
    "POST /api/v4/asset-swap/order/preview": "a preview",
    "POST /api/v4/crossex/convert/quote": "a quote",
    "POST /api/v4/flash_swap/orders/preview": "a preview",
    "POST /api/v4/flash_swap/multi-currency/many-to-one/order/preview": "a preview",
    "POST /api/v4/flash_swap/multi-currency/one-to-many/order/preview": "a preview",
    "POST /api/v4/otc/quote": "a quote",
    "POST /api/v4/unified/portfolio_calculator": "a calculation",
    "POST /api/v4/earn/autoinvest/min_invest_amount": "a calculation",
    # Reads that Gate takes as POST.
    "POST /api/v4/ann/list_article": "a read",
    "POST /api/v4/futures/{settle}/funding_rates": "a read",
    "POST /api/v4/p2p/merchant/account/get_counterparty_user_info": "a read",
    "POST /api/v4/p2p/merchant/account/get_myself_payment": "a read",
    "POST /api/v4/p2p/merchant/account/get_user_info": "a read",
    "POST /api/v4/p2p/merchant/books/ads_detail": "a read",
    "POST /api/v4/p2p/merchant/books/ads_list": "a read",
    "POST /api/v4/p2p/merchant/books/my_ads_list": "a read",
    "POST /api/v4/p2p/merchant/chat/get_chats_list": "a read",
    "POST /api/v4/p2p/merchant/transaction/get_completed_transaction_list": "a read",
    "POST /api/v4/p2p/merchant/transaction/get_pending_transaction_list": "a read",
    "POST /api/v4/p2p/merchant/transaction/get_transaction_details": "a read",
    # Position and margin modes of a settle currency (the settle guard still reads them).
    "POST /api/v4/futures/{settle}/dual_mode": "a position mode",
    "POST /api/v4/futures/{settle}/set_position_mode": "a position mode",
    "POST /api/v4/futures/{settle}/positions/cross_mode": "a margin mode",
    "POST /api/v4/futures/{settle}/dual_comp/positions/cross_mode": "a margin mode",
    # Protections: they can only stop trading.
    "POST /api/v4/options/mmp": "market maker protection",
    "POST /api/v4/options/mmp/reset": "market maker protection",
}


class Unread(Enum):
    """What the guards do with a write outside the field table."""

    HARMLESS = "harmless"  # opens no exposure, moves no funds: passes
    ALLOWED = "allowed"  # the key's guards.allow_unread names it: passes
    REFUSED = "refused"


def unread_write(method: str, template: str | None, allow: frozenset[str]) -> Unread:
    """A write (``method`` is not GET) the field table does not read, by its catalogue
    ``template`` (None: an endpoint Gate does not publish)."""
    if template is None:
        return Unread.REFUSED
    name = f"{method} {template}"
    if name in allow:
        return Unread.ALLOWED
    if method == "DELETE" or name in HARMLESS:
        return Unread.HARMLESS
    return Unread.REFUSED


def unread_message(method: str, path: str, template: str | None) -> str:
    """Why a write is refused unread, and the opt-in that would let it pass."""
    if template is None:
        return (
            f"{method} {path} is no endpoint Gate publishes, so no guard can read it; it is "
            "refused while any guard is set"
        )
    named = f"{method} {path}" + ("" if path == template else f" ({template})")
    return (
        f"{named} can open exposure or move funds and no guard reads it, so it is refused "
        f'while any guard is set; add "{method} {template}" to guards.allow_unread to accept '
        "it unread"
    )
