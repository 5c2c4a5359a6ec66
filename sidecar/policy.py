"""The policy engine: pure, compiled once per key, consulted on every request.

allowed = (presets' rules ∪ the key's allow rules) − deny rules − locked endpoints; deny wins;
everything else is refused. Locked endpoints (funds leaving the account, privilege escalation)
open only with ``allow_withdrawals: true`` *and* an explicit allow rule of the key's own that names
them without ``**``, so no broad rule can ever unlock a withdrawal by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.config import KeyConfig, RuleConfig
from sidecar.presets import LOCKED, PRESETS, Rule


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    reason: str


@dataclass(frozen=True)
class PolicyDescription:
    allowed: list[tuple[str, str, str, str]]  # (methods, path, condition, source)
    denied: list[tuple[str, str, str]]  # (methods, path, source)
    locked: list[tuple[str, str, str, bool]]  # (methods, path, why, unlocked)


def _user_rule(rule: RuleConfig, source: str) -> Rule:
    return Rule(frozenset(rule.methods), rule.path, source=source)


class Policy:
    def __init__(self, key: KeyConfig) -> None:
        self.name = key.name
        self.allow_withdrawals = key.allow_withdrawals
        self.allow: tuple[Rule, ...] = tuple(
            rule for preset in key.policy.presets for rule in PRESETS[preset]
        ) + tuple(_user_rule(r, f"allow[{i}]") for i, r in enumerate(key.policy.allow))
        self.deny = tuple(_user_rule(r, f"deny[{i}]") for i, r in enumerate(key.policy.deny))
        # The key's own explicit rules that may unlock a locked endpoint.
        self.unlockers = tuple(
            r
            for r in self.allow
            if key.allow_withdrawals and r.source.startswith("allow[") and "**" not in r.path
        )

    def decide(self, method: str, path: str, raw_query: str, body: bytes) -> Decision:
        method = method.upper()
        for rule in self.deny:
            if rule.matches(method, path):
                return Decision(False, f"{rule.source}: {rule.text}", f"{rule.source}: {rule.text}")
        for locked in LOCKED:
            if locked.matches(method, path):
                opener = next((r for r in self.unlockers if r.matches(method, path)), None)
                if opener is None:
                    why = locked.source
                    return Decision(False, why, f"{why}; see allow_withdrawals")
                return Decision(True, f"{opener.source}: {opener.text}", "unlocked")
        refusal = None
        for rule in self.allow:
            if not rule.matches(method, path):
                continue
            problem = rule.condition(raw_query, body) if rule.condition else None
            if problem is None:
                return Decision(True, f"{rule.source}: {rule.text}", "allowed")
            refusal = refusal or Decision(False, f"{rule.source}: {rule.text}", problem)
        return refusal or Decision(False, "no rule allows it", "no rule allows it")

    def describe(self) -> PolicyDescription:
        return PolicyDescription(
            allowed=[
                (",".join(sorted(r.methods)), r.path, r.condition_text, r.source)
                for r in self.allow
            ],
            denied=[(",".join(sorted(r.methods)), r.path, r.source) for r in self.deny],
            locked=[
                (
                    ",".join(sorted(r.methods)),
                    r.path,
                    r.source.removeprefix("locked: "),
                    any(u.path == r.path or u.regex.match(r.path) for u in self.unlockers),
                )
                for r in LOCKED
            ],
        )


def compile_policy(key: KeyConfig) -> Policy:
    return Policy(key)
