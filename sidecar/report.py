"""`check-config` output: per key, its listener, source and what it may call."""

from __future__ import annotations

from sidecar.config import Config


def render_config_report(config: Config) -> str:
    lines = [f"config OK: {len(config.keys)} key(s); admin on {config.admin.listen}"]
    for key in config.keys:
        lines.append("")
        lines.append(f"key {key.name}")
        lines.append(f"  listen: {key.listen}")
        lines.append(f"  source: {key.source.kind}")
        lines.append(f"  presets: {', '.join(key.policy.presets) or '-'}")
        for i, rule in enumerate(key.policy.allow):
            lines.append(f"  allow[{i}]: {','.join(rule.methods)} {rule.path}")
        for i, rule in enumerate(key.policy.deny):
            lines.append(f"  deny[{i}]: {','.join(rule.methods)} {rule.path}")
    return "\n".join(lines)
