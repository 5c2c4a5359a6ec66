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
exactly: see :func:`sidecar.policy.presets.glob_regex`. The path has already passed
:func:`sidecar.gate.paths.check_path`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sidecar.config.models import KeyConfig, RuleConfig
from sidecar.errors import ConfigError
from sidecar.policy.presets import (
    LOCKED,
    METHODS,
    NO_BODY,
    PRESETS,
    Rule,
    glob_regex,
    locked_name,
    methods_text,
    validate_glob,
)

NO_RULE = "no rule allows it"
_KNOWN_METHODS = frozenset(METHODS)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # the rule that decided, for audit logs: "deny[0]: * /api/v4/...", "locked: ..."
    reason: str  # short and human, for the 403 message


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
    """What a key may call, for ``check-config``."""

    name: str
    allow: tuple[RuleRow, ...]
    deny: tuple[RuleRow, ...]
    locked: tuple[LockedRow, ...]
    allow_withdrawals: bool

    def lines(self) -> list[str]:
        out = []
        for row in self.allow:
            cond = f" [{row.condition}]" if row.condition else ""
            out.append(f"allow   {row.methods} {row.path}{cond}  ({row.origin})")
        for row in self.deny:
            out.append(f"deny    {row.methods} {row.path}  ({row.origin})")
        for lock in self.locked:
            state = "locked"
            if lock.opened_by:
                state = f"locked, but opened where {', '.join(lock.opened_by)} match"
            out.append(f"{state}: {lock.methods} {lock.path}  ({lock.name}: {lock.reason})")
        return out


class _Matcher:
    """A rule with its glob compiled: ``matches`` is a set lookup and one regex match."""

    __slots__ = ("any_method", "condition", "label", "methods", "regex", "rule")

    def __init__(self, rule: Rule, *, lenient: bool = False) -> None:
        self.rule = rule
        self.label = rule.source
        self.methods = rule.methods
        self.any_method = "*" in rule.methods
        self.condition = rule.condition
        self.regex = glob_regex(rule.path, lenient=lenient)

    def matches(self, method: str, path: str) -> bool:
        return (self.any_method or method in self.methods) and (
            self.regex.fullmatch(path) is not None
        )


# Locked endpoints are the same for every key: compile them once, at import.
_LOCKED = tuple(_Matcher(rule, lenient=True) for rule in LOCKED)


def _may_unlock(path: str) -> bool:
    """An explicit rule names a locked endpoint narrowly enough to open it."""
    product = path.removeprefix("/api/v4/").split("/", 1)[0]
    return "**" not in path and "*" not in product


class _InvalidBody(Exception):
    pass


_UNPARSED = object()


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Decoders disagree on which copy of a repeated key wins; refuse rather than guess.
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise _InvalidBody("the JSON body repeats a key")
    return doc


def _parse_body(body: bytes) -> object:
    """The parsed JSON body, NO_BODY, or an _InvalidBody saying why it cannot be checked."""
    if not body.strip():
        return NO_BODY
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except _InvalidBody as exc:
        return exc
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return _InvalidBody("the body is not valid UTF-8 JSON, so it cannot be checked")


def _own_rule(kind: str, index: int, rule: RuleConfig) -> Rule:
    methods = frozenset(rule.methods)
    return Rule(methods, rule.path, f"{kind}[{index}]: {methods_text(methods)} {rule.path}")


