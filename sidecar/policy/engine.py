"""The policy engine: pure, compiled once per key, consulted on every request.

allowed = (the presets' rules + the key's allow rules) minus deny rules minus locked endpoints.
Deny wins; everything else is refused. In order:

1. a method the Gate API never uses → refused;
2. a deny rule matches → refused;
3. a locked endpoint matches (funds leaving the account, privilege escalation) → refused, unless
   ``allow_withdrawals: true`` *and* one of the key's own allow rules (never a preset) matches
   with a pattern that names the product literally and holds no ``**``: a broad rule such as
   ``* /api/v4/**`` or ``* /api/v4/*`` can never open a withdrawal by accident;
4. an allow rule matches and its condition (if any) holds → allowed;
5. otherwise refused.

Deny rules and locked endpoints match leniently (any letter case, trailing dots), allow rules
exactly: see :func:`sidecar.policy.globs.glob_regex`. The path has already passed
:func:`sidecar.gate.paths.check_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.errors import ConfigError
from sidecar.memo import SIZE, Memo
from sidecar.policy.conditions import Body, InvalidBody
from sidecar.policy.globs import METHODS, glob_regex, validate_glob
from sidecar.policy.origin import NO_RULE, UNKNOWN_METHOD, Origin, OriginKind
from sidecar.policy.presets import LOCKED, PRESETS, Rule

NO_RULE_TEXT = "no rule allows it"
_KNOWN_METHODS = frozenset(METHODS)
# Decisions remembered per key, by (method, path), for those the body and query cannot change.
# Paths carry ids (order ids, currency pairs), so the cache is bounded: emptied when full.
DECISION_CACHE_SIZE = SIZE


class RuleSpec(Protocol):
    """One allow or deny rule as the config gives it."""

    @property
    def methods(self) -> Sequence[str]: ...  # upper case, or "*"

    @property
    def path(self) -> str: ...  # a glob (sidecar.policy.globs)


class PolicySpec(Protocol):
    """A key's policy as the config gives it."""

    @property
    def presets(self) -> Sequence[str]: ...

    @property
    def allow(self) -> Sequence[RuleSpec]: ...

    @property
    def deny(self) -> Sequence[RuleSpec]: ...


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # the deciding rule's label, for audit lines: "deny[0]: * /api/v4/...", "locked: ..."
    reason: str  # short and human, for the 403 message
    origin: Origin  # where the deciding rule comes from, for metrics


class _Matcher:
    """A rule with its glob compiled: ``matches`` is a set lookup and one regex match."""

    __slots__ = ("any_method", "condition", "label", "methods", "regex", "rule")

    def __init__(self, rule: Rule, *, lenient: bool = False) -> None:
        self.rule = rule
        self.label = rule.label
        self.methods = rule.methods
        self.any_method = "*" in rule.methods
        self.condition = rule.condition
        self.regex = glob_regex(rule.path, lenient=lenient)

    def matches(self, method: str, path: str) -> bool:
        return (self.any_method or method in self.methods) and (
            self.regex.fullmatch(path) is not None
        )

    def decision(self, allowed: bool, reason: str) -> Decision:
        return Decision(allowed, self.label, reason, self.rule.origin)


# Locked endpoints are the same for every key: compile them once, at import.
_LOCKED = tuple(_Matcher(rule, lenient=True) for rule in LOCKED)


def _may_unlock(path: str) -> bool:
    """An explicit rule names a locked endpoint narrowly enough to open it."""
    product = path.removeprefix("/api/v4/").split("/", 1)[0]
    return "**" not in path and "*" not in product


def _own_rules(kind: OriginKind, rules: Sequence[RuleSpec]) -> list[Rule]:
    return [Rule(frozenset(r.methods), r.path, Origin(kind, index=i)) for i, r in enumerate(rules)]


