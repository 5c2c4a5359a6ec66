"""The policy engine: deny wins, locked endpoints stay locked, spot-only reads the account."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sidecar.config import KeyConfig, parse_config
from sidecar.errors import ConfigError
from sidecar.gate.paths import split_target
from sidecar.policy.describe import describe
from sidecar.policy.engine import Decision, Policy
from sidecar.policy.origin import Origin, OriginKind


def policy_for(policy: Any, **extra: Any) -> Policy:
    key = KeyConfig.model_validate(
        {"name": "bot", "listen": "127.0.0.1:0", "source": {"env": {}}, "policy": policy, **extra}
    )
    return key.compile_policy()


def decide(policy: Policy, target: str, body: Any = None) -> Decision:
    method, raw = target.split(" ", 1)
    path, query = split_target(raw)
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    return policy.decide(method, path, query, data)


def rule(methods: str, path: str) -> dict[str, Any]:
    return {"methods": methods.split(","), "path": path}


FUTURES_NO_LEVERAGE = {
    "presets": ["futures-only"],
    "deny": [rule("*", "/api/v4/futures/*/positions/*/leverage")],
}
NO_DUAL_MODE = {
    "presets": ["futures-only"],
    "deny": [rule("POST", "/api/v4/futures/usdt/dual_mode")],
}
WITHDRAW_RULE = {"presets": ["full-trading"], "allow": [rule("POST", "/api/v4/withdrawals")]}

# (why, policy, extra key fields, request, body, allowed, the deciding rule)
# fmt: off
CASES: list[tuple[str, Any, dict[str, Any], str, Any, bool, str]] = [
    # presets and the default
    ("a read is allowed by read-only", "read-only", {}, "GET /api/v4/spot/accounts", None, True,
     "preset read-only: GET /api/v4/**"),
    ("the method's letter case does not matter", "read-only", {}, "get /api/v4/spot/time", None,
     True, "preset read-only: GET /api/v4/**"),
    ("a write is refused by read-only", "read-only", {}, "POST /api/v4/spot/orders", {}, False,
     "no rule allows it"),
    ("a method Gate never uses is refused even by full-trading", "full-trading", {},
     "PROPFIND /api/v4/spot/time", None, False, "unknown method"),
    ("presets combine as a union", {"presets": ["spot-only", "futures-only"]}, {},
     "POST /api/v4/futures/usdt/orders", {}, True, "preset futures-only: * /api/v4/futures/**"),
    # deny wins
    ("deny wins over a preset", FUTURES_NO_LEVERAGE, {},
     "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=100", None, False,
     "deny[0]: * /api/v4/futures/*/positions/*/leverage"),
    ("a deny rule leaves the rest of the preset alone", FUTURES_NO_LEVERAGE, {},
     "POST /api/v4/futures/usdt/orders", {}, True, "preset futures-only: * /api/v4/futures/**"),
    ("deny wins over an explicit allow rule",
     {"allow": [rule("GET", "/api/v4/wallet/**")],
      "deny": [rule("GET", "/api/v4/wallet/deposit_address")]}, {},
     "GET /api/v4/wallet/deposit_address?currency=BTC", None, False,
     "deny[0]: GET /api/v4/wallet/deposit_address"),
    ("a deny rule catches another letter case", NO_DUAL_MODE, {},
     "POST /api/v4/futures/usdt/Dual_Mode", None, False,
     "deny[0]: POST /api/v4/futures/usdt/dual_mode"),
    ("a deny rule catches a trailing dot", NO_DUAL_MODE, {},
     "POST /api/v4/futures/usdt/dual_mode.", None, False,
     "deny[0]: POST /api/v4/futures/usdt/dual_mode"),
    ("a deny rule with * methods denies every method", FUTURES_NO_LEVERAGE, {},
     "GET /api/v4/futures/usdt/positions/BTC_USDT/leverage", None, False,
     "deny[0]: * /api/v4/futures/*/positions/*/leverage"),
    # locked endpoints under full-trading
    ("a withdrawal is locked under full-trading", "full-trading", {},
     "POST /api/v4/withdrawals", {"currency": "USDT"}, False,
     "locked: withdrawals (moves funds out)"),
    ("a UID push is locked under full-trading", "full-trading", {},
     "POST /api/v4/withdrawals/push", {"receive_uid": 1}, False,
     "locked: UID transfer (moves funds to another user)"),
    ("cancelling a withdrawal is locked", "full-trading", {}, "DELETE /api/v4/withdrawals/123",
     None, False, "locked: withdrawals (moves funds out)"),
    ("sub-account key creation is locked", "full-trading", {},
     "POST /api/v4/sub_accounts/10001/keys", {"name": "k"}, False,
     "locked: sub-accounts and their keys (privilege escalation)"),
    ("creating a sub-account is locked", "full-trading", {}, "POST /api/v4/sub_accounts",
     {"login_name": "x"}, False, "locked: sub-accounts and their keys (privilege escalation)"),
    ("unlocking a sub-account is locked", "full-trading", {},
     "POST /api/v4/sub_accounts/10001/unlock", None, False,
     "locked: sub-accounts and their keys (privilege escalation)"),
    ("a transfer to a sub-account is locked", "full-trading", {},
     "POST /api/v4/wallet/sub_account_transfers", {}, False,
     "locked: sub-account transfers (moves funds to another user)"),
    ("an upper-case withdrawal is still locked", "full-trading", {},
     "POST /api/v4/WITHDRAWALS", {}, False, "locked: withdrawals (moves funds out)"),
    ("a trailing-dot withdrawal is still locked", "full-trading", {},
     "POST /api/v4/withdrawals.", {}, False, "locked: withdrawals (moves funds out)"),
    ("a mixed-case key creation is still locked", "full-trading", {},
     "PUT /api/v4/Sub_Accounts/1/Keys/abc", {}, False,
     "locked: sub-accounts and their keys (privilege escalation)"),
    ("an odd method on a locked path is locked", "full-trading", {},
     "OPTIONS /api/v4/withdrawals", None, False, "locked: withdrawals (moves funds out)"),
    ("reading withdrawal records is not locked", "full-trading", {},
     "GET /api/v4/wallet/withdrawals", None, True, "preset full-trading: * /api/v4/**"),
    ("a transfer between own accounts is not locked", "full-trading", {},
     "POST /api/v4/wallet/transfers", {"from": "spot", "to": "futures"}, True,
     "preset full-trading: * /api/v4/**"),
    ("a transfer between own accounts is in no narrower preset", "spot-only", {},
     "POST /api/v4/wallet/transfers", {"from": "spot", "to": "futures"}, False,
     "no rule allows it"),
    ("a transfer between own accounts opens with an explicit rule",
     {"presets": ["spot-only"], "allow": [rule("POST", "/api/v4/wallet/transfers")]}, {},
     "POST /api/v4/wallet/transfers", {"from": "spot", "to": "futures"}, True,
     "allow[0]: POST /api/v4/wallet/transfers"),
    # unlocking
    ("allow_withdrawals plus an explicit rule opens withdrawals", WITHDRAW_RULE,
     {"allow_withdrawals": True}, "POST /api/v4/withdrawals", {}, True,
     "allow[0]: POST /api/v4/withdrawals"),
    ("the explicit rule opens only what it names: not the UID push", WITHDRAW_RULE,
     {"allow_withdrawals": True}, "POST /api/v4/withdrawals/push", {}, False,
     "locked: UID transfer (moves funds to another user)"),
    ("the explicit rule opens only what it names: not the cancel", WITHDRAW_RULE,
     {"allow_withdrawals": True}, "DELETE /api/v4/withdrawals/1", None, False,
     "locked: withdrawals (moves funds out)"),
    ("an explicit rule alone does not open withdrawals", WITHDRAW_RULE, {},
     "POST /api/v4/withdrawals", {}, False, "locked: withdrawals (moves funds out)"),
    ("allow_withdrawals alone does not open withdrawals", "full-trading",
     {"allow_withdrawals": True}, "POST /api/v4/withdrawals", {}, False,
     "locked: withdrawals (moves funds out)"),
    ("a ** rule can never open withdrawals", {"allow": [rule("*", "/api/v4/**")]},
     {"allow_withdrawals": True}, "POST /api/v4/withdrawals", {}, False,
     "locked: withdrawals (moves funds out)"),
    ("a ** rule under withdrawals can never open them",
     {"allow": [rule("POST", "/api/v4/withdrawals/**")]}, {"allow_withdrawals": True},
     "POST /api/v4/withdrawals/push", {}, False,
     "locked: UID transfer (moves funds to another user)"),
    ("a rule with a wildcard product can never open withdrawals",
     {"allow": [rule("POST", "/api/v4/*")]}, {"allow_withdrawals": True},
     "POST /api/v4/withdrawals", {}, False, "locked: withdrawals (moves funds out)"),
    ("an explicit * segment opens what it names",
     {"allow": [rule("POST", "/api/v4/withdrawals/*")]}, {"allow_withdrawals": True},
     "POST /api/v4/withdrawals/push", {}, True, "allow[0]: POST /api/v4/withdrawals/*"),
    ("an explicit rule opens sub-account key creation",
     {"allow": [rule("POST", "/api/v4/sub_accounts/*/keys")]}, {"allow_withdrawals": True},
     "POST /api/v4/sub_accounts/10001/keys", {}, True,
     "allow[0]: POST /api/v4/sub_accounts/*/keys"),
    ("deny still wins over an opened withdrawal",
     {**WITHDRAW_RULE, "deny": [rule("POST", "/api/v4/withdrawals")]},
     {"allow_withdrawals": True}, "POST /api/v4/withdrawals", {}, False,
     "deny[0]: POST /api/v4/withdrawals"),
    ("the opening rule must match the exact spelling", WITHDRAW_RULE,
     {"allow_withdrawals": True}, "POST /api/v4/Withdrawals", {}, False,
     "locked: withdrawals (moves funds out)"),
]
# fmt: on


@pytest.mark.parametrize(
    ("why", "policy", "extra", "target", "body", "allowed", "decided_by"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_a_request_is_decided_by_the_expected_rule(
    why: str,
    policy: Any,
    extra: dict[str, Any],
    target: str,
    body: Any,
    allowed: bool,
    decided_by: str,
) -> None:
    decision = decide(policy_for(policy, **extra), target, body)
    assert (decision.allowed, decision.rule) == (allowed, decided_by)
    assert decision.rule.startswith(str(decision.origin))  # the label and the origin agree


ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "1"}
SPOT_ONLY = policy_for("spot-only")

# (why, request, body, allowed, the refusal reason must contain)
# fmt: off
SPOT_CASES: list[tuple[str, str, Any, bool, str]] = [
    ("an order without account", "POST /api/v4/spot/orders", ORDER, True, ""),
    ("an order with account spot", "POST /api/v4/spot/orders", {**ORDER, "account": "spot"},
     True, ""),
    ("an isolated margin order", "POST /api/v4/spot/orders", {**ORDER, "account": "margin"},
     False, "body account 'margin'"),
    ("a unified order", "POST /api/v4/spot/orders", {**ORDER, "account": "unified"}, False,
     "body account 'unified'"),
    ("a cross margin order", "POST /api/v4/spot/orders",
     {**ORDER, "account": "cross_margin"}, False, "body account 'cross_margin'"),
    ("an order whose account key is capitalised", "POST /api/v4/spot/orders",
     {**ORDER, "Account": "margin"}, False, "body account 'margin'"),
    ("an order whose account is upper-case SPOT", "POST /api/v4/spot/orders",
     {**ORDER, "account": "SPOT"}, False, "body account 'SPOT'"),
    ("an order whose account is null", "POST /api/v4/spot/orders", {**ORDER, "account": None},
     False, "body account None"),
    ("an order whose account is a list", "POST /api/v4/spot/orders",
     {**ORDER, "account": ["spot"]}, False, "body account ['spot']"),
    ("a batch of spot orders", "POST /api/v4/spot/batch_orders",
     [ORDER, {**ORDER, "account": "spot"}], True, ""),
    ("a batch hiding one margin order", "POST /api/v4/spot/batch_orders",
     [ORDER, {**ORDER, "account": "spot"}, {**ORDER, "account": "margin"}], False,
     "body account 'margin'"),
    ("a batch hiding one unified order", "POST /api/v4/spot/batch_orders",
     [{**ORDER, "account": "unified"}], False, "body account 'unified'"),
    ("a batch cancel of cross margin orders", "POST /api/v4/spot/cancel_batch_orders",
     [{"currency_pair": "BTC_USDT", "id": "1", "account": "cross_margin"}], False,
     "body account 'cross_margin'"),
    ("an empty batch", "POST /api/v4/spot/batch_orders", [], True, ""),
    ("a cancel-all with account=spot",
     "DELETE /api/v4/spot/orders?currency_pair=BTC_USDT&account=spot", None, True, ""),
    ("a cancel-all without account", "DELETE /api/v4/spot/orders?currency_pair=BTC_USDT", None,
     True, ""),
    ("a cancel-all for margin",
     "DELETE /api/v4/spot/orders?currency_pair=BTC_USDT&account=margin", None, False,
     "query account='margin'"),
    ("a cancel for unified",
     "DELETE /api/v4/spot/orders/1?currency_pair=BTC_USDT&account=unified", None, False,
     "query account='unified'"),
    ("a cancel with a cross_margin query", "DELETE /api/v4/spot/orders/1?account=cross_margin",
     None, False, "query account='cross_margin'"),
    ("a query that repeats account", "DELETE /api/v4/spot/orders?account=spot&account=margin",
     None, False, "query account='margin'"),
    ("a query with an upper-case name", "DELETE /api/v4/spot/orders?ACCOUNT=margin", None, False,
     "query account='margin'"),
    ("a query with an encoded name", "DELETE /api/v4/spot/orders?acc%6Funt=margin", None, False,
     "query account='margin'"),
    ("a query with an empty account", "DELETE /api/v4/spot/orders?account=", None, False,
     "query account=''"),
    ("a query with an encoded spot", "DELETE /api/v4/spot/orders?account=%73pot", None, True, ""),
    ("a query account contradicting a spot body", "POST /api/v4/spot/orders?account=margin",
     {**ORDER, "account": "spot"}, False, "query account='margin'"),
    ("an amend of a margin order", "PATCH /api/v4/spot/orders/1",
     {"amount": "2", "account": "margin"}, False, "body account 'margin'"),
    ("a spot price order", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "put": {"side": "buy", "account": "normal"}}, True, ""),
    ("a price order without put.account", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "put": {"side": "buy"}}, True, ""),
    ("a margin price order", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "put": {"side": "buy", "account": "margin"}}, False,
     "put.account 'margin'"),
    ("a unified price order with a capitalised key", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "Put": {"ACCOUNT": "unified"}}, False, "put.account 'unified'"),
    ("a price order cancel-all for spot", "DELETE /api/v4/spot/price_orders?account=normal",
     None, True, ""),
    ("a price order cancel-all for unified", "DELETE /api/v4/spot/price_orders?account=unified",
     None, False, "query account='unified'"),
    ("a body that is not JSON", "POST /api/v4/spot/orders", b"account=spot", False,
     "not valid UTF-8 JSON"),
    ("a body that is not UTF-8", "POST /api/v4/spot/orders", b'{"account":"\xff"}', False,
     "not valid UTF-8 JSON"),
    ("a body with a byte-order mark", "POST /api/v4/spot/orders", b'\xef\xbb\xbf{"a":1}', False,
     "not valid UTF-8 JSON"),
    ("a body nested too deep to parse", "POST /api/v4/spot/orders", b"[" * 100_000, False,
     "not valid UTF-8 JSON"),
    ("a body that repeats account", "POST /api/v4/spot/orders",
     b'{"account":"margin","account":"spot"}', False, "repeats a key"),
    ("an empty body", "POST /api/v4/spot/countdown_cancel_all", b"", True, ""),
    ("a whitespace body", "POST /api/v4/spot/countdown_cancel_all", b" \n", True, ""),
    ("a JSON null body", "POST /api/v4/spot/orders", b"null", True, ""),
    # Shapes the check cannot read for certain are refused, not let through (issue 13, gap 3).
    ("a query hiding account behind a semicolon",
     "DELETE /api/v4/spot/orders?x=1;account=margin", None, False, "';'"),
    ("a query with account[]", "DELETE /api/v4/spot/orders?account[]=margin", None, False,
     "'account[]' cannot be read"),
    ("a query name with an encoded NUL", "DELETE /api/v4/spot/orders?account%00=margin", None,
     False, "cannot be read"),
    ("a body key with a NUL", "POST /api/v4/spot/orders", {**ORDER, "account\u0000": "margin"},
     False, "cannot be read"),
    ("a body key with a bracket", "POST /api/v4/spot/orders", {**ORDER, "account[0]": "margin"},
     False, "cannot be read"),
    ("a batch nested in a list", "POST /api/v4/spot/batch_orders",
     [[{**ORDER, "account": "margin"}]], False, "not a JSON object"),
    ("an orders wrapper", "POST /api/v4/spot/batch_orders",
     {"orders": [{**ORDER, "account": "margin"}]}, False, "'orders' holds a nested"),
    ("put as a list", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "put": [{"account": "margin"}]}, False, "put is not a JSON object"),
    ("a nested object inside put", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "put": {"side": "buy", "x": {"account": "margin"}}}, False,
     "'x' holds a nested"),
    ("a spot price order with a trigger", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "trigger": {"price": "1", "rule": ">="},
      "put": {"side": "buy", "account": "normal"}}, True, ""),
    ("a body that is a bare string", "POST /api/v4/spot/orders", b'"account=margin"', False,
     "not a JSON object"),
    ("auto_borrow without account", "POST /api/v4/spot/orders", {**ORDER, "auto_borrow": True},
     False, "auto_borrow needs an explicit account 'spot'"),
    ("auto_borrow with account spot", "POST /api/v4/spot/orders",
     {**ORDER, "auto_borrow": True, "account": "spot"}, True, ""),
    ("auto_borrow false without account", "POST /api/v4/spot/orders",
     {**ORDER, "auto_borrow": False}, True, ""),
    ("a price order whose put borrows without account", "POST /api/v4/spot/price_orders",
     {"market": "BTC_USDT", "put": {"side": "buy", "auto_borrow": True}}, False,
     "put.auto_borrow needs an explicit put.account 'normal'"),
]
# fmt: on


@pytest.mark.parametrize(
    ("why", "target", "body", "allowed", "reason"), SPOT_CASES, ids=[c[0] for c in SPOT_CASES]
)
def test_spot_only_lets_through_only_spot_account_orders(
    why: str, target: str, body: Any, allowed: bool, reason: str
) -> None:
    decision = decide(SPOT_ONLY, target, body)
    assert decision.allowed == allowed
    assert reason in decision.reason
    assert decision.rule.startswith("preset spot-only: ")


def test_an_explicit_rule_without_condition_widens_a_conditioned_preset_rule() -> None:
    policy = policy_for({"presets": ["spot-only"], "allow": [rule("POST", "/api/v4/spot/orders")]})
    decision = decide(policy, "POST /api/v4/spot/orders", {**ORDER, "account": "margin"})
    assert decision == Decision(
        True, "allow[0]: POST /api/v4/spot/orders", "allowed", Origin(OriginKind.ALLOW, index=0)
    )


def test_a_refusal_names_the_lock_and_how_to_open_it() -> None:
    closed = decide(policy_for(WITHDRAW_RULE), "POST /api/v4/withdrawals", {})
    assert closed.reason == "locked: moves funds out; set allow_withdrawals: true to open it"
    preset_only = decide(policy_for("full-trading"), "POST /api/v4/withdrawals", {})
    assert "allow_withdrawals: true and an explicit allow rule" in preset_only.reason


def test_a_body_is_parsed_only_when_a_matching_rule_has_a_condition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = json.loads

    def counting(text: str, **kwargs: Any) -> Any:
        calls.append(text)
        return real(text, **kwargs)

    monkeypatch.setattr(json, "loads", counting)  # the json module the conditions parse with
    full = policy_for("full-trading")
    assert decide(full, "POST /api/v4/spot/orders", b"not json at all").allowed
    assert decide(SPOT_ONLY, "GET /api/v4/spot/orders", b"not json").allowed
    assert not decide(SPOT_ONLY, "POST /api/v4/futures/usdt/orders", b"not json").allowed
    assert calls == []
    assert not decide(SPOT_ONLY, "POST /api/v4/spot/orders", b'{"account":"margin"}').allowed
    assert len(calls) == 1


def test_deciding_never_compiles_a_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = policy_for(
        {"presets": ["spot-only", "futures-only"], "deny": [rule("*", "/api/v4/futures/btc/**")]}
    )

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("re.compile on the hot path")

    monkeypatch.setattr(re, "compile", refuse)
    for target in (
        "GET /api/v4/spot/time",
        "POST /api/v4/withdrawals",
        "DELETE /api/v4/futures/btc/orders",
        "PATCH /api/v4/spot/orders/1",
    ):
        decide(policy, target, ORDER)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/api/v4/futures/a**b", "** must be a whole segment"),
        ("/api/v4/spot/../withdrawals", "dot segments"),
        ("/api/v4/spot/%2e%2e", "holds a character"),
        ("/api/v4/spot/{id}", "holds a character"),
    ],
)
def test_a_rule_glob_that_can_never_work_is_a_config_error(path: str, problem: str) -> None:
    key = {
        "name": "bot",
        "listen": "127.0.0.1:0",
        "source": {"env": {}},
        "policy": {"allow": [rule("GET", path)]},
    }
    with pytest.raises(ConfigError) as info:
        parse_config({"keys": [key]}, environ={})
    assert problem in str(info.value)
    assert info.value.problems[0].startswith("keys[0].policy.allow[0].path: ")


def test_describe_lists_allowed_denied_and_locked_rules_with_their_origin() -> None:
    policy = policy_for(
        {
            "presets": ["spot-only"],
            "allow": [rule("POST", "/api/v4/withdrawals")],
            "deny": [rule("DELETE", "/api/v4/spot/orders")],
        },
        allow_withdrawals=True,
    )
    described = describe(policy)
    assert described.name == "bot"
    assert described.allow_withdrawals
    assert described.allow[0].origin == "preset spot-only"
    assert (described.allow[1].methods, described.allow[1].condition) == (
        "POST",
        "spot account only",
    )
    assert described.allow[-1].origin == "allow[0]"
    assert [(d.methods, d.path, d.origin) for d in described.deny] == [
        ("DELETE", "/api/v4/spot/orders", "deny[0]")
    ]
    opened = {lock.path: lock.opened_by for lock in described.locked}
    assert opened["/api/v4/withdrawals/**"] == ("allow[0]",)
    assert opened["/api/v4/withdrawals/push"] == ()
    assert opened["/api/v4/sub_accounts/**"] == ()


def test_describe_shows_every_lock_closed_without_allow_withdrawals() -> None:
    described = describe(policy_for(WITHDRAW_RULE))
    assert all(lock.opened_by == () for lock in described.locked)
    assert described.deny == ()
