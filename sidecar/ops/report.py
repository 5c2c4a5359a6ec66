"""`check-config` output: per key, its listener, source and what it may and may not call.

Pure: built from the validated config and the compiled policies, nothing is started. The tables
come from :func:`sidecar.policy.describe.describe`, so they show exactly what the running sidecar
would enforce (presets expanded, locked endpoints named).
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.config.models import Config, KeyConfig
from sidecar.policy.describe import describe


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
    ]


def render_config_report(config: Config) -> str:
    lines = [f"config OK: {len(config.keys)} key(s); admin on {config.admin.listen}"]
    for key in config.keys:
        lines += ["", *key_report(key)]
    return "\n".join(lines)
