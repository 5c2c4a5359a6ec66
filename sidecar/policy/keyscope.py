"""The self-check's verdict: is a key, as Gate describes it, wider than its policy needs? Pure.

Gate's ``GET /api/v4/account/main_keys`` answers the key's permissions (``perms``: a name per
product and whether it is read-only), its IP whitelist and its state (gate-api 7.2.161,
``AccountKeyInfo``). A permission the policy never uses, write access where the policy only
reads, or an empty IP whitelist is a problem; each problem says what to change on Gate.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.policy.engine import Policy
from sidecar.policy.globs import globs_overlap
from sidecar.policy.presets import Rule

# Gate permission name -> the API paths it grants (AccountKeyInfoPerms.name); any other name
# grants /api/v4/<name>/.
PERM_PATHS: dict[str, tuple[str, ...]] = {
    "wallet": ("/api/v4/wallet/**", "/api/v4/withdrawals/**"),
    "spot": ("/api/v4/spot/**", "/api/v4/margin/**"),
    "crossx": ("/api/v4/crossex/**",),
    "tradfi_spot": ("/api/v4/tradfi/**",),
    "copy": ("/api/v4/copy/**",),
}
# The sidecar itself reads /account (the canary, this very check): that read is always needed.
ALWAYS_READ = frozenset({"account"})
STATES = {1: "normal", 2: "locked", 3: "frozen"}


@dataclass(frozen=True)
class KeyScope:
    ok: bool
    problems: tuple[str, ...]  # each: what is wrong and what to change on Gate


def _paths(perm: str) -> tuple[str, ...]:
    return PERM_PATHS.get(perm, (f"/api/v4/{perm}/**",))


def _used(rules: tuple[Rule, ...], perm: str, *, write: bool) -> bool:
    for rule in rules:
        methods = rule.methods
        if write and not ("*" in methods or methods - {"GET", "HEAD", "OPTIONS"}):
            continue
        if not write and not ("*" in methods or "GET" in methods):
            continue
        if any(globs_overlap(rule.path, path) for path in _paths(perm)):
            return True
    return False


def _writes(policy: Policy, perm: str) -> bool:
    if perm == "wallet":
        # Withdrawals are locked unless opened explicitly; wallet transfers are not.
        opened = policy.unlocking_rules
        transfers = tuple(r for r in policy.allow_rules if "withdrawals" not in r.path)
        return _used(opened, perm, write=True) or any(
            globs_overlap(r.path, "/api/v4/wallet/**")
            for r in transfers
            if "*" in r.methods or r.methods - {"GET", "HEAD", "OPTIONS"}
        )
    return _used(policy.allow_rules, perm, write=True)


def judge(policy: Policy, info: object) -> KeyScope:
    """The verdict on Gate's ``main_keys`` answer (a JSON object) for a key with ``policy``."""
    if not isinstance(info, dict):
        return KeyScope(False, ("Gate's main_keys answer is not a JSON object",))
    problems = []
    state = info.get("state")
    if isinstance(state, int) and state != 1:
        problems.append(
            f"the key is {STATES.get(state, f'in state {state}')} on Gate: unlock it or use "
            "another key"
        )
    whitelist = info.get("ip_whitelist")
    if not isinstance(whitelist, list) or not whitelist:
        problems.append(
            "the key has no IP whitelist: on Gate, add the sidecar's outbound IP address(es) to "
            "the key's IP whitelist"
        )
    perms = info.get("perms")
    if not isinstance(perms, list):
        problems.append("Gate's answer lists no permissions (perms)")
        perms = []
    for perm in perms:
        if not isinstance(perm, dict) or not isinstance(perm.get("name"), str):
            continue
        name, read_only = perm["name"], perm.get("read_only") is True
        where = " or ".join(p.removesuffix("/**") for p in _paths(name))
        if not read_only and not _writes(policy, name):
            extra = " (it allows withdrawals and transfers)" if name == "wallet" else ""
            if name in ALWAYS_READ or _used(policy.allow_rules, name, write=False):
                fix = f"set {name!r} to read-only"
            else:
                fix = f"remove {name!r}"
            problems.append(
                f"permission {name!r} is read-write{extra}, but the policy of "
                f"{policy.name} writes nothing under {where}: on Gate, {fix}"
            )
        elif name not in ALWAYS_READ and not _used(policy.allow_rules, name, write=False):
            if not _writes(policy, name):
                problems.append(
                    f"permission {name!r} is granted, but the policy of {policy.name} uses "
                    f"nothing under {where}: on Gate, remove {name!r}"
                )
    return KeyScope(not problems, tuple(problems))
