"""`check-config` output: per key, its listener, source and what it may and may not call.

Pure: built from the validated config and the compiled policies, nothing is started. The tables
come from :func:`sidecar.policy.describe.describe`, so they show exactly what the running sidecar
would enforce (presets expanded, locked endpoints named).
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.config.models import Config, KeyConfig
from sidecar.gate.ratelimits import GATE_GROUPS
from sidecar.policy.describe import describe
from sidecar.proxy.budget import budgets


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "    ") -> list[str]:
    """Left-aligned columns; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        lines.append((indent + "  ".join([*cells, str(row[-1])])).rstrip())
    return lines


def describe_source(key: KeyConfig) -> str:
    return key.source.source_kind.describe(key.source.spec)


def _locked_status(opened_by: tuple[str, ...]) -> str:
    return f"open to {', '.join(opened_by)} (allow_withdrawals)" if opened_by else "locked"


def _guard_lines(key: KeyConfig) -> list[str]:
    g = key.guards
    values = {name: getattr(g, name) for name in type(g).model_fields}
    shown = [
        (name, ", ".join(map(str, value)) if isinstance(value, list) else str(value).lower())
        for name, value in values.items()
        if value is not None
    ]
    off = [name for name, value in values.items() if value is None]
    lines = [f"    {name}: {text}" for name, text in shown]
    if off:
        lines.append(f"    (no limit: {', '.join(off)})")
    return lines


def _budget_lines(key: KeyConfig) -> list[str]:
    cfg = key.rate_limit
    if cfg is None:
        return ["    off (no rate_limit section)"]
    where = f"shared in {cfg.shared}, {cfg.replicas} replica(s)" if cfg.shared else "local"
    if cfg.shared_password_file is not None:  # the file's path, never its content
        user = f", user from {cfg.shared_username_file}" if cfg.shared_username_file else ""
        where += f" (AUTH from {cfg.shared_password_file}{user})"
    by_name = budgets(cfg)
    rows = [
        [g.name, f"{b.limit} per {b.per_s:g}s", "per endpoint" if g.per_endpoint else "", g.text]
        for g in GATE_GROUPS
        if (b := by_name.get(g.name)) is not None
    ]
    if not rows:
        return [f"    {where}; no group budgeted"]
    return [f"    {where}", *table(("GROUP", "BUDGET", "SCOPE", "ENDPOINTS"), rows, "      ")]


def key_report(key: KeyConfig) -> list[str]:
    desc = describe(key.compile_policy())
    allowed = [[r.methods, r.path, r.condition or "-", r.origin] for r in desc.allow]
    denied = [[r.methods, r.path, r.origin] for r in desc.deny]
    locked = [
        [r.methods, r.path, f"{r.name}: {r.reason}", _locked_status(r.opened_by)]
        for r in desc.locked
    ]
    return [
        f"key {key.name}",
        f"  listen: {key.listen}",
        f"  source: {describe_source(key)}",
        "  may call:",
        *table(("METHODS", "PATH", "CONDITION", "RULE"), allowed),
        "  may not call (deny rules win over allow rules):",
        *(table(("METHODS", "PATH", "RULE"), denied) if denied else ["    (no deny rules)"]),
        "  locked endpoints (refused whatever the allow rules say, unless opened):",
        *table(("METHODS", "PATH", "WHY", "STATUS"), locked),
        "  anything else: refused (no rule allows it)",
        "  trading guards:",
        *_guard_lines(key),
        "  rate budgets (requests per window, per Gate account):",
        *_budget_lines(key),
        f"  self-check at start and after rotation: {'on' if key.self_check else 'off'}",
    ]


def render_config_report(config: Config) -> str:
    lines = [f"config OK: {len(config.keys)} key(s); admin on {config.admin.listen}"]
    for key in config.keys:
        lines += ["", *key_report(key)]
    return "\n".join(lines)
