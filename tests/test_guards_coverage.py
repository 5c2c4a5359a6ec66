"""The guards cover every operation that can open exposure or move funds: each operation of the
official SDK (gate-api), walked by introspection, is read by the guards' field table, refused
unread while a guard is set, or one of the few writes that can do neither (cancels, reads,
quotes, position modes). Pure: no sidecar runs here (tests/test_guards_fail_closed_e2e.py runs
one against a raw upstream)."""

from __future__ import annotations

import inspect
import re
from functools import cache
from typing import Any

import gate_api
import pytest
from pydantic import ValidationError

from sidecar.config.guards import GuardsConfig
from sidecar.gate.endpoints import BY_NAME, TEMPLATES, template_for, template_path
from sidecar.policy.conditions import Body
from sidecar.policy.guards import Guards, Verdict
from sidecar.policy.guards.shapes import Orders, find_endpoint
from sidecar.policy.guards.unread import HARMLESS, Unread, unread_write

_CALL = re.compile(r"def (\w+)_with_http_info\(.*?call_api\(\s*'([^']+)',\s*'(\w+)'", re.S)


@cache
def sdk_operations() -> list[tuple[str, str, str]]:
    """(SDK method name, HTTP method, /api/v4 path template) of every ``*Api`` operation."""
    found = []
    for name, cls in inspect.getmembers(gate_api, inspect.isclass):
        if name.endswith("Api"):
            # The source of the class's module (gate_api/api/<name>_api.py holds that class
            # alone): inspect.getsource(cls) would parse each file into a syntax tree to find
            # the class, 1.5 s per pytest worker, paid at collection.
            module = inspect.getmodule(cls)
            assert module is not None
            for match in _CALL.finditer(inspect.getsource(module)):
                found.append((match.group(1), match.group(3), "/api/v4" + match.group(2)))
    return sorted(found)


# Operations that create or amend an order, loan, swap or transfer (or open a position, lend,
# subscribe, convert, withdraw), by the SDK's own method names...
EXPOSURE = re.compile(
    r"order|loan|lend|borrow|repay|swap|convert|transfer|withdraw|collateral|mortgage|position"
    r"|invest|grid|martingale|stock|dual|transaction|small_balance|leverage|reward|debit"
)
# ...except these, which do neither: cancels, reads, quotes and previews, position modes.
NOT_EXPOSURE = re.compile(
    r"^(cancel|delete|stop|list|get|preview|quote|countdown)|_quote$|_mode$|calculate"
    r"|^p2p_merchant_transaction_(get|cancel)"
)


def exposure_operations() -> list[tuple[str, str, str]]:
    return [
        op
        for op in sdk_operations()
        if op[1] != "GET" and EXPOSURE.search(op[0]) and not NOT_EXPOSURE.search(op[0])
    ]


GUARDED = Guards(
    GuardsConfig.model_validate(dict(instruments=["BTC_USDT"], max_order_size=1, max_notional=100))
)


def concrete(template: str) -> str:
    return re.sub(r"\{settle\}", "usdt", re.sub(r"\{(?!settle)\w+\}", "BTC_USDT", template))


def judged(guards: Guards, method: str, path: str, body: bytes = b"{}") -> Any:
    call = guards.http_call(method, path, "", Body(body), template=template_path(method, path))
    return call, guards.decide(call)


def test_the_endpoint_catalogue_is_every_operation_of_the_official_sdk() -> None:
    sdk = {f"{method} {path}" for _, method, path in sdk_operations()}
    assert len(sdk) == len(sdk_operations()) > 450
    assert sdk == {t.name for t in TEMPLATES}


def test_a_concrete_path_names_its_template_with_literal_segments_winning() -> None:
    cases = [
        ("GET", "/options/orders/123", "/options/orders/{order_id}"),
        ("DELETE", "/delivery/usdt/orders/9", "/delivery/{settle}/orders/{order_id}"),
        ("GET", "/futures/usdt/orders_timerange", "/futures/{settle}/orders_timerange"),
        ("GET", "/sub_accounts/unified_mode", "/sub_accounts/unified_mode"),
        ("GET", "/sub_accounts/42", "/sub_accounts/{user_id}"),
        ("GET", "/no/such/endpoint", None),
        ("PATCH", "/options/orders/123", None),
    ]
    for method, path, template in cases:
        expected = None if template is None else "/api/v4" + template
        assert template_path(method, "/api/v4" + path) == expected, (method, path)


