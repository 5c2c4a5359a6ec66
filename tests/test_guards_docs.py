"""docs/guards.md shows the tables the code enforces: the field table and Gate's rate groups."""

from __future__ import annotations

from pathlib import Path

from sidecar.gate.ratelimits import groups_markdown
from sidecar.policy.guards.describe import field_table_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "guards.md"


def test_the_documented_field_table_is_the_one_the_guards_read() -> None:
    assert field_table_markdown() in DOC.read_text(), "docs/guards.md: the field table is stale"


def test_the_documented_rate_groups_are_the_ones_the_budgets_use() -> None:
    assert groups_markdown() in DOC.read_text(), "docs/guards.md: the rate group table is stale"


def test_check_config_prints_each_keys_guards_budgets_and_self_check() -> None:
    from sidecar.config import parse_config
    from sidecar.ops.report import render_config_report

    base = {"listen": "127.0.0.1:0", "source": {"env": {}}, "policy": "futures-only"}
    guarded = {
        **base,
        "name": "mm-bot",
        "guards": {"instruments": ["BTC_USDT"], "max_order_size": 100, "cancel_only": True},
        "rate_limit": {
            "overrides": [{"group": "futures-order-place", "limit": 50, "per_s": 1}],
            "shared": "redis://127.0.0.1:6379/0",
            "replicas": 3,
        },
        "self_check": True,
    }
    config = parse_config({"keys": [guarded, {**base, "name": "plain"}]}, environ={})
    report = render_config_report(config)
    mm, plain = report.split("\nkey plain\n")
    assert "    instruments: BTC_USDT\n" in mm and "    max_order_size: 100\n" in mm
    assert "    cancel_only: true\n" in mm
    assert (
        "(no limit: settle, max_notional, max_leverage, order_types, time_in_force, "
        "max_price_deviation_pct, allow_unread)"
    ) in mm
    assert "shared in redis://127.0.0.1:6379/0, 3 replica(s)" in mm
    assert "futures-order-place   50 per 1s" in mm and "wallet-withdraw       1 per 3s" in mm
    assert "self-check at start and after rotation: on" in mm
    assert "    off (no rate_limit section)" in plain
    assert "self-check at start and after rotation: off" in plain


def test_check_config_prints_the_price_deviation_limit_and_the_unread_opt_ins() -> None:
    from sidecar.config import parse_config
    from sidecar.ops.report import render_config_report

    key = {
        "listen": "127.0.0.1:0",
        "source": {"env": {}},
        "policy": "full-trading",
        "name": "bot",
        "guards": {
            "max_price_deviation_pct": "2.5",
            "allow_unread": ["POST /api/v4/flash_swap/orders", "POST /api/v4/earn/uni/lends"],
        },
    }
    report = render_config_report(parse_config({"keys": [key]}, environ={}))
    assert "    max_price_deviation_pct: 2.5\n" in report
    assert (
        "    allow_unread: POST /api/v4/flash_swap/orders, POST /api/v4/earn/uni/lends\n" in report
    )