class Policy:
    def __init__(self, key: KeyConfig) -> None:
        self.name = key.name
        self.allow_withdrawals = key.allow_withdrawals
        own = [_own_rule("allow", i, r) for i, r in enumerate(key.policy.allow)]
        deny = [_own_rule("deny", i, r) for i, r in enumerate(key.policy.deny)]
        problems = [
            f"keys.{key.name}.policy.{rule.source.split(':')[0]}.path: {problem} ({rule.path!r})"
            for rule in own + deny
            if (problem := validate_glob(rule.path))
        ]
        if problems:
            raise ConfigError(problems)
        presets = [rule for name in dict.fromkeys(key.policy.presets) for rule in PRESETS[name]]
        self._allow = tuple(_Matcher(r) for r in presets + own)
        self._deny = tuple(_Matcher(r, lenient=True) for r in deny)
        self._candidates = tuple(_Matcher(r) for r in own if _may_unlock(r.path))
        self._unlockers = self._candidates if key.allow_withdrawals else ()

    def decide(self, method: str, path: str, raw_query: str, body: bytes) -> Decision:
        method = method.upper()
        if method not in _KNOWN_METHODS:
            return Decision(False, "unknown method", f"{method[:16]!r} is not a Gate API method")
        for deny in self._deny:
            if deny.matches(method, path):
                return Decision(False, deny.label, f"denied by {deny.label.split(':')[0]}")
        for locked in _LOCKED:
            if locked.matches(method, path):
                return self._locked(locked, method, path)
        refusal: Decision | None = None
        doc: object = _UNPARSED
        for allow in self._allow:
            if not allow.matches(method, path):
                continue
            if allow.condition is None:
                return Decision(True, allow.label, "allowed")
            if doc is _UNPARSED:  # parse at most once, and only for a rule that needs the body
                doc = _parse_body(body)
            if isinstance(doc, _InvalidBody):
                why: str | None = str(doc)
            else:
                why = allow.condition.refusal(raw_query, doc)
            if why is None:
                return Decision(True, allow.label, "allowed")
            refusal = refusal or Decision(False, allow.label, why)
        return refusal or Decision(False, NO_RULE, NO_RULE)

    def _locked(self, locked: _Matcher, method: str, path: str) -> Decision:
        opener = next((u for u in self._unlockers if u.matches(method, path)), None)
        if opener is not None:
            return Decision(True, opener.label, "allowed (a locked endpoint, opened explicitly)")
        if any(u.matches(method, path) for u in self._candidates):
            hint = "set allow_withdrawals: true to open it"
        else:
            hint = "needs allow_withdrawals: true and an explicit allow rule naming it"
        return Decision(False, locked.label, f"locked: {locked.rule.reason}; {hint}")

    def describe(self) -> PolicyDescription:
        def row(m: _Matcher) -> RuleRow:
            cond = m.condition.text if m.condition else ""
            return RuleRow(methods_text(m.methods), m.rule.path, cond, _origin(m.label))

        locked = []
        for lock in _LOCKED:
            opened_by = tuple(
                _origin(u.label) for u in self._unlockers if _overlap(u.rule, lock.rule)
            )
            name = locked_name(lock.rule)
            locked.append(
                LockedRow(
                    methods_text(lock.methods), lock.rule.path, name, lock.rule.reason, opened_by
                )
            )
        return PolicyDescription(
            name=self.name,
            allow=tuple(row(m) for m in self._allow),
            deny=tuple(row(m) for m in self._deny),
            locked=tuple(locked),
            allow_withdrawals=self.allow_withdrawals,
        )


def _origin(label: str) -> str:
    return label.split(": ", 1)[0]


def _segments_overlap(a: str, b: str) -> bool:
    """Whether two single-segment patterns can match the same segment (approximate: yes when
    both hold a wildcard, which errs towards reporting an endpoint as opened)."""
    if "*" not in a:
        return glob_regex("/" + b, lenient=True).fullmatch("/" + a) is not None
    if "*" not in b:
        return glob_regex("/" + a, lenient=True).fullmatch("/" + b) is not None
    return True


def _globs_overlap(a: list[str], b: list[str]) -> bool:
    if not a or not b:
        rest = a or b
        return all(s == "**" for s in rest)
    if a[0] == "**":
        return _globs_overlap(a[1:], b) or _globs_overlap(a, b[1:])
    if b[0] == "**":
        return _globs_overlap(a, b[1:]) or _globs_overlap(a[1:], b)
    return _segments_overlap(a[0], b[0]) and _globs_overlap(a[1:], b[1:])


def _overlap(a: Rule, b: Rule) -> bool:
    """Whether some request could match both rules: for check-config only, never the hot path."""
    methods = "*" in a.methods or "*" in b.methods or bool(a.methods & b.methods)
    return methods and _globs_overlap(a.path.split("/")[1:], b.path.split("/")[1:])


def compile_policy(key: KeyConfig) -> Policy:
    """Compile a key's policy; raises ConfigError for a rule whose glob can never work."""
    return Policy(key)