def test_every_harmless_write_is_a_catalogued_write() -> None:
    for name in HARMLESS:
        assert name in BY_NAME, name
        assert not name.startswith("GET "), name


@pytest.mark.parametrize(
    ("sdk_name", "method", "template"), exposure_operations(), ids=lambda v: str(v)
)
def test_each_sdk_operation_that_opens_exposure_is_read_or_refused_under_a_guard(
    sdk_name: str, method: str, template: str
) -> None:
    path = concrete(template)
    endpoint, _ = find_endpoint(method, path)
    read = endpoint is not None and endpoint.shape.orders is not Orders.UNKNOWN
    _call, decision = judged(GUARDED, method, path)
    if not read:
        assert decision.verdict is Verdict.UNREAD, (sdk_name, decision)
        assert f'add "{method} {template}" to guards.allow_unread' in decision.reason
    assert unread_write(method, template, frozenset()) is not Unread.HARMLESS or read, sdk_name


def test_the_walk_covers_the_operations_named_in_the_finding() -> None:
    names = {f"{m} {p}" for _, m, p in exposure_operations()}
    for name in (
        "POST /api/v4/flash_swap/orders",
        "POST /api/v4/crossex/orders",
        "PUT /api/v4/crossex/orders/{order_id}",
        "POST /api/v4/alpha/orders",
        "POST /api/v4/tradfi/orders",
        "POST /api/v4/earn/dual/orders",
        "POST /api/v4/loan/multi_collateral/orders",
        "POST /api/v4/margin/uni/loans",
        "POST /api/v4/unified/loans",
        "POST /api/v4/wallet/transfers",
        "POST /api/v4/withdrawals",
        "POST /api/v4/earn/uni/lends",
    ):
        assert name in names, name
    assert len(names) > 90


def test_every_write_of_the_sdk_is_read_refused_or_listed_harmless() -> None:
    outcomes: dict[str, int] = {"read": 0, "refused": 0, "harmless": 0}
    for _, method, template in sdk_operations():
        if method == "GET":
            continue
        path = concrete(template)
        endpoint, _ = find_endpoint(method, path)
        if endpoint is not None and endpoint.shape.orders is not Orders.UNKNOWN:
            outcomes["read"] += 1
            continue
        _call, decision = judged(GUARDED, method, path)
        if decision.verdict is Verdict.UNREAD:
            outcomes["refused"] += 1
        else:
            assert method == "DELETE" or f"{method} {template}" in HARMLESS, template
            outcomes["harmless"] += 1
    assert outcomes["read"] > 40 and outcomes["refused"] > 60 and outcomes["harmless"] > 30


def test_a_write_gate_does_not_publish_is_refused_and_cannot_be_opted_in() -> None:
    guards = Guards(GuardsConfig.model_validate(dict(max_notional=100)))
    _call, decision = judged(guards, "POST", "/api/v4/spot/orders_v2")
    assert decision.verdict is Verdict.UNREAD
    assert "is no endpoint Gate publishes" in decision.reason
    with pytest.raises(ValidationError, match="is not one of Gate's endpoints"):
        GuardsConfig.model_validate(
            dict(max_notional=100, allow_unread=["POST /api/v4/spot/orders_v2"])
        )


def test_reads_and_cancels_outside_the_table_pass_under_a_guard() -> None:
    for method, path in (
        ("GET", "/api/v4/wallet/total_balance"),
        ("GET", "/api/v4/flash_swap/orders"),
        ("DELETE", "/api/v4/crossex/orders/5"),
        ("POST", "/api/v4/flash_swap/orders/preview"),
        ("POST", "/api/v4/futures/usdt/dual_mode"),
    ):
        _call, decision = judged(GUARDED, method, path)
        assert decision.verdict is Verdict.PASS, (method, path, decision)


def test_without_any_guard_an_unread_write_passes() -> None:
    _call, decision = judged(Guards(GuardsConfig()), "POST", "/api/v4/flash_swap/orders")
    assert decision.verdict is Verdict.PASS


