"""Trading safety's settings and decisions without a running exchange: config errors name the
field, warn mode's one table of what stays enforced, check-config's lines, and a reload that
changes the mode or the windows."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config import parse_config
from sidecar.errors import ConfigError
from sidecar.ops.report import render_config_report
from sidecar.policy.mode import DenyKind, Mode, warn_may_pass
from sidecar.policy.origin import NO_RULE, UNKNOWN_METHOD, Origin, OriginKind


def config(key: dict[str, Any], **sections: Any) -> Any:
    entry = {"name": "bot", "listen": "127.0.0.1:0", "policy": "full-trading",
             "source": {"env": {"key_var": "K", "secret_var": "S"}}, **key}  # fmt: skip
    return parse_config({"keys": [entry], **sections}, environ={})


@pytest.mark.parametrize(
    ("key", "sections", "message"),
    [
        ({"mode": "audit"}, {}, "keys[0].mode: "),
        ({"guards": {"windows": [{"per_s": 60}]}}, {},
         "keys[0].guards.windows[0]: "),
        ({"guards": {"windows": [{"per_s": 0, "max_orders": 1}]}}, {},
         "keys[0].guards.windows[0].per_s"),
        ({"guards": {"order_ttl_ms": 0}}, {}, "keys[0].guards.order_ttl_ms"),
        ({"dead_man": {"timeout_s": 30, "scopes": ["delivery/usdt"]}}, {},
         "unknown scope 'delivery/usdt'"),
        ({"dead_man": {"timeout_s": 30, "scopes": ["spot", "spot"]}}, {},
         "scope 'spot' is listed twice"),
        ({"dead_man": {"timeout_s": 2, "scopes": ["spot"]}}, {},
         "keys[0].dead_man.timeout_s: Gate's countdown needs at least 5 s, got 2"),
    ],
)  # fmt: skip
def test_a_bad_safety_setting_names_its_field(
    key: dict[str, Any], sections: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(key, **sections)
    assert message in str(caught.value)


def test_a_short_countdown_is_allowed_against_another_upstream() -> None:
    loaded = config({"dead_man": {"timeout_s": 2, "scopes": ["spot"]}},
                    upstream={"base_url": "http://127.0.0.1:8080"})  # fmt: skip
    assert loaded.keys[0].dead_man is not None and loaded.keys[0].dead_man.rearm_s == 2 / 3


def test_warn_mode_forwards_rules_guards_and_windows_but_never_locked_calls_or_the_brake() -> None:
    warn, enforce = Mode.WARN, Mode.ENFORCE
    deny = Origin(OriginKind.DENY, index=0)
    assert warn_may_pass(warn, DenyKind.POLICY, "deny[0]", deny)
    assert warn_may_pass(warn, DenyKind.POLICY, "no rule allows it", NO_RULE)
    assert not warn_may_pass(warn, DenyKind.POLICY, "locked", Origin(OriginKind.LOCKED))
    assert not warn_may_pass(warn, DenyKind.POLICY, "unknown method", UNKNOWN_METHOD)
    assert warn_may_pass(warn, DenyKind.GUARD, "max_notional")
    assert not warn_may_pass(warn, DenyKind.GUARD, "cancel_only")
    assert warn_may_pass(warn, DenyKind.WINDOW, "windows[0].max_orders")
    assert not any(warn_may_pass(enforce, kind, "x", deny) for kind in DenyKind)


def test_check_config_shows_the_mode_windows_expiry_and_dead_man() -> None:
    report = render_config_report(config({
        "mode": "warn",
        "guards": {"windows": [{"per_s": 60, "max_orders": 120},
                               {"per_s": 86400, "max_notional": 2000000,
                                "instruments": ["BTC_USDT"]}],
                   "order_ttl_ms": 3000},
        "rate_limit": {"shared": "redis://127.0.0.1:6379/0", "replicas": 2},
        "dead_man": {"timeout_s": 30, "scopes": ["spot", "futures/usdt"]},
    }))  # fmt: skip
    assert "  mode: warn (what the policy, a guard or a window would refuse is forwarded" in report
    assert "    windows[0]: max_orders 120 per 60 s" in report
    assert "    windows[1]: max_notional 2000000 per 86400 s on BTC_USDT" in report
    assert "counted in Redis (redis://127.0.0.1:6379/0), each replica's share on failure" in report
    assert "order expiry: x-gate-exptime = Gate's now + 3000 ms on order placements" in report
    assert (
        "dead-man switch: countdown_cancel_all of spot, futures/usdt armed with 30 s, renewed "
        "every 10 s while alive (traffic); on shutdown: cancel"
    ) in report
    assert "windows:" not in report.split("trading guards:")[1].split("rate budgets")[0]
    plain = render_config_report(config({}))
    assert "  mode: enforce" in plain and "dead-man switch: off" in plain
