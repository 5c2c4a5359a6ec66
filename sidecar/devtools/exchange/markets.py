"""The exchange's few markets, shaped like Gate's public answers (gate-api models as the check)."""

from __future__ import annotations

from typing import Any

PRICES = {"BTC": "60000", "ETH": "3000"}
PAIRS = ("BTC_USDT", "ETH_USDT")
SETTLES = ("usdt", "btc")
CONTRACTS = {"usdt": ("BTC_USDT", "ETH_USDT"), "btc": ("BTC_USD",)}
CURRENCIES = ("BTC", "ETH", "USDT")


def price(market: str) -> str:
    return PRICES.get(market.split("_")[0], "1")


def pair(name: str) -> dict[str, Any]:
    base, quote = name.split("_")
    return {
        "id": name,
        "base": base,
        "base_name": base,
        "quote": quote,
        "quote_name": quote,
        "fee": "0.2",
        "min_base_amount": "0.0001",
        "min_quote_amount": "1",
        "max_quote_amount": "10000000",
        "amount_precision": 4,
        "precision": 2,
        "trade_status": "tradable",
        "sell_start": 0,
        "buy_start": 0,
        "type": "normal",
        "trade_url": f"https://www.gate.io/trade/{name}",
    }


def currency(name: str) -> dict[str, Any]:
    return {
        "currency": name,
        "name": name,
        "delisted": False,
        "withdraw_disabled": False,
        "withdraw_delayed": False,
        "deposit_disabled": False,
        "trade_disabled": False,
        "fixed_rate": "",
        "chain": name,
        "chains": [
            {"name": name, "addr": "", "withdraw_disabled": False, "deposit_disabled": False}
        ],
    }


def ticker(name: str) -> dict[str, Any]:
    last = price(name)
    return {
        "currency_pair": name,
        "last": last,
        "lowest_ask": last,
        "lowest_size": "1",
        "highest_bid": last,
        "highest_size": "1",
        "change_percentage": "1.5",
        "base_volume": "100",
        "quote_volume": str(100 * int(last)),
        "high_24h": last,
        "low_24h": last,
    }


def contract(name: str, settle: str) -> dict[str, Any]:
    last = price(name)
    return {
        "name": name,
        "type": "inverse" if settle == "btc" else "direct",
        "quanto_multiplier": "0" if settle == "btc" else "0.0001",
        "leverage_min": "1",
        "leverage_max": "100",
        "maintenance_rate": "0.005",
        "mark_type": "index",
        "mark_price": last,
        "index_price": last,
        "last_price": last,
        "maker_fee_rate": "-0.00025",
        "taker_fee_rate": "0.00075",
        "order_price_round": "0.1",
        "mark_price_round": "0.01",
        "funding_rate": "0.0001",
        "funding_interval": 28800,
        "funding_next_apply": 1700000000.0,
        "risk_limit_base": "1000000",
        "risk_limit_step": "1000000",
        "risk_limit_max": "8000000",
        "order_size_min": 1,
        "order_size_max": 1000000,
        "order_price_deviate": "0.5",
        "orderbook_id": 1,
        "trade_id": 1,
        "trade_size": 0,
        "position_size": 0,
        "in_delisting": False,
        "orders_limit": 100,
        "enable_bonus": False,
        "enable_credit": False,
        "create_time": 1600000000.0,
        "status": "trading",
    }


def futures_ticker(name: str) -> dict[str, Any]:
    last = price(name)
    return {
        "contract": name,
        "last": last,
        "change_percentage": "1.2",
        "total_size": "1000",
        "low_24h": last,
        "high_24h": last,
        "volume_24h": "1000",
        "volume_24h_base": "10",
        "volume_24h_quote": "600000",
        "volume_24h_settle": "600000",
        "mark_price": last,
        "funding_rate": "0.0001",
        "funding_rate_indicative": "0.0001",
        "index_price": last,
        "lowest_ask": last,
        "highest_bid": last,
    }


DELIVERY = {"usdt": ("BTC_USDT_20300331",)}
OPTIONS = ("BTC_USDT-20300331-60000-C",)
OPTION_PREMIUM = "1200"


def delivery_contract(name: str, settle: str) -> dict[str, Any]:
    """DeliveryContract: a futures contract with an expiry (gate-api model)."""
    return {
        **contract(name, settle),
        "underlying": name.rsplit("_", 1)[0],
        "cycle": "QUARTERLY",
        "expire_time": 1900000000,
        "settle_price": "0",
        "basis_rate": "0",
        "basis_value": "0",
        "basis_impact_value": "0",
    }


def options_contract(name: str) -> dict[str, Any]:
    """OptionsContract (gate-api model): the premium is its last price."""
    underlying, _expiry, strike, kind = name.split("-")
    return {
        "name": name,
        "tag": "QUARTERLY",
        "create_time": 1700000000.0,
        "expiration_time": 1900000000.0,
        "is_call": kind == "C",
        "multiplier": "0.0001",
        "underlying": underlying,
        "underlying_price": price(underlying),
        "last_price": OPTION_PREMIUM,
        "mark_price": OPTION_PREMIUM,
        "index_price": price(underlying),
        "strike_price": strike,
        "order_size_min": 1,
        "order_size_max": 100000,
        "orders_limit": 50,
    }
