"""Gate's public market-data endpoints: answered without a signature, per IP. Pure.

From Gate's API v4 documentation (v4.105, endpoints marked "no authentication") and the official
Python SDK (gate-api 7.2.161: the operations whose ``auth_settings`` is empty). Used by the rate
budgets (public endpoints have their own group) and the trading guards (market data is never an
order, so the instrument and settle guards leave it alone).
"""

from __future__ import annotations

import re

_PUBLIC_GLOBS = (
    r"/spot/(?:currencies|currency_pairs|tickers|order_book|trades|candlesticks|time"
    r"|insurance_history)(?:/[^/]+)?",
    r"/(?:futures|delivery)/[^/]+/(?:contracts|order_book|trades|candlesticks|premium_index"
    r"|tickers|funding_rate|insurance|contract_stats|index_constituents|liq_orders"
    r"|risk_limit_tiers|risk_limit_table)(?:/[^/]+)?",
    r"/options/(?:underlyings|expirations|contracts|settlements|order_book|tickers|candlesticks"
    r"|trades|underlying/tickers|underlying/candlesticks)(?:/[^/]+)?",
    r"/margin/(?:currency_pairs|uni/currency_pairs|cross/currencies)(?:/[^/]+)?",
    r"/wallet/currency_chains",
)
_PUBLIC = re.compile("/api/v4(?:" + "|".join(_PUBLIC_GLOBS) + ")")


def is_public(method: str, path: str) -> bool:
    """Whether ``method path`` is public market data (a GET Gate answers without a key)."""
    return method == "GET" and _PUBLIC.fullmatch(path) is not None
