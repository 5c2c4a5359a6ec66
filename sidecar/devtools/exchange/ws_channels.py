"""The exchange's WebSocket endpoints and what Gate serves on each, written from Gate's docs
(spot, futures, delivery and options WebSocket v4) and the SDKs' private-topic lists (gateio-api
``websocket-util``), not from the sidecar's table.

- spot ``/ws/v4/``; perpetual futures ``/v4/ws/{settle}`` (also ``/v4/ws/futures/{settle}``, the
  testnet form); delivery ``/v4/ws/delivery/{settle}``; options ``/v4/ws/options/{settle}``
  (ccxt's form of the options URL).
- Delivery connections speak the ``futures.*`` channel names (``futures.ping``,
  ``futures.orders``...): Gate's delivery docs use them, and gateio-api lists the same private
  topics "for perps vs delivery futures". Options channels are ``options.*``.
- Gate's trading API (``event: "api"``) exists on spot and perpetual futures only: the delivery
  and options docs have no such section, and Gate's live delivery endpoint answers
  ``futures.order_place`` as it answers a channel that does not exist (probes quoted in
  thrasher-corp/gocryptotrader#2174). The exchange answers such a frame the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SETTLED = re.compile(r"/v4/ws/(?:(futures|delivery|options)/)?(usdt|btc)")

_FUTURES_PRIVATE = frozenset(
    {
        "futures.orders",
        "futures.usertrades",
        "futures.balances",
        "futures.positions",
        "futures.autoorders",
        "futures.liquidates",
        "futures.auto_deleverages",
        "futures.position_closes",
        "futures.reduce_risk_limits",
    }
)


@dataclass(frozen=True)
class WsProduct:
    name: str  # spot | futures | delivery | options
    prefix: str  # what its channel names start with (futures on delivery)
    private: frozenset[str]  # channels whose (un)subscription must be signed
    trading_api: bool  # whether Gate serves event "api" (login, orders) here


PRODUCTS = {
    "spot": WsProduct(
        "spot",
        "spot",
        frozenset(
            {
                "spot.orders",
                "spot.usertrades",
                "spot.balances",
                "spot.margin_balances",
                "spot.funding_balances",
                "spot.cross_balances",
                "spot.priceorders",
                "spot.cross_loan",
            }
        ),
        trading_api=True,
    ),
    "futures": WsProduct("futures", "futures", _FUTURES_PRIVATE, trading_api=True),
    "delivery": WsProduct("delivery", "futures", _FUTURES_PRIVATE, trading_api=False),
    "options": WsProduct(
        "options",
        "options",
        frozenset(
            {
                "options.orders",
                "options.usertrades",
                "options.liquidates",
                "options.user_settlements",
                "options.position_closes",
                "options.balances",
                "options.positions",
            }
        ),
        trading_api=False,
    ),
}


def ws_target(raw_path: str) -> tuple[WsProduct, str] | None:
    """(product, settle) of a WebSocket path the exchange serves (settle "" on spot)."""
    if raw_path == "/ws/v4/":
        return PRODUCTS["spot"], ""
    m = _SETTLED.fullmatch(raw_path)
    return (PRODUCTS[m[1] or "futures"], m[2]) if m else None
