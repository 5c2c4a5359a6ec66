"""Query parameters the guards read are read for certain: one Gate could take from another
spelling (any letter case, a ``%00`` cut) or given twice is refused as ambiguous (400), and a
refusal states the value read. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config.guards import GuardsConfig
from sidecar.gate.endpoints import template_path
from sidecar.policy.conditions import Body
from sidecar.policy.guards import Decision, Guards, Verdict

LEVERAGE = "POST /api/v4/futures/usdt/positions/BTC_USDT/leverage"
LIMITS: dict[str, Any] = {"max_leverage": 10, "instruments": ["BTC_USDT"], "allow_unscoped": True}


def decide(target: str, **limits: Any) -> Decision:
    method, _, rest = target.partition(" ")
    path, _, query = rest.partition("?")
    guards = Guards(GuardsConfig(**{**LIMITS, **limits}))
    call = guards.http_call(method, path, query, Body(b""), template=template_path(method, path))
    return guards.decide(call)


# (case, target, verdict, guard, a part of the reason)
CASES: list[tuple[str, str, Verdict, str, str]] = [
    ("a leverage given in two letter cases is ambiguous", f"{LEVERAGE}?leverage=5&Leverage=100",
     Verdict.AMBIGUOUS, "order_shape",
     "a query parameter names leverage in another spelling (another letter case"),
    ("a leverage given only in another letter case is ambiguous", f"{LEVERAGE}?LEVERAGE=100",
     Verdict.AMBIGUOUS, "order_shape", "names leverage in another spelling"),
    ("a leverage cut by %00 is ambiguous", f"{LEVERAGE}?leverage=5&leverage%00=100",
     Verdict.AMBIGUOUS, "order_shape", "names leverage in another spelling"),
    ("a leverage with a control character after it is ambiguous", f"{LEVERAGE}?leverage%0A=100",
     Verdict.AMBIGUOUS, "order_shape", "names leverage in another spelling"),
    ("a leverage with a space around it is ambiguous", f"{LEVERAGE}?%20leverage=100",
     Verdict.AMBIGUOUS, "order_shape", "names leverage in another spelling"),
    ("a leverage given twice is ambiguous", f"{LEVERAGE}?leverage=5&leverage=100",
     Verdict.AMBIGUOUS, "order_shape", "query parameter leverage is given twice"),
    ("a cross leverage limit given twice is ambiguous",
     f"{LEVERAGE}?leverage=0&cross_leverage_limit=5&Cross_Leverage_Limit=50",
     Verdict.AMBIGUOUS, "order_shape", "names cross_leverage_limit in another spelling"),
    ("a contract listed in two letter cases is ambiguous",
     "GET /api/v4/futures/usdt/orders?contract=BTC_USDT&CONTRACT=ETH_USDT",
     Verdict.AMBIGUOUS, "order_shape", "names contract in another spelling"),
    ("an escaped spelling of the name itself is the name", f"{LEVERAGE}?lev%65rage=5",
     Verdict.PASS, "", ""),
    ("a parameter no guard reads may repeat", f"{LEVERAGE}?leverage=5&x=1&X=2&x=3",
     Verdict.PASS, "", ""),
    ("a negative leverage is refused naming the value read", f"{LEVERAGE}?leverage=-100",
     Verdict.DENY, "max_leverage",
     "max_leverage 10: leverage -100 in query leverage is no leverage this guard can check"),
    ("a leverage of 0 without a cross limit names cross margin", f"{LEVERAGE}?leverage=0",
     Verdict.DENY, "max_leverage", "leverage 0 (cross margin) in query leverage without "
     "cross_leverage_limit"),
    ("a leverage above the limit states it", f"{LEVERAGE}?leverage=100.5",
     Verdict.DENY, "max_leverage", "max_leverage 10 < leverage 100.5 in query leverage"),
    ("a leverage that is not a number states where", f"{LEVERAGE}?leverage=5%00",
     Verdict.DENY, "order_shape", "query leverage is not a number"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("target", "verdict", "guard", "reason"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_a_guarded_query_parameter_is_read_for_certain_or_refused(
    target: str, verdict: Verdict, guard: str, reason: str
) -> None:
    decision = decide(target)
    assert decision.verdict is verdict, decision
    assert decision.guard == guard
    assert reason in decision.reason, decision.reason


def test_an_ambiguous_query_matters_only_where_a_guard_reads_it() -> None:
    # No guard set: nothing is read, so nothing is ambiguous to the guards.
    guards = Guards(GuardsConfig())
    path = "/api/v4/futures/usdt/positions/BTC_USDT/leverage"
    call = guards.http_call(
        "POST", path, "leverage=5&Leverage=100", Body(b""), template=template_path("POST", path)
    )
    assert guards.decide(call).verdict is Verdict.PASS


def test_an_ambiguous_name_is_never_quoted_back() -> None:
    decision = decide(f"{LEVERAGE}?leverage%00s3cr3t-t0ken=100")
    assert decision.verdict is Verdict.AMBIGUOUS
    assert "s3cr3t" not in decision.reason and "\x00" not in decision.reason