def test_an_opted_in_endpoint_passes_unread_and_a_settled_one_is_still_read_for_settle() -> None:
    guards = Guards(
        GuardsConfig.model_validate(
            {
                "settle": ["usdt"],
                "max_notional": 100,
                "allow_unread": [
                    "POST /api/v4/flash_swap/orders",
                    "POST /api/v4/futures/{settle}/autoorder/v1/trail/create",
                ],
            }
        )
    )
    assert judged(guards, "POST", "/api/v4/flash_swap/orders")[1].verdict is Verdict.PASS
    assert judged(guards, "POST", "/api/v4/crossex/orders")[1].verdict is Verdict.UNREAD
    trail = "/api/v4/futures/{}/autoorder/v1/trail/create"
    assert judged(guards, "POST", trail.format("usdt"))[1].verdict is Verdict.PASS
    decision = judged(guards, "POST", trail.format("btc"))[1]
    assert decision.verdict is Verdict.DENY and decision.guard == "settle"


# (case, method, path, body, verdict, guard, a part of the message)
MARGIN_LOANS = [
    ("a margin loan of a listed market passes", {"currency": "USDT", "type": "borrow",
     "amount": "10", "currency_pair": "BTC_USDT"}, Verdict.PASS, "", ""),
    ("a margin loan of another market is refused", {"currency": "USDT", "type": "borrow",
     "amount": "10", "currency_pair": "ETH_USDT"}, Verdict.DENY, "instruments",
     "instrument ETH_USDT (body.currency_pair) is not in instruments [BTC_USDT]"),
    ("a margin loan naming no market is refused", {"currency": "USDT", "type": "borrow",
     "amount": "10"}, Verdict.DENY, "instruments", "names no instrument"),
    ("a margin loan naming its market twice is refused", {"currency_pair": "BTC_USDT",
     "CURRENCY_PAIR": "ETH_USDT"}, Verdict.DENY, "order_shape", "given 2 times"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "verdict", "guard", "message"), [pytest.param(*c[1:], id=c[0]) for c in MARGIN_LOANS]
)
def test_a_margin_uni_loan_is_read_for_its_market(
    body: dict[str, str], verdict: Verdict, guard: str, message: str
) -> None:
    import json

    _call, decision = judged(GUARDED, "POST", "/api/v4/margin/uni/loans", json.dumps(body).encode())
    assert decision.verdict is verdict and decision.guard == guard
    assert message in decision.reason


# (case, allow_unread entry, a part of the error naming the field)
BAD_OPT_INS = [
    ("an unknown path", "POST /api/v4/flash_swap/order", "is not one of Gate's endpoints"),
    ("a concrete id instead of the template", "PUT /api/v4/crossex/orders/12",
     "did you mean 'PUT /api/v4/crossex/orders/{order_id}'?"),
    ("a path without its prefix", "POST /flash_swap/orders", "is not one of Gate's endpoints"),
    ("a read", "GET /api/v4/flash_swap/orders", "is a read"),
    ("a lower-case method", "post /api/v4/flash_swap/orders", "did you mean"),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "message"), [pytest.param(*c[1:], id=c[0]) for c in BAD_OPT_INS])
def test_an_opt_in_that_names_no_known_write_is_a_config_error_naming_the_field(
    entry: str, message: str
) -> None:
    from sidecar.config import parse_config
    from sidecar.errors import ConfigError

    key = {
        "name": "bot",
        "listen": "127.0.0.1:0",
        "source": {"env": {}},
        "policy": "full-trading",
        "guards": {"max_notional": 100, "allow_unread": [entry]},
    }
    with pytest.raises(ConfigError) as info:
        parse_config({"keys": [key]}, environ={})
    text = str(info.value)
    assert "allow_unread" in text and message in text, text


def test_template_lookups_are_bounded_whatever_bots_send() -> None:
    from sidecar.gate import endpoints

    for i in range(5000):
        template_for("GET", f"/api/v4/options/orders/{i}")
    assert endpoints._template_for_kept.cache_info().currsize <= 4096
    long_id = "9" * 300  # a long path is looked up, not kept
    found = template_for("GET", f"/api/v4/options/orders/{long_id}")
    assert found is not None and found.path == "/api/v4/options/orders/{order_id}"
    assert endpoints._template_for_kept.cache_info().currsize <= 4096
    before = endpoints._template_for_kept.cache_info().misses
    template_for("GET", f"/api/v4/options/orders/{long_id}")
    assert endpoints._template_for_kept.cache_info().misses == before  # never asked
