"""Where a rule, and therefore a decision, comes from: structured, so nothing parses label text.

Audit lines and denials show an origin as text (``preset spot-only``, ``allow[0]``,
``deny[1]``, ``locked``); metrics and ``check-config`` read its fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class OriginKind(Enum):
    PRESET = "preset"  # a rule of a named preset
    ALLOW = "allow"  # one of the key's own allow rules
    DENY = "deny"  # one of the key's own deny rules
    LOCKED = "locked"  # a locked endpoint (funds out, privilege escalation)
    NO_RULE = "no rule"  # nothing allowed the request
    UNKNOWN_METHOD = "unknown method"  # a method the Gate API never uses


@dataclass(frozen=True, slots=True)
class Origin:
    kind: OriginKind
    preset: str | None = None  # PRESET: the preset's name
    index: int | None = None  # ALLOW, DENY: the rule's position in the key's list
    name: str | None = None  # LOCKED: the locked endpoint's short name ("withdrawals")

    def __str__(self) -> str:
        if self.kind is OriginKind.PRESET:
            return f"preset {self.preset}"
        if self.kind in (OriginKind.ALLOW, OriginKind.DENY):
            return f"{self.kind.value}[{self.index}]"
        return str(self.kind.value)


NO_RULE = Origin(OriginKind.NO_RULE)
UNKNOWN_METHOD = Origin(OriginKind.UNKNOWN_METHOD)
