"""The dispatch table, matched against the raw path: nothing here decodes or normalises it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from sidecar.devtools.exchange import countdown as cd
from sidecar.devtools.exchange import handlers_futures as fut
from sidecar.devtools.exchange import handlers_margin as mar
from sidecar.devtools.exchange import handlers_public as pub
from sidecar.devtools.exchange import handlers_spot as spot
from sidecar.devtools.exchange import handlers_subaccounts as sub
from sidecar.devtools.exchange import handlers_wallet as wal
from sidecar.devtools.exchange.calls import Handler

PREFIX = "/api/v4"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    private: bool


def _route(method: str, path: str, handler: Handler, *, private: bool = True) -> Route:
    # A parameter is one raw segment: "%2F" stays inside it, "/" never does.
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(method, re.compile(f"{PREFIX}{pattern}"), handler, private)


ROUTES: tuple[Route, ...] = (
    # public market data
    _route("GET", "/spot/time", pub.server_time, private=False),
    _route("GET", "/spot/currency_pairs", pub.currency_pairs, private=False),
    _route("GET", "/spot/currency_pairs/{pair}", pub.currency_pair, private=False),
    _route("GET", "/spot/currencies", pub.currencies, private=False),
    _route("GET", "/spot/tickers", pub.tickers, private=False),
    _route("GET", "/futures/{settle}/contracts", pub.contracts, private=False),
    _route("GET", "/futures/{settle}/contracts/{contract}", pub.contract, private=False),
    _route("GET", "/futures/{settle}/tickers", pub.futures_tickers, private=False),
    _route("GET", "/margin/currency_pairs", pub.empty_list, private=False),
    _route("GET", "/delivery/{settle}/contracts", pub.delivery_contracts, private=False),
    _route("GET", "/delivery/{settle}/contracts/{contract}", pub.delivery_contract, private=False),
    _route("GET", "/delivery/{settle}/tickers", pub.delivery_tickers, private=False),
    _route("GET", "/options/contracts/{contract}", pub.options_contract, private=False),
    _route("GET", "/options/underlyings", pub.empty_list, private=False),
    # account and wallet
    _route("GET", "/account/detail", wal.account_detail),
    _route("GET", "/account/main_keys", wal.main_keys),
    _route("GET", "/wallet/total_balance", wal.total_balance),
    _route("POST", "/withdrawals", wal.withdraw),
    _route("POST", "/withdrawals/push", wal.withdraw_push),
    _route("POST", "/wallet/transfers", wal.transfer),
    # sub-account API keys (a main-account key manages them)
    _route("POST", "/sub_accounts/{uid}/keys", sub.create_key),
    _route("GET", "/sub_accounts/{uid}/keys", sub.list_keys),
    _route("GET", "/sub_accounts/{uid}/keys/{key}", sub.get_key),
    _route("PUT", "/sub_accounts/{uid}/keys/{key}", sub.update_key),
    _route("DELETE", "/sub_accounts/{uid}/keys/{key}", sub.delete_key),
    _route("POST", "/sub_accounts/{uid}/lock", sub.lock),
    _route("POST", "/sub_accounts/{uid}/unlock", sub.unlock),
    # spot
    _route("GET", "/spot/accounts", spot.spot_accounts),
    _route("POST", "/spot/orders", spot.create_order),
    _route("GET", "/spot/orders", spot.list_orders),
    _route("DELETE", "/spot/orders", spot.cancel_orders),
    _route("GET", "/spot/orders/{id}", spot.get_order),
    _route("DELETE", "/spot/orders/{id}", spot.cancel_order),
    _route("PATCH", "/spot/orders/{id}", spot.amend_order),
    _route("POST", "/spot/cancel_batch_orders", spot.cancel_batch_orders),
    _route("POST", "/spot/batch_orders", spot.batch_orders),
    _route("GET", "/spot/open_orders", spot.open_orders),
    _route("POST", "/spot/countdown_cancel_all", cd.spot_countdown),
    _route("POST", "/futures/{settle}/countdown_cancel_all", cd.futures_countdown),
    _route("POST", "/options/countdown_cancel_all", cd.options_countdown),
    # margin and unified leverage
    _route("POST", "/margin/leverage/user_market_setting", mar.set_margin_market_leverage),
    _route("POST", "/unified/leverage/user_currency_setting", mar.set_unified_currency_leverage),
    _route("GET", "/unified/leverage/user_currency_setting", mar.unified_currency_leverage),
    # perpetual futures
    _route("GET", "/futures/{settle}/accounts", fut.futures_accounts),
    _route("POST", "/futures/{settle}/orders", fut.create_order),
    _route("GET", "/futures/{settle}/orders", fut.list_orders),
    _route("DELETE", "/futures/{settle}/orders", fut.cancel_orders),
    _route("GET", "/futures/{settle}/orders/{id}", fut.get_order),
    _route("DELETE", "/futures/{settle}/orders/{id}", fut.cancel_order),
    _route("PUT", "/futures/{settle}/orders/{id}", fut.amend_order),
    _route("POST", "/futures/{settle}/batch_cancel_orders", fut.cancel_batch_orders),
    _route("POST", "/futures/{settle}/batch_orders", fut.batch_orders),
    _route("GET", "/futures/{settle}/positions", fut.positions),
    _route("GET", "/futures/{settle}/positions/{contract}", fut.position),
    _route("POST", "/futures/{settle}/positions/{contract}/leverage", fut.set_leverage),
)


def find(method: str, raw_path: str) -> tuple[Route | None, dict[str, str]]:
    """The route for this method and raw path (None: unknown, the caller echoes it)."""
    for route in ROUTES:
        match = route.pattern.fullmatch(raw_path)
        if match and route.method == method:
            # Values are decoded (as Gate's router does); the path itself never is.
            return route, {k: unquote(v) for k, v in match.groupdict().items()}
    return None, {}
