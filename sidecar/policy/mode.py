"""A key's mode: ``enforce`` refuses what the policy, a guard or a window refuses; ``warn``
forwards it instead and reports a :class:`WouldDeny`. Pure.

What stays enforced in warn mode is decided here, in one place (:func:`warn_may_pass`): locked
endpoints (funds leaving the account, privilege escalation), a method Gate never uses, a request
the guards cannot read for certain (``order_shape``), and the cancel-only brake (an operator's
emergency switch, not a rule being tried out). Client authentication, browser refusals,
wire-level refusals and rate budgets never reach this decision: they refuse before or outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sidecar.policy.origin import Origin, OriginKind


class Mode(Enum):
    ENFORCE = "enforce"
    WARN = "warn"


class DenyKind(Enum):
    """What would have refused: the metric's ``kind`` label."""

    POLICY = "policy"
    GUARD = "guard"
    WINDOW = "window"


@dataclass(frozen=True, slots=True)
class WouldDeny:
    """A refusal warn mode forwarded: what (``name``: the rule's label, the guard, the window
    as ``windows[1].max_notional``) and why, with the value (``message``)."""

    kind: DenyKind
    name: str
    message: str


_ALWAYS_ENFORCED_ORIGINS = frozenset({OriginKind.LOCKED, OriginKind.UNKNOWN_METHOD})
# The brake is an operator's switch; "order_shape" is a request the guards cannot read for certain
# (not JSON, a field in two spellings, a query parameter given twice): warn mode tries out limits,
# it does not relay what the sidecar cannot read (fail closed).
ALWAYS_ENFORCED_GUARDS = frozenset({"cancel_only", "order_shape"})


def warn_may_pass(mode: Mode, kind: DenyKind, name: str, origin: Origin | None = None) -> bool:
    """Whether this refusal is forwarded (warn mode) rather than enforced."""
    if mode is not Mode.WARN:
        return False
    if kind is DenyKind.POLICY:
        return origin is not None and origin.kind not in _ALWAYS_ENFORCED_ORIGINS
    if kind is DenyKind.GUARD:
        return name not in ALWAYS_ENFORCED_GUARDS
    return True
