"""check-config's lines for a key's trading safety over time: the mode (what warn mode forwards
and what stays enforced), the rolling windows, order expiry and the dead-man switch."""

from __future__ import annotations

from decimal import Decimal

from sidecar.config.models import KeyConfig
from sidecar.policy.guards.values import fmt
from sidecar.policy.mode import Mode

#: Settings of ``guards`` shown here rather than among the per-order guards.
SAFETY_GUARD_FIELDS = frozenset({"windows", "order_ttl_ms"})


def safety_lines(key: KeyConfig) -> list[str]:
    if key.mode is Mode.WARN:
        mode = (
            "  mode: warn (what the policy, a guard or a window would refuse is forwarded and "
            "reported as would_deny; locked endpoints, client authentication, browser "
            "refusals, the cancel-only brake and rate budgets stay enforced)"
        )
    else:
        mode = "  mode: enforce"
    lines = [mode, "  rolling windows:"]
    windows = key.guards.windows
    for i, w in enumerate(windows):
        limits = [
            f"{name} {fmt(Decimal(value))}"
            for name, value in (("max_orders", w.max_orders), ("max_notional", w.max_notional))
            if value is not None
        ]
        scope = f" on {', '.join(w.instruments)}" if w.instruments else ""
        lines.append(f"    windows[{i}]: {' and '.join(limits)} per {w.per_s:g} s{scope}")
    if windows:
        shared = key.rate_limit.shared if key.rate_limit is not None else None
        lines.append(
            f"    counted in Redis ({shared}), each replica's share on failure"
            if shared
            else "    counted in this process"
        )
    else:
        lines.append("    (none)")
    ttl = key.guards.order_ttl_ms
    lines.append(
        f"  order expiry: x-gate-exptime = Gate's now + {ttl} ms on order placements"
        if ttl is not None
        else "  order expiry: off (no guards.order_ttl_ms)"
    )
    dm = key.dead_man
    if dm is None:
        lines.append("  dead-man switch: off")
    else:
        lines.append(
            f"  dead-man switch: countdown_cancel_all of {', '.join(dm.scopes)} armed with "
            f"{dm.timeout_s} s, renewed every {dm.rearm_s:g} s while alive ({dm.alive.value}); "
            f"on shutdown: {dm.on_shutdown.value}"
        )
    return lines
