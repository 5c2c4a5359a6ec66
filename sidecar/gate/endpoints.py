"""Gate's API v4 endpoints, as templates (``GET /api/v4/options/orders/{order_id}``). Pure.

The catalogue is every operation of the official Python SDK (gate-api 7.2.161, one line per
``*Api`` method: its HTTP method and path; ``tests/test_endpoints.py`` compares the two), so the
sidecar can name the endpoint a concrete request calls. The rate budgets count per endpoint
template (a new id per request is the same endpoint to Gate), ``guards.allow_unread`` names its
opt-ins by template, and the guards refuse writes they cannot read by template.

Longer than the usual module on purpose: it is one table of data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sidecar.memo import PATH_MAX, SIZE

PREFIX = "/api/v4"


@dataclass(frozen=True, slots=True)
class Template:
    method: str
    path: str  # /api/v4/options/orders/{order_id}
    segments: tuple[str | None, ...]  # literal segments; None where a {parameter} is

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    def params(self, path: str) -> dict[str, str] | None:
        """The path parameters of ``path`` if this template names it, else None."""
        parts = path.split("/")
        if len(parts) != len(self.segments):
            return None
        names = self.path.split("/")
        out = {}
        for literal, part, name in zip(self.segments, parts, names, strict=True):
            if literal is None:
                if not part:
                    return None
                out[name[1:-1]] = part
            elif literal != part:
                return None
        return out


_PARAM = re.compile(r"\{\w+\}")

_CATALOGUE = """
GET /account/debit_fee
POST /account/debit_fee
GET /account/detail
GET /account/main_keys
GET /account/rate_limit
GET /account/stp_groups
POST /account/stp_groups
GET /account/stp_groups/{stp_id}/users
POST /account/stp_groups/{stp_id}/users
DELETE /account/stp_groups/{stp_id}/users
GET /alpha/account_book
GET /alpha/accounts
GET /alpha/currencies
GET /alpha/order
GET /alpha/orders
POST /alpha/orders
POST /alpha/quote
GET /alpha/tickers
GET /alpha/tokens
POST /ann/list_article
GET /asset-swap/asset/list
GET /asset-swap/config
GET /asset-swap/evaluate
POST /asset-swap/order/create
GET /asset-swap/order/list
POST /asset-swap/order/preview
GET /asset-swap/order/{order_id}
POST /bot/contract-martingale/create
POST /bot/futures-grid/create
POST /bot/infinite-grid/create
POST /bot/margin-grid/create
GET /bot/portfolio/detail
GET /bot/portfolio/running
POST /bot/portfolio/stop
POST /bot/spot-grid/create
POST /bot/spot-martingale/create
GET /bot/strategy/recommend
GET /coupon/user-coupon-detail
GET /coupon/user-coupon-list
GET /crossex/account_book
GET /crossex/accounts
PUT /crossex/accounts
GET /crossex/adl_rank
POST /crossex/batch_cancel_orders
GET /crossex/coin_discount_rate
POST /crossex/convert/orders
POST /crossex/convert/quote
GET /crossex/fee
GET /crossex/history_margin_interests
GET /crossex/history_margin_positions
GET /crossex/history_orders
GET /crossex/history_positions
GET /crossex/history_trades
GET /crossex/interest_rate
GET /crossex/margin_positions
GET /crossex/margin_positions/leverage
POST /crossex/margin_positions/leverage
GET /crossex/market/funding_info
GET /crossex/market/tickers
GET /crossex/open_orders
POST /crossex/orders
GET /crossex/orders/{order_id}
PUT /crossex/orders/{order_id}
DELETE /crossex/orders/{order_id}
POST /crossex/position
GET /crossex/positions
GET /crossex/positions/leverage
POST /crossex/positions/leverage
POST /crossex/positions/margin
GET /crossex/positions/margin_mode
POST /crossex/positions/margin_mode
GET /crossex/rule/risk_limits
GET /crossex/rule/symbols
GET /crossex/security_positions
GET /crossex/transfers
POST /crossex/transfers
GET /crossex/transfers/coin
GET /delivery/{settle}/account_book
GET /delivery/{settle}/accounts
GET /delivery/{settle}/candlesticks
GET /delivery/{settle}/contracts
GET /delivery/{settle}/contracts/{contract}
GET /delivery/{settle}/insurance
GET /delivery/{settle}/liquidates
GET /delivery/{settle}/my_trades
GET /delivery/{settle}/order_book
GET /delivery/{settle}/orders
POST /delivery/{settle}/orders
DELETE /delivery/{settle}/orders
GET /delivery/{settle}/orders/{order_id}
DELETE /delivery/{settle}/orders/{order_id}
GET /delivery/{settle}/position_close
GET /delivery/{settle}/positions
GET /delivery/{settle}/positions/{contract}
POST /delivery/{settle}/positions/{contract}/leverage
POST /delivery/{settle}/positions/{contract}/margin
POST /delivery/{settle}/positions/{contract}/risk_limit
GET /delivery/{settle}/price_orders
POST /delivery/{settle}/price_orders
DELETE /delivery/{settle}/price_orders
GET /delivery/{settle}/price_orders/{order_id}
DELETE /delivery/{settle}/price_orders/{order_id}
GET /delivery/{settle}/risk_limit_tiers
GET /delivery/{settle}/settlements
GET /delivery/{settle}/tickers
GET /delivery/{settle}/trades
GET /earn/autoinvest/coins
GET /earn/autoinvest/config
POST /earn/autoinvest/min_invest_amount
GET /earn/autoinvest/orders
POST /earn/autoinvest/plans/add_position
POST /earn/autoinvest/plans/create
GET /earn/autoinvest/plans/detail
GET /earn/autoinvest/plans/list_info
GET /earn/autoinvest/plans/records
POST /earn/autoinvest/plans/stop
POST /earn/autoinvest/plans/update
GET /earn/dual/balance
GET /earn/dual/investment_plan
POST /earn/dual/modify-order-reinvest
POST /earn/dual/order-refund
GET /earn/dual/order-refund-preview
GET /earn/dual/orders
POST /earn/dual/orders
GET /earn/dual/project-recommend
GET /earn/dual/stock/balance
GET /earn/dual/stock/investment_plan
POST /earn/dual/stock/modify-order-reinvest
POST /earn/dual/stock/order-refund
GET /earn/dual/stock/order-refund-preview
GET /earn/dual/stock/orders
POST /earn/dual/stock/orders
GET /earn/dual/stock/project-recommend
GET /earn/fixed-term/product
GET /earn/fixed-term/product/{asset}/list
GET /earn/fixed-term/user/history
GET /earn/fixed-term/user/lend
POST /earn/fixed-term/user/lend
POST /earn/fixed-term/user/pre-redeem
GET /earn/staking/assets
GET /earn/staking/award_list
GET /earn/staking/coins
GET /earn/staking/order_list
POST /earn/staking/swap
GET /earn/uni/chart
GET /earn/uni/currencies
GET /earn/uni/currencies/{currency}
GET /earn/uni/interest_records
GET /earn/uni/interest_status/{currency}
GET /earn/uni/interests/{currency}
GET /earn/uni/lend_records
GET /earn/uni/lends
POST /earn/uni/lends
PATCH /earn/uni/lends
GET /earn/uni/rate
GET /flash_swap/currency_pairs
POST /flash_swap/multi-currency/many-to-one/order/create
POST /flash_swap/multi-currency/many-to-one/order/preview
POST /flash_swap/multi-currency/one-to-many/order/create
POST /flash_swap/multi-currency/one-to-many/order/preview
POST /flash_swap/order/create
GET /flash_swap/order/preview
GET /flash_swap/orders
POST /flash_swap/orders
POST /flash_swap/orders/preview
GET /flash_swap/orders/{order_id}
GET /futures/{settle}/account_book
GET /futures/{settle}/accounts
GET /futures/{settle}/adl_risk_states
GET /futures/{settle}/auto_deleverages
POST /futures/{settle}/autoorder/v1/chase/create
GET /futures/{settle}/autoorder/v1/chase/detail
GET /futures/{settle}/autoorder/v1/chase/list
POST /futures/{settle}/autoorder/v1/chase/stop
POST /futures/{settle}/autoorder/v1/chase/stop_all
GET /futures/{settle}/autoorder/v1/trail/change_log
POST /futures/{settle}/autoorder/v1/trail/create
GET /futures/{settle}/autoorder/v1/trail/detail
GET /futures/{settle}/autoorder/v1/trail/list
POST /futures/{settle}/autoorder/v1/trail/stop
POST /futures/{settle}/autoorder/v1/trail/stop_all
POST /futures/{settle}/autoorder/v1/trail/update
POST /futures/{settle}/batch_amend_orders
POST /futures/{settle}/batch_cancel_orders
POST /futures/{settle}/batch_orders
POST /futures/{settle}/bbo_orders
GET /futures/{settle}/candlesticks
GET /futures/{settle}/contract_stats
GET /futures/{settle}/contracts
GET /futures/{settle}/contracts/{contract}
GET /futures/{settle}/contracts_all
POST /futures/{settle}/countdown_cancel_all
POST /futures/{settle}/dual_comp/positions/cross_mode
GET /futures/{settle}/dual_comp/positions/{contract}
POST /futures/{settle}/dual_comp/positions/{contract}/leverage
POST /futures/{settle}/dual_comp/positions/{contract}/margin
POST /futures/{settle}/dual_comp/positions/{contract}/risk_limit
POST /futures/{settle}/dual_mode
GET /futures/{settle}/fee
GET /futures/{settle}/funding_rate
POST /futures/{settle}/funding_rates
GET /futures/{settle}/get_leverage/{contract}
GET /futures/{settle}/index_constituents/{index}
GET /futures/{settle}/insurance
GET /futures/{settle}/liq_orders
GET /futures/{settle}/liquidates
GET /futures/{settle}/my_trades
GET /futures/{settle}/my_trades_timerange
GET /futures/{settle}/order_book
GET /futures/{settle}/orders
POST /futures/{settle}/orders
DELETE /futures/{settle}/orders
GET /futures/{settle}/orders/{order_id}
PUT /futures/{settle}/orders/{order_id}
DELETE /futures/{settle}/orders/{order_id}
GET /futures/{settle}/orders_timerange
GET /futures/{settle}/position_close
GET /futures/{settle}/positions
POST /futures/{settle}/positions/cross_mode
GET /futures/{settle}/positions/{contract}
POST /futures/{settle}/positions/{contract}/leverage
POST /futures/{settle}/positions/{contract}/margin
POST /futures/{settle}/positions/{contract}/risk_limit
POST /futures/{settle}/positions/{contract}/set_leverage
GET /futures/{settle}/positions_timerange
GET /futures/{settle}/premium_index
GET /futures/{settle}/price_orders
POST /futures/{settle}/price_orders
DELETE /futures/{settle}/price_orders
PUT /futures/{settle}/price_orders/amend/{order_id}
GET /futures/{settle}/price_orders/{order_id}
DELETE /futures/{settle}/price_orders/{order_id}
GET /futures/{settle}/risk_limit_table
GET /futures/{settle}/risk_limit_tiers
GET /futures/{settle}/rpi_order_book
POST /futures/{settle}/set_position_mode
GET /futures/{settle}/tickers
GET /futures/{settle}/trades
GET /loan/multi_collateral/currencies
GET /loan/multi_collateral/currency_quota
GET /loan/multi_collateral/current_rate
GET /loan/multi_collateral/fixed_rate
GET /loan/multi_collateral/ltv
GET /loan/multi_collateral/mortgage
POST /loan/multi_collateral/mortgage
GET /loan/multi_collateral/orders
POST /loan/multi_collateral/orders
GET /loan/multi_collateral/orders/{order_id}
GET /loan/multi_collateral/repay
POST /loan/multi_collateral/repay
GET /margin/account_book
GET /margin/accounts
GET /margin/auto_repay
POST /margin/auto_repay
GET /margin/cross/loans
GET /margin/cross/repayments
GET /margin/funding_accounts
POST /margin/leverage/user_market_setting
GET /margin/loan_margin_tiers
GET /margin/transferable
GET /margin/uni/borrowable
GET /margin/uni/currency_pairs
GET /margin/uni/currency_pairs/{currency_pair}
GET /margin/uni/estimate_rate
GET /margin/uni/interest_records
GET /margin/uni/loan_records
GET /margin/uni/loans
POST /margin/uni/loans
GET /margin/user/account
GET /margin/user/loan_margin_tiers
GET /options/account_book
GET /options/accounts
GET /options/candlesticks
GET /options/contracts
GET /options/contracts/{contract}
POST /options/countdown_cancel_all
GET /options/expirations
GET /options/mmp
POST /options/mmp
POST /options/mmp/reset
GET /options/my_settlements
GET /options/my_trades
GET /options/order_book
GET /options/orders
POST /options/orders
DELETE /options/orders
GET /options/orders/{order_id}
PUT /options/orders/{order_id}
DELETE /options/orders/{order_id}
GET /options/position_close
GET /options/positions
GET /options/positions/{contract}
GET /options/settlements
GET /options/settlements/{contract}
GET /options/tickers
GET /options/trades
GET /options/underlying/candlesticks
GET /options/underlying/tickers/{underlying}
GET /options/underlyings
GET /otc/bank/bank_supplement_checklist
POST /otc/bank/create
POST /otc/bank/delete
POST /otc/bank/enterprise/bank_supplement
GET /otc/bank/list
POST /otc/bank/personal/bank_supplement
POST /otc/bank/set_default
POST /otc/order/cancel
POST /otc/order/create
GET /otc/order/detail
GET /otc/order/list
POST /otc/order/paid
POST /otc/quote
POST /otc/stable_coin/order/create
GET /otc/stable_coin/order/list
POST /otc/upload/pre_upload
POST /p2p/merchant/account/get_counterparty_user_info
POST /p2p/merchant/account/get_myself_payment
POST /p2p/merchant/account/get_user_info
POST /p2p/merchant/account/set_merchant_work_hours
POST /p2p/merchant/books/ads_detail
POST /p2p/merchant/books/ads_list
POST /p2p/merchant/books/ads_update_status
POST /p2p/merchant/books/my_ads_list
POST /p2p/merchant/books/place_biz_push_order
POST /p2p/merchant/chat/get_chats_list
POST /p2p/merchant/chat/send_chat_message
POST /p2p/merchant/chat/upload_chat_file
POST /p2p/merchant/transaction/cancel
POST /p2p/merchant/transaction/confirm-payment
POST /p2p/merchant/transaction/confirm-receipt
POST /p2p/merchant/transaction/get_completed_transaction_list
POST /p2p/merchant/transaction/get_pending_transaction_list
POST /p2p/merchant/transaction/get_transaction_details
GET /rebate/agency/commission_history
GET /rebate/agency/transaction_history
GET /rebate/broker/commission_history
GET /rebate/broker/transaction_history
GET /rebate/partner/applications/recent
GET /rebate/partner/commission_history
GET /rebate/partner/data/aggregated
GET /rebate/partner/eligibility
GET /rebate/partner/sub_list
GET /rebate/partner/transaction_history
GET /rebate/user/info
GET /rebate/user/sub_relation
GET /rewards/activity/activity-list
GET /rewards/activity/activity-type
GET /rewards/activity/my-activity-entry
POST /rewards/claimReward
POST /rewards/claimTask
GET /rewards/getBeginnerTaskList
GET /rewards/getUserIdentity
GET /social/live/tag_coin_live_replay
GET /social/message/search
GET /spot/account_book
GET /spot/accounts
POST /spot/amend_batch_orders
GET /spot/batch_fee
POST /spot/batch_orders
POST /spot/cancel_batch_orders
GET /spot/candlesticks
POST /spot/countdown_cancel_all
POST /spot/cross_liquidate_orders
GET /spot/currencies
GET /spot/currencies/{currency}
GET /spot/currency_pairs
GET /spot/currency_pairs/{currency_pair}
GET /spot/fee
GET /spot/insurance_history
GET /spot/my_trades
GET /spot/open_orders
GET /spot/order_book
GET /spot/orders
POST /spot/orders
DELETE /spot/orders
GET /spot/orders/{order_id}
PATCH /spot/orders/{order_id}
DELETE /spot/orders/{order_id}
GET /spot/pov_orders
POST /spot/pov_orders
DELETE /spot/pov_orders
GET /spot/pov_orders/{order_id}
DELETE /spot/pov_orders/{order_id}
GET /spot/price_orders
POST /spot/price_orders
DELETE /spot/price_orders
GET /spot/price_orders/{order_id}
DELETE /spot/price_orders/{order_id}
GET /spot/rpi_order_book
GET /spot/tickers
GET /spot/time
GET /spot/trades
GET /stock/exchanges
GET /stock/fee-rate
GET /stock/market/{symbol}/orderbook
GET /stock/orders
POST /stock/orders
DELETE /stock/orders
GET /stock/orders/history
PUT /stock/orders/{order_id}
DELETE /stock/orders/{order_id}
GET /stock/positions
POST /stock/positions/close
GET /stock/symbols
GET /stock/symbols/detail
GET /stock/transactions
POST /stock/transactions
GET /stock/users/assets
GET /sub_accounts
POST /sub_accounts
GET /sub_accounts/unified_mode
GET /sub_accounts/{user_id}
GET /sub_accounts/{user_id}/keys
POST /sub_accounts/{user_id}/keys
GET /sub_accounts/{user_id}/keys/{key}
PUT /sub_accounts/{user_id}/keys/{key}
DELETE /sub_accounts/{user_id}/keys/{key}
POST /sub_accounts/{user_id}/lock
POST /sub_accounts/{user_id}/unlock
GET /tradfi/orders
POST /tradfi/orders
GET /tradfi/orders/history
GET /tradfi/orders/log/{log_id}
PUT /tradfi/orders/{order_id}
DELETE /tradfi/orders/{order_id}
GET /tradfi/positions
GET /tradfi/positions/history
PUT /tradfi/positions/{position_id}
POST /tradfi/positions/{position_id}/close
GET /tradfi/symbols
GET /tradfi/symbols/categories
GET /tradfi/symbols/commissions
GET /tradfi/symbols/detail
GET /tradfi/symbols/{symbol}/klines
GET /tradfi/symbols/{symbol}/tickers
GET /tradfi/transactions
POST /tradfi/transactions
POST /tradfi/users
GET /tradfi/users/assets
GET /tradfi/users/mt5-account
GET /unified/accounts
GET /unified/batch_borrowable
GET /unified/borrowable
POST /unified/collateral_currencies
GET /unified/currencies
GET /unified/currency_discount_tiers
GET /unified/delta_neutral
POST /unified/delta_neutral
GET /unified/estimate_rate
GET /unified/estimated_quick_repayment
GET /unified/history_loan_rate
GET /unified/interest_records
GET /unified/leverage/user_currency_config
GET /unified/leverage/user_currency_setting
POST /unified/leverage/user_currency_setting
POST /unified/leverage/user_setting
GET /unified/loan_margin_tiers
GET /unified/loan_records
GET /unified/loans
POST /unified/loans
POST /unified/portfolio_calculator
POST /unified/quick_repayment
GET /unified/risk_units
GET /unified/transferable
GET /unified/transferables
GET /unified/unified_mode
PUT /unified/unified_mode
GET /wallet/currency_chains
GET /wallet/deposit_address
GET /wallet/deposits
GET /wallet/fee
GET /wallet/getLowCapExchangeList
GET /wallet/order_status
GET /wallet/push
GET /wallet/saved_address
GET /wallet/small_balance
POST /wallet/small_balance
GET /wallet/small_balance_history
GET /wallet/sub_account_balances
GET /wallet/sub_account_cross_margin_balances
GET /wallet/sub_account_futures_balances
GET /wallet/sub_account_margin_balances
POST /wallet/sub_account_to_sub_account
GET /wallet/sub_account_transfers
POST /wallet/sub_account_transfers
GET /wallet/total_balance
GET /wallet/transfers
POST /wallet/transfers
GET /wallet/withdraw_status
GET /wallet/withdrawals
POST /withdrawals
POST /withdrawals/push
DELETE /withdrawals/{withdrawal_id}

