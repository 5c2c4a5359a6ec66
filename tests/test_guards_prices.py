"""Prices the guards trust: a limit sell is weighed at the higher of its price and the last trade
(a sell at 0.0001 fills near the market), and ``max_price_deviation_pct`` refuses limit orders
priced too far from the last trade, over REST and the WebSocket trading API alike. Pure."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from sidecar.config.guards import GuardsConfig
from sidecar.gate.endpoints import template_path
from sidecar.policy.conditions import Body
from sidecar.policy.guards import Call, Guards, Need, Quote, QuoteKey, Refusal
from sidecar.policy.guards.shapes import Product
from tests.test_guards import QUOTES, fut, opt, spot

SPOT = "POST /api/v4/spot/orders"
FUT = "POST /api/v4/futures/usdt/orders"


def judge(
    target: str, body: object, quotes: dict[QuoteKey, Quote] | None = None, **limits: Any
) -> Refusal | None:
    method, _, rest = target.partition(" ")
    path, _, query = rest.partition("?")
    guards = Guards(GuardsConfig(**limits))
    raw = Body(json.dumps(body).encode())
    call = guards.http_call(method, path, query, raw, template=template_path(method, path))
    return guards.check(call, QUOTES if quotes is None else quotes)


# (case, target, body, limits, the refusing guard or None, a part of the message)
CASES: list[tuple[str, str, object, dict[str, Any], str | None, str]] = [
    ("a spot sell far below the market is weighed at the last trade", SPOT,
     spot(side="sell", amount="1", price="0.0001"), {"max_notional": 100}, "max_notional",
     "max_notional 100 < notional 60000 (a sell priced at the last trade 60000 above its price "
     "0.0001 x size 1) in body"),
    ("a spot sell above the market is weighed at its own price", SPOT,
     spot(side="sell", amount="1", price="70000"), {"max_notional": 65000}, "max_notional",
     "notional 70000 (price 70000 x size 1)"),
    ("a small spot sell below the market passes", SPOT,
     spot(side="sell", amount="0.001", price="1"), {"max_notional": 100}, None, ""),
    ("a spot buy far below the market is weighed at its own price", SPOT,
     spot(side="buy", amount="1", price="1"), {"max_notional": 100}, None, ""),
    ("a spot amend names no side and is weighed as a sell",
     "PATCH /api/v4/spot/orders/7", {"currency_pair": "BTC_USDT", "amount": "1", "price": "1"},
     {"max_notional": 100}, "max_notional", "notional 60000 (a sell priced at the last trade"),
    ("a futures sell priced 1 is weighed at the last trade", FUT, fut(size=-10, price="1"),
     {"max_notional": 50}, "max_notional",
     "notional 60 (a sell priced at the last trade 60000 above its price 1 x size 10 x "
     "multiplier 0.0001)"),
    ("a futures sell priced 1e-30 is weighed at the last trade", FUT,
     fut(size=-10, price="1e-30"), {"max_notional": 50}, "max_notional", "notional 60 ("),
    ("a futures buy priced 1 is weighed at its own price", FUT, fut(size=10, price="1"),
     {"max_notional": 50}, None, ""),
    ("an options sell below the market is weighed at the last trade",
     "POST /api/v4/options/orders", opt(size=-100, price="0.01"), {"max_notional": 10},
     "max_notional", "notional 12 (a sell priced at the last trade 1200"),
    ("a sell without a last price is refused saying why", SPOT,
     spot(side="sell", price="1"), {"max_notional": 100, "quotes": {}}, "max_notional",
     "max_notional: no last price for BTC_USDT (not fetched)"),
    # -- max_price_deviation_pct -----------------------------------------------------------
    ("a buy 10% above the last trade passes a 10% limit", SPOT, spot(price="66000"),
     {"max_price_deviation_pct": 10}, None, ""),
    ("a buy 50% above the last trade is refused", SPOT, spot(price="90000"),
     {"max_price_deviation_pct": 10}, "max_price_deviation_pct",
     "max_price_deviation_pct 10 < 50: price 90000 in body.price is 50% above the last "
     "trade 60000"),
    ("a sell 99% below the last trade is refused", SPOT, spot(side="sell", price="600"),
     {"max_price_deviation_pct": 10}, "max_price_deviation_pct", "is 99% below the last trade"),
    ("a market order has no price to compare", SPOT,
     spot(type="market", price=None, time_in_force="ioc"), {"max_price_deviation_pct": 1},
     None, ""),
    ("a futures limit order far from the market is refused", FUT, fut(price="1"),
     {"max_price_deviation_pct": 5}, "max_price_deviation_pct", "99.99% below the last trade"),
    ("a futures market order (price 0) has no price to compare", FUT,
     fut(price="0", tif="ioc"), {"max_price_deviation_pct": 5}, None, ""),
    ("a futures batch with one order far from the market is refused",
     "POST /api/v4/futures/usdt/batch_orders", [fut(), fut(price="600000")],
     {"max_price_deviation_pct": 5}, "max_price_deviation_pct", "orders[1].price"),
    ("a spot amend far from the market is refused", "PATCH /api/v4/spot/orders/7",
     {"currency_pair": "BTC_USDT", "price": "1"}, {"max_price_deviation_pct": 5},
     "max_price_deviation_pct", "price 1 in body.price"),
    ("a futures amend names no contract, so it cannot be compared",
     "PUT /api/v4/futures/usdt/orders/7",
     {"price": "1"}, {"max_price_deviation_pct": 5}, "max_price_deviation_pct",
     "names no contract (Gate's futures amend carries none), so its price cannot be checked"),
    ("a POV order's limit price is compared", "POST /api/v4/spot/pov_orders",
     {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.1", "limit_price": "6000"},
     {"max_price_deviation_pct": 5}, "max_price_deviation_pct", "in body.limit_price"),
    ("a price-triggered order follows its trigger, not the last trade",
     "POST /api/v4/futures/usdt/price_orders",
     {"initial": fut(price="1"), "trigger": {"price": "1", "rule": 1}},
     {"max_price_deviation_pct": 5}, None, ""),
    ("a deviation limit without a last price refuses saying why", SPOT, spot(price="60000"),
     {"max_price_deviation_pct": 5, "quotes": {}}, "max_price_deviation_pct",
     "max_price_deviation_pct: no last price for BTC_USDT (not fetched)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("target", "body", "limits", "guard", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_the_price_guards_read_the_market_not_the_orders_own_price(
    target: str, body: object, limits: dict[str, Any], guard: str | None, message: str
) -> None:
    limits = dict(limits)
    quotes = limits.pop("quotes", None)
    refusal = judge(target, body, quotes, **limits)
    if guard is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal.guard == guard, refusal
        assert message in refusal.message, refusal.message


def _needs(target: str, body: object, **limits: Any) -> dict[QuoteKey, Need]:
    method, _, path = target.partition(" ")
    guards = Guards(GuardsConfig(**limits))
    raw = Body(json.dumps(body).encode())
    call = guards.http_call(method, path, "", raw, template=template_path(method, path))
    assert isinstance(call, Call)
    return guards.quote_needs(call)


def test_a_limit_sell_or_a_deviation_limit_fetches_the_last_trade_and_a_limit_buy_does_not() -> (
    None
):
    key = QuoteKey(Product.SPOT, None, "BTC_USDT")
    assert _needs(SPOT, spot(side="buy"), max_notional=100) == {}
    assert _needs(SPOT, spot(side="sell"), max_notional=100) == {key: Need(True, False)}
    assert _needs(SPOT, spot(side="buy"), max_price_deviation_pct=5) == {key: Need(True, False)}
    fkey = QuoteKey(Product.FUTURES, "usdt", "BTC_USDT")
    assert _needs(FUT, fut(size=1), max_notional=100) == {fkey: Need(False, True)}
    assert _needs(FUT, fut(size=-1), max_notional=100) == {fkey: Need(True, True)}


def test_websocket_trading_frames_are_priced_like_their_rest_twins() -> None:
    guards = Guards(GuardsConfig.model_validate(dict(max_notional=50, max_price_deviation_pct=5)))
    call = guards.ws_call("futures.order_place", "usdt", fut(size=-10, price="1"))
    refusal = guards.check(call, QUOTES)
    assert refusal is not None and refusal.guard == "max_notional"
    assert "a sell priced at the last trade 60000 above its price 1" in refusal.message
    call = guards.ws_call("spot.order_place", None, spot(amount="0.0001", price="90000"))
    refusal = guards.check(call, QUOTES)
    assert refusal is not None and refusal.guard == "max_price_deviation_pct"
    assert refusal.message.endswith("is 50% above the last trade 60000")
    call = guards.ws_call("spot.order_place", None, spot(amount="0.0001", price="61000"))
    assert guards.check(call, QUOTES) is None


def test_a_deviation_limit_is_a_positive_finite_config_value() -> None:
    from pydantic import ValidationError

    assert GuardsConfig.model_validate(
        dict(max_price_deviation_pct="2.5")
    ).max_price_deviation_pct == Decimal("2.5")
    for bad in (0, -1, "inf", "NaN", "five"):
        with pytest.raises(ValidationError, match="max_price_deviation_pct"):
            GuardsConfig.model_validate(dict(max_price_deviation_pct=bad))
