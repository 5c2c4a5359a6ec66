"""Every preset against one shared endpoint map, and the docs generated from the presets.

Adding a preset changes ``PRESET_NAMES``; ``COLUMNS`` below then no longer matches and every row
of ``ENDPOINTS`` needs a new column: a decision for every endpoint, made on purpose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gate_api
import pytest

from sidecar.config import KeyConfig
from sidecar.gate.paths import check_path, split_target
from sidecar.policy.engine import Policy
from sidecar.policy.origin import Origin, OriginKind
from sidecar.policy.presets import (
    LOCKED,
    PRESET_NAMES,
    PRESETS,
    SPOT_WRITES,
    locked_markdown,
    preset_markdown,
    preset_table,
)

ROOT = Path(__file__).resolve().parent.parent

COLUMNS = (
    "read-only",  # ro
    "spot-only",  # so
    "spot-read-only",  # sro
    "futures-only",  # fo
    "futures-read-only",  # fro
    "delivery-only",  # do
    "options-only",  # oo
    "full-trading",  # ft
)

SPOT = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "60000"}
TRIGGER = {"price": "60000", "rule": ">=", "expiration": 3600}
FUT = {"contract": "BTC_USDT", "size": 1, "price": "60000", "tif": "gtc"}


def _put(account: str) -> dict[str, Any]:
    put = {"type": "limit", "side": "buy", "price": "1", "amount": "1", "account": account}
    return {"trigger": TRIGGER, "put": put, "market": "BTC_USDT"}


# (expected per preset, in COLUMNS order: A = allowed, - = refused; request; JSON body or None)
# fmt: off
ENDPOINTS: list[tuple[str, str, Any]] = [
    # spot reads
    ("A A A - - - - A", "GET /api/v4/spot/time", None),
    ("A A A - - - - A", "GET /api/v4/spot/accounts", None),
    ("A A A - - - - A", "GET /api/v4/spot/orders?currency_pair=BTC_USDT&status=open", None),
    ("A A A - - - - A", "GET /api/v4/spot/price_orders?status=open", None),
    ("- - - - - - - A", "HEAD /api/v4/spot/time", None),
    # spot writes: the account decides whether it is a spot order at all
    ("- A - - - - - A", "POST /api/v4/spot/orders", SPOT),
    ("- A - - - - - A", "POST /api/v4/spot/orders", {**SPOT, "account": "spot"}),
    ("- - - - - - - A", "POST /api/v4/spot/orders", {**SPOT, "account": "margin"}),
    ("- - - - - - - A", "POST /api/v4/spot/orders", {**SPOT, "account": "cross_margin"}),
    ("- - - - - - - A", "POST /api/v4/spot/orders", {**SPOT, "account": "unified"}),
    ("- - - - - - - A", "POST /api/v4/spot/orders?account=margin", SPOT),
    ("- A - - - - - A", "POST /api/v4/spot/batch_orders", [SPOT, {**SPOT, "account": "spot"}]),
    ("- - - - - - - A", "POST /api/v4/spot/batch_orders", [SPOT, {**SPOT, "account": "unified"}]),
    ("- A - - - - - A", "DELETE /api/v4/spot/orders?currency_pair=BTC_USDT&account=spot", None),
    ("- - - - - - - A", "DELETE /api/v4/spot/orders?currency_pair=BTC_USDT&account=margin", None),
    ("- A - - - - - A", "DELETE /api/v4/spot/orders/123?currency_pair=BTC_USDT", None),
    ("- A - - - - - A", "PATCH /api/v4/spot/orders/123",
     {"currency_pair": "BTC_USDT", "amount": "2"}),
    ("- - - - - - - A", "PATCH /api/v4/spot/orders/123", {"amount": "2", "account": "margin"}),
    ("- A - - - - - A", "POST /api/v4/spot/cancel_batch_orders",
     [{"currency_pair": "BTC_USDT", "id": "1", "account": "spot"}]),
    ("- - - - - - - A", "POST /api/v4/spot/amend_batch_orders",
     [{"order_id": "1", "currency_pair": "BTC_USDT", "amount": "2", "account": "unified"}]),
    ("- A - - - - - A", "POST /api/v4/spot/countdown_cancel_all", {"timeout": 30}),
    ("- A - - - - - A", "POST /api/v4/spot/price_orders", _put("normal")),
    ("- - - - - - - A", "POST /api/v4/spot/price_orders", _put("margin")),
    ("- A - - - - - A", "DELETE /api/v4/spot/price_orders?market=BTC_USDT&account=normal", None),
    ("- - - - - - - A", "DELETE /api/v4/spot/price_orders?market=BTC_USDT&account=unified", None),
    ("- A - - - - - A", "DELETE /api/v4/spot/price_orders/456", None),
    ("- A - - - - - A", "POST /api/v4/spot/pov_orders", {**SPOT, "participation_rate": 10}),
    ("- A - - - - - A", "DELETE /api/v4/spot/pov_orders/789", None),
    ("- - - - - - - A", "POST /api/v4/spot/cross_liquidate_orders", SPOT),
    # margin and unified
    ("A - - - - - - A", "GET /api/v4/margin/accounts", None),
    ("- - - - - - - A", "POST /api/v4/margin/uni/loans", {"currency": "USDT", "type": "borrow"}),
    ("A - - - - - - A", "GET /api/v4/unified/accounts", None),
    ("- - - - - - - A", "POST /api/v4/unified/loans", {"currency": "USDT", "type": "borrow"}),
    ("- - - - - - - A", "PUT /api/v4/unified/unified_mode", {"mode": "classic"}),
    # perpetual futures
    ("A - - A A - - A", "GET /api/v4/futures/usdt/contracts", None),
    ("A - - A A - - A", "GET /api/v4/futures/usdt/accounts", None),
    ("- - - A - - - A", "POST /api/v4/futures/usdt/orders", FUT),
    ("- - - A - - - A", "PUT /api/v4/futures/usdt/orders/123", {"size": 2}),
    ("- - - A - - - A", "DELETE /api/v4/futures/btc/orders?contract=BTC_USD", None),
    ("- - - A - - - A", "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=10", None),
    ("- - - A - - - A", "POST /api/v4/futures/usdt/dual_mode?dual_mode=true", None),
    # delivery and options
    ("A - - - - A - A", "GET /api/v4/delivery/usdt/contracts", None),
    ("- - - - - A - A", "POST /api/v4/delivery/usdt/orders", FUT),
    ("A - - - - - A A", "GET /api/v4/options/underlyings", None),
    ("- - - - - - A A", "POST /api/v4/options/orders",
     {"contract": "BTC_USDT-20240628-60000-C", "size": 1}),
    ("- - - - - - A A", "DELETE /api/v4/options/orders/1", None),
    # wallet and account: reads, and moves between the user's own accounts
    ("A - - - - - - A", "GET /api/v4/wallet/total_balance", None),
    ("A - - - - - - A", "GET /api/v4/wallet/withdrawals", None),
    ("A - - - - - - A", "GET /api/v4/wallet/sub_account_transfers", None),
    ("- - - - - - - A", "POST /api/v4/wallet/transfers",
     {"currency": "USDT", "from": "spot", "to": "futures", "amount": "1"}),
    ("- - - - - - - A", "POST /api/v4/wallet/small_balance", {"currency": ["FLOKI"]}),
    ("A - - - - - - A", "GET /api/v4/account/detail", None),
    ("A - - - - - - A", "GET /api/v4/account/main_keys", None),
    ("- - - - - - - A", "POST /api/v4/account/stp_groups", {"name": "g"}),
    # locked: funds out, funds to other users, privilege escalation
    ("- - - - - - - -", "POST /api/v4/withdrawals",
     {"currency": "USDT", "address": "x", "amount": "1"}),
    ("- - - - - - - -", "POST /api/v4/withdrawals/push",
     {"receive_uid": 1, "currency": "USDT", "amount": "1"}),
    ("- - - - - - - -", "DELETE /api/v4/withdrawals/123", None),
    ("- - - - - - - -", "POST /api/v4/wallet/sub_account_transfers",
     {"sub_account": "1", "amount": "1"}),
    ("- - - - - - - -", "POST /api/v4/wallet/sub_account_to_sub_account", {"amount": "1"}),
    ("- - - - - - - -", "POST /api/v4/crossex/transfers", {"coin": "USDT", "amount": "1"}),
    ("A - - - - - - A", "GET /api/v4/crossex/transfers", None),
    ("- - - - - - - -", "POST /api/v4/tradfi/transactions", {"asset": "USDT", "change": "1"}),
    ("- - - - - - - -", "POST /api/v4/stock/transactions", {"asset": "USDT", "change": "1"}),
    ("- - - - - - - -", "POST /api/v4/otc/order/create", {"amount": "1"}),
    ("- - - - - - - -", "POST /api/v4/otc/bank/create", {"name": "x"}),
    ("- - - - - - - -", "POST /api/v4/p2p/merchant/transaction/confirm-receipt", {"txid": 1}),
    ("- - - - - - - -", "POST /api/v4/p2p/merchant/books/ads_list", {}),
    ("A - - - - - - A", "GET /api/v4/sub_accounts", None),
    ("A - - - - - - A", "GET /api/v4/sub_accounts/10001/keys", None),
    ("- - - - - - - -", "POST /api/v4/sub_accounts", {"login_name": "x"}),
    ("- - - - - - - -", "POST /api/v4/sub_accounts/10001/keys", {"name": "k", "perms": []}),
    ("- - - - - - - -", "PUT /api/v4/sub_accounts/10001/keys/abc", {"name": "k"}),
    ("- - - - - - - -", "DELETE /api/v4/sub_accounts/10001/keys/abc", None),
    ("- - - - - - - -", "POST /api/v4/sub_accounts/10001/lock", None),
    ("- - - - - - - -", "POST /api/v4/sub_accounts/10001/unlock", None),
    # the other product areas
    ("- - - - - - - A", "POST /api/v4/earn/uni/lends", {"currency": "USDT", "type": "lend"}),
    ("- - - - - - - A", "POST /api/v4/flash_swap/orders", {"sell_currency": "BTC"}),
    ("- - - - - - - A", "POST /api/v4/loan/multi_collateral/orders", {"borrow_currency": "USDT"}),
    ("- - - - - - - A", "POST /api/v4/alpha/orders", {"currency": "X"}),
    ("- - - - - - - A", "POST /api/v4/crossex/orders", {"symbol": "X"}),
    ("- - - - - - - A", "POST /api/v4/tradfi/orders", {"symbol": "X"}),
    ("- - - - - - - A", "POST /api/v4/stock/orders", {"symbol": "X"}),
    ("- - - - - - - A", "POST /api/v4/bot/spot-grid/create", {"market": "BTC_USDT"}),
    ("- - - - - - - A", "POST /api/v4/asset-swap/order/create", {}),
    ("A - - - - - - A", "GET /api/v4/rebate/agency/transaction_history", None),
    ("- - - - - - - A", "POST /api/v4/rewards/claimReward", {}),
]
# fmt: on


def policy_for(policy: Any, **extra: Any) -> Policy:
    key = KeyConfig.model_validate(
        {"name": "bot", "listen": "127.0.0.1:0", "source": {"env": {}}, "policy": policy, **extra}
    )
    return key.compile_policy()


POLICIES = {name: policy_for(name) for name in PRESET_NAMES}


def test_the_endpoint_map_has_a_column_for_every_preset_in_order() -> None:
    assert COLUMNS == PRESET_NAMES
    for expected, target, _body in ENDPOINTS:
        assert len(expected.split()) == len(COLUMNS), target
        assert set(expected.split()) <= {"A", "-"}, target


@pytest.mark.parametrize(
    ("expected", "target", "body"),
    ENDPOINTS,
    ids=[f"{t} {i}" for i, (_, t, _) in enumerate(ENDPOINTS)],
)
def test_every_preset_decides_every_endpoint_as_the_map_says(
    expected: str, target: str, body: Any
) -> None:
    method, raw = target.split(" ", 1)
    path, query = split_target(raw)
    check_path(path)  # the map holds canonical paths only
    data = b"" if body is None else json.dumps(body).encode()
    got = {
        name: "A" if POLICIES[name].decide(method, path, query, data).allowed else "-"
        for name in COLUMNS
    }
    want = dict(zip(COLUMNS, expected.split(), strict=True))
    assert got == want


EXPECTED_TABLES: dict[str, list[tuple[str, str, str]]] = {
    "read-only": [("GET", "/api/v4/**", "")],
    "spot-only": [
        ("GET", "/api/v4/spot/**", ""),
        ("POST", "/api/v4/spot/orders", "spot account only"),
        ("POST", "/api/v4/spot/batch_orders", "spot account only"),
        ("DELETE", "/api/v4/spot/orders", "spot account only"),
        ("DELETE", "/api/v4/spot/orders/*", "spot account only"),
        ("PATCH", "/api/v4/spot/orders/*", "spot account only"),
        ("POST", "/api/v4/spot/cancel_batch_orders", "spot account only"),
        ("POST", "/api/v4/spot/amend_batch_orders", "spot account only"),
        ("POST", "/api/v4/spot/countdown_cancel_all", "spot account only"),
        ("POST", "/api/v4/spot/price_orders", "spot account only (account=normal)"),
        ("DELETE", "/api/v4/spot/price_orders", "spot account only (account=normal)"),
        ("DELETE", "/api/v4/spot/price_orders/*", "spot account only (account=normal)"),
        ("POST", "/api/v4/spot/pov_orders", "spot account only"),
        ("DELETE", "/api/v4/spot/pov_orders", "spot account only"),
        ("DELETE", "/api/v4/spot/pov_orders/*", "spot account only"),
    ],
    "spot-read-only": [("GET", "/api/v4/spot/**", "")],
    "futures-only": [("*", "/api/v4/futures/**", "")],
    "futures-read-only": [("GET", "/api/v4/futures/**", "")],
    "delivery-only": [("*", "/api/v4/delivery/**", "")],
    "options-only": [("*", "/api/v4/options/**", "")],
    "full-trading": [("*", "/api/v4/**", "")],
}


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_each_preset_allows_exactly_its_documented_rules(name: str) -> None:
    assert preset_table(name) == EXPECTED_TABLES[name]


def test_every_preset_rule_names_its_preset_method_and_path() -> None:
    for name, rules in PRESETS.items():
        for rule in rules:
            assert rule.label == f"preset {name}: {rule.text}"
            assert rule.origin == Origin(OriginKind.PRESET, preset=name)


def test_every_locked_endpoint_has_one_of_the_three_reasons() -> None:
    reasons = {"moves funds out", "moves funds to another user", "privilege escalation"}
    assert {rule.reason for rule in LOCKED} == reasons
    for rule in LOCKED:
        assert rule.label == f"locked: {rule.origin.name} ({rule.reason})"
        assert rule.origin.kind is OriginKind.LOCKED
        assert "GET" not in rule.methods


# -- the official SDK's endpoint list -------------------------------------------------------


def _sdk_endpoints() -> list[tuple[str, str]]:
    api_dir = Path(gate_api.__file__).parent / "api"  # gate-api is pinned in the test extras
    found: set[tuple[str, str]] = set()
    for source in api_dir.glob("*_api.py"):
        for path, method in re.findall(
            r"call_api\(\s*'(/[^']*)',\s*'([A-Z]+)'", source.read_text()
        ):
            concrete = re.sub(r"\{settle\}", "usdt", path)
            found.add((method, "/api/v4" + re.sub(r"\{[a-z_]+\}", "X1", concrete)))
    assert len(found) > 300
    return sorted(found)


# Spot-path writes that are deliberately not part of spot-only.
NOT_SPOT_TRADING = {("POST", "/api/v4/spot/cross_liquidate_orders")}


def test_every_spot_write_of_the_official_sdk_is_decided_for_spot_only() -> None:
    spot_only = {(m, p) for m, p, _ in SPOT_WRITES}
    for method, path in _sdk_endpoints():
        if method == "GET" or not path.startswith("/api/v4/spot/"):
            continue
        template = re.sub(r"/X1$", "/*", path)
        assert (method, template) in spot_only | NOT_SPOT_TRADING, f"undecided: {method} {path}"


def test_read_only_allows_every_sdk_get_and_no_sdk_write() -> None:
    policy = POLICIES["read-only"]
    for method, path in _sdk_endpoints():
        assert policy.decide(method, path, "", b"").allowed == (method == "GET"), (method, path)


def test_full_trading_allows_every_sdk_endpoint_except_the_locked_ones() -> None:
    policy = POLICIES["full-trading"]
    locked_prefixes = (
        "/api/v4/withdrawals",
        "/api/v4/wallet/sub_account_",
        "/api/v4/crossex/transfers",
        "/api/v4/tradfi/transactions",
        "/api/v4/stock/transactions",
        "/api/v4/otc/",
        "/api/v4/p2p/",
        "/api/v4/sub_accounts",
    )
    for method, path in _sdk_endpoints():
        locked = method != "GET" and path.startswith(locked_prefixes)
        decision = policy.decide(method, path, "", b"")
        assert decision.allowed == (not locked), (method, path, decision)


# -- the policy page -----------------------------------------------------------------------


def _docs() -> list[Path]:
    return [ROOT / "docs" / "policy.md"]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_the_docs_show_each_preset_table_as_generated_from_the_data(name: str) -> None:
    for doc in _docs():
        assert preset_markdown(name) in doc.read_text(), f"{doc}: table for {name} is stale"


def test_the_docs_show_the_locked_table_as_generated_from_the_data() -> None:
    for doc in _docs():
        assert locked_markdown() in doc.read_text(), f"{doc}: the locked table is stale"