class Policy:
    def __init__(self, name: str, spec: PolicySpec, *, allow_withdrawals: bool = False) -> None:
        self.name = name
        self.allow_withdrawals = allow_withdrawals
        own = _own_rules(OriginKind.ALLOW, spec.allow)
        deny = _own_rules(OriginKind.DENY, spec.deny)
        problems = [
            f"keys.{name}.policy.{rule.origin}.path: {problem} ({rule.path!r})"
            for rule in own + deny
            if (problem := validate_glob(rule.path))
        ]
        if problems:
            raise ConfigError(problems)
        presets = [rule for preset in dict.fromkeys(spec.presets) for rule in PRESETS[preset]]
        self._allow = tuple(_Matcher(r) for r in presets + own)
        self._deny = tuple(_Matcher(r, lenient=True) for r in deny)
        self._candidates = tuple(_Matcher(r) for r in own if _may_unlock(r.path))
        self._unlockers = self._candidates if allow_withdrawals else ()
        # (method, path) -> the decision, for the decisions no condition took part in. A reload
        # compiles a new Policy, so the cache never outlives the rules it was filled from.
        self._cache: Memo[tuple[str, str], Decision] = Memo(DECISION_CACHE_SIZE)

    # -- what the policy holds (for sidecar.policy.describe) ----------------------------------
    @property
    def allow_rules(self) -> tuple[Rule, ...]:
        return tuple(m.rule for m in self._allow)

    @property
    def deny_rules(self) -> tuple[Rule, ...]:
        return tuple(m.rule for m in self._deny)

    @property
    def unlocking_rules(self) -> tuple[Rule, ...]:
        """The key's own rules that open a locked endpoint they match (none without
        ``allow_withdrawals``)."""
        return tuple(m.rule for m in self._unlockers)

    # -- the hot path -------------------------------------------------------------------------
    def decide(self, method: str, path: str, raw_query: str, body: bytes | Body) -> Decision:
        """``body`` as bytes, or as the request's :class:`Body` so that it is parsed only once.

        A decision that read neither the body nor the query (no rule with a condition matched
        before it) depends on the method and the path alone: it is remembered for them."""
        cached = self._cache.get((method, path))
        if cached is not None:
            return cached
        decision, conditional = self._decide(method, path, raw_query, body)
        if not conditional and decision.origin is not UNKNOWN_METHOD:
            self._cache.keep((method, path), decision, path)
        return decision

    def _decide(
        self, method: str, path: str, raw_query: str, body: bytes | Body
    ) -> tuple[Decision, bool]:
        """The decision, and whether a rule's condition (the body, the query) took part."""
        method = method.upper()
        if method not in _KNOWN_METHODS:
            reason = f"{method[:16]!r} is not a Gate API method"
            return Decision(False, UNKNOWN_METHOD.kind.value, reason, UNKNOWN_METHOD), False
        for deny in self._deny:
            if deny.matches(method, path):
                return deny.decision(False, f"denied by {deny.rule.origin}"), False
        for locked in _LOCKED:
            if locked.matches(method, path):
                return self._locked(locked, method, path), False
        refusal: Decision | None = None
        parsed = body if isinstance(body, Body) else Body(body)
        for allow in self._allow:
            if not allow.matches(method, path):
                continue
            if allow.condition is None:
                return allow.decision(True, "allowed"), refusal is not None
            doc = parsed.doc  # parsed at most once, and only for a rule that needs the body
            why = (
                str(doc)
                if isinstance(doc, InvalidBody)
                else allow.condition.refusal(raw_query, doc)
            )
            if why is None:
                return allow.decision(True, "allowed"), True
            refusal = refusal or allow.decision(False, why)
        if refusal is not None:
            return refusal, True
        return Decision(False, NO_RULE_TEXT, NO_RULE_TEXT, NO_RULE), False

    def _locked(self, locked: _Matcher, method: str, path: str) -> Decision:
        opener = next((u for u in self._unlockers if u.matches(method, path)), None)
        if opener is not None:
            return opener.decision(True, "allowed (a locked endpoint, opened explicitly)")
        if any(u.matches(method, path) for u in self._candidates):
            hint = "set allow_withdrawals: true to open it"
        else:
            hint = "needs allow_withdrawals: true and an explicit allow rule naming it"
        return locked.decision(False, f"locked: {locked.rule.reason}; {hint}")


def compile_policy(name: str, spec: PolicySpec, *, allow_withdrawals: bool = False) -> Policy:
    """Compile a key's policy; raises ConfigError for a rule whose glob can never work."""
    return Policy(name, spec, allow_withdrawals=allow_withdrawals)
