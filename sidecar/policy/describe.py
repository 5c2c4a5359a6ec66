"""What a compiled policy allows, as rows for ``check-config``. Pure, never on the hot path."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.policy.engine import Policy
from sidecar.policy.globs import globs_overlap, methods_text
from sidecar.policy.presets import LOCKED, Rule


@dataclass(frozen=True)
class RuleRow:
    methods: str
    path: str
    condition: str  # "" when the rule has none
    origin: str  # "preset spot-only", "allow[0]", "deny[1]"


@dataclass(frozen=True)
class LockedRow:
    methods: str
    path: str
    name: str
    reason: str
    opened_by: tuple[str, ...]  # origins of the key's rules that may open it; () = stays locked


@dataclass(frozen=True)
class PolicyDescription:
    name: str
    allow: tuple[RuleRow, ...]
    deny: tuple[RuleRow, ...]
    locked: tuple[LockedRow, ...]
    allow_withdrawals: bool


def _row(rule: Rule) -> RuleRow:
    condition = rule.condition.text if rule.condition else ""
    return RuleRow(methods_text(rule.methods), rule.path, condition, str(rule.origin))


def _overlap(a: Rule, b: Rule) -> bool:
    """Whether some request could match both rules."""
    methods = "*" in a.methods or "*" in b.methods or bool(a.methods & b.methods)
    return methods and globs_overlap(a.path, b.path)


def describe(policy: Policy) -> PolicyDescription:
    """Every rule the policy holds, with the locked endpoints and what may open each."""
    locked = tuple(
        LockedRow(
            methods_text(lock.methods),
            lock.path,
            str(lock.origin.name),
            lock.reason,
            tuple(str(u.origin) for u in policy.unlocking_rules if _overlap(u, lock)),
        )
        for lock in LOCKED
    )
    return PolicyDescription(
        name=policy.name,
        allow=tuple(_row(r) for r in policy.allow_rules),
        deny=tuple(_row(r) for r in policy.deny_rules),
        locked=locked,
        allow_withdrawals=policy.allow_withdrawals,
    )
