"""Leverage settings of spot margin markets and of a unified account's borrowed currencies.

Shapes from gate-api 7.2.161: ``MarginMarketLeverage`` {currency_pair, leverage} and
``UnifiedLeverageSetting`` {currency, leverage}, both answered 204 with no body; the unified
settings read back as a list of ``UnifiedLeverageSetting``. Kept per API key in memory.
"""

from __future__ import annotations

from sidecar.devtools.exchange.calls import Call, Result, decimal, invalid, obj_body, required

MAX_MARGIN_LEVERAGE = 10  # Gate's spot margin markets allow a few times, not futures' 100
MAX_UNIFIED_LEVERAGE = 10


def _leverage(value: object, maximum: int) -> str:
    number = decimal(value, "leverage")
    if not 1 <= number <= maximum:
        raise invalid(f"leverage must be 1 to {maximum}")
    return str(value)


def _set_leverage(call: Call, field: str, scope: str, maximum: int) -> Result:
    spec = obj_body(call)
    required(spec, field, "leverage")
    call.acct.leverage[f"{scope}/{spec[field]}"] = _leverage(spec["leverage"], maximum)
    return 204, None


def set_margin_market_leverage(call: Call) -> Result:
    return _set_leverage(call, "currency_pair", "margin", MAX_MARGIN_LEVERAGE)


def set_unified_currency_leverage(call: Call) -> Result:
    return _set_leverage(call, "currency", "unified", MAX_UNIFIED_LEVERAGE)


def unified_currency_leverage(call: Call) -> Result:
    wanted = call.query.get("currency")
    settings = [
        {"currency": name.removeprefix("unified/"), "leverage": value}
        for name, value in sorted(call.acct.leverage.items())
        if name.startswith("unified/") and wanted in (None, name.removeprefix("unified/"))
    ]
    return 200, settings