"""


def _template(line: str) -> Template:
    method, path = line.split(" ", 1)
    path = PREFIX + path
    segments = tuple(None if _PARAM.fullmatch(s) else s for s in path.split("/"))
    return Template(method, path, segments)


def _specificity(t: Template) -> tuple[bool, ...]:
    # Where two templates name one path (``/orders/{order_id}`` and ``/orders/timerange``),
    # the one with a literal segment earlier wins, as in Gate's router.
    return tuple(s is not None for s in t.segments)


TEMPLATES: tuple[Template, ...] = tuple(_template(line) for line in _CATALOGUE.strip().splitlines())
BY_NAME: dict[str, Template] = {t.name: t for t in TEMPLATES}
_BY_SHAPE: dict[tuple[str, int], list[Template]] = {}
for _t in sorted(TEMPLATES, key=_specificity, reverse=True):
    _BY_SHAPE.setdefault((_t.method, len(_t.segments)), []).append(_t)


def template_for(method: str, path: str) -> Template | None:
    """The catalogued endpoint ``method path`` calls (None: Gate publishes no such endpoint).
    Cached: paths come from bots, but the cache is bounded, in entries and in path length (a
    head may be 32 KiB long)."""
    if len(path) <= PATH_MAX:
        return _template_for_kept(method, path)
    return _find_template(method, path)


def _find_template(method: str, path: str) -> Template | None:
    for template in _BY_SHAPE.get((method, path.count("/") + 1), ()):
        if template.params(path) is not None:
            return template
    return None


_template_for_kept = lru_cache(maxsize=SIZE)(_find_template)


def template_path(method: str, path: str) -> str | None:
    """``template_for``'s path, e.g. ``/api/v4/options/orders/{order_id}``."""
    template = template_for(method, path)
    return None if template is None else template.path
