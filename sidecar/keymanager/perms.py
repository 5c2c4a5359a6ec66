"""Which permissions a managed key gets, and what differs at Gate: pure functions.

The least a policy needs is found with the sidecar's own self-check verdict
(:func:`sidecar.policy.keyscope.judge`): a permission is granted read-write when the verdict
accepts it read-write, read-only when it accepts only that, and not at all otherwise. So the key
the manager mints always passes the self-check of the sidecar that runs it, by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.policy.engine import Policy
from sidecar.policy.keyscope import judge

#: Gate's permission names (API v4 docs, "Sub-account API keys").
PERM_NAMES = (
    "wallet",
    "spot",
    "futures",
    "delivery",
    "earn",
    "custody",
    "options",
    "account",
    "loan",
    "margin",
    "unified",
    "copy",
)

Perms = dict[str, bool]  # permission name -> read_only


def _accepted(policy: Policy, name: str, read_only: bool) -> bool:
    info = {
        "state": 1,
        "ip_whitelist": ["192.0.2.1"],
        "perms": [{"name": name, "read_only": read_only}],
    }
    return judge(policy, info).ok


def least_perms(policy: Policy) -> Perms:
    """The narrowest permissions ``policy`` needs (``account`` read is always among them: the
    sidecar's canary and self-check read it)."""
    perms: Perms = {}
    for name in PERM_NAMES:
        if name != "wallet" and _accepted(policy, name, read_only=False):
            perms[name] = False
        elif _accepted(policy, name, read_only=True):
            perms[name] = True
    return perms


def too_wide(policy: Policy, perms: Perms) -> list[str]:
    """Why ``perms`` are wider than ``policy`` needs (empty: they are not); a read-write
    ``wallet`` is refused whatever the policy says."""
    problems = []
    if perms.get("wallet") is False:
        problems.append("'wallet' read-write is never minted (it moves funds)")
    info = {
        "state": 1,
        "ip_whitelist": ["192.0.2.1"],
        # a read-write wallet is reported above, once
        "perms": [{"name": n, "read_only": ro} for n, ro in perms.items() if ro or n != "wallet"],
    }
    problems += list(judge(policy, info).problems)
    return problems


def as_body(perms: Perms) -> list[dict[str, Any]]:
    return [{"name": name, "read_only": ro} for name, ro in sorted(perms.items())]


def from_answer(value: Any) -> Perms:
    """Gate's ``perms`` list as a mapping (unreadable entries are skipped)."""
    out: Perms = {}
    if isinstance(value, list):
        for perm in value:
            if isinstance(perm, dict) and isinstance(perm.get("name"), str):
                out[perm["name"]] = perm.get("read_only") is True
    return out


@dataclass(frozen=True)
class Drift:
    changes: tuple[str, ...]  # what differs, one line each; empty: none

    @property
    def any(self) -> bool:
        return bool(self.changes)


def drift(want_perms: Perms, want_ips: Sequence[str], key: dict[str, Any]) -> Drift:
    """What differs between the configured key and Gate's ``key`` object."""
    have = from_answer(key.get("perms"))
    changes = []
    for name in sorted(set(have) | set(want_perms)):
        if name not in want_perms:
            changes.append(f"perm {name}: remove")
        elif name not in have:
            changes.append(
                f"perm {name}: add ({'read-only' if want_perms[name] else 'read-write'})"
            )
        elif have[name] != want_perms[name]:
            changes.append(f"perm {name}: {'read-only' if want_perms[name] else 'read-write'}")
    ips = key.get("ip_whitelist")
    have_ips = sorted(ips) if isinstance(ips, list) else []
    if have_ips != sorted(want_ips):
        changes.append(
            f"ip_whitelist: {','.join(have_ips) or '-'} -> {','.join(sorted(want_ips)) or '-'}"
        )
    return Drift(tuple(changes))
