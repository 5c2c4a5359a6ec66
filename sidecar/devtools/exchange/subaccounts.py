"""Sub-account API keys as Gate keeps them: the exchange's state for the key endpoints.

Facts modelled (API v4 docs, "Sub-account API keys"; gate-api 7.2.161 ``SubAccountKey``): a key
is minted by a main-account key with ``POST /sub_accounts/{user_id}/keys`` and its secret appears
in that answer only; ``PUT`` replaces the whole object (an omitted ``perms`` or ``ip_whitelist``
is cleared); a change takes a while to take effect (5 minutes at Gate, ``activation_delay_s``
here); each signed request updates ``last_access``; at most 20 keys per account; a locked
sub-account's keys are refused; the IP whitelist is matched against the caller's address as Gate
sees it (``source_address``, or the TCP peer when unset).

Faults for the tests (``faults``): answer a status instead of handling a call, before or after
the call took effect (a 5xx after a create is the ambiguous case a client must survive).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

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
MAX_KEYS = 20  # per account
MAX_WHITELIST = 20
GATE_ACTIVATION_S = 300.0  # "changes take up to 5 minutes to take effect"


# The permission a path needs (API v4 docs, "Sub-account API keys"; spot covers margin, wallet
# covers withdrawals); any other product's permission is named after its path segment.
PATH_PERMS = {"margin": "spot", "withdrawals": "wallet", "sub_accounts": "account"}


def needed_perm(raw_path: str) -> str:
    segment = raw_path.removeprefix("/api/v4/").split("/", 1)[0]
    return PATH_PERMS.get(segment, segment)


class SubKeyRefused(Exception):
    """A signed request with a sub-account key that Gate would refuse; ``label`` is Gate's."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label, self.message = label, message


@dataclass
class SubKey:
    user_id: int
    mode: int
    name: str
    perms: list[dict[str, Any]]
    ip_whitelist: list[str]
    key: str
    secret: str = field(repr=False)  # only ever in the create answer
    created_at: int
    updated_at: int
    last_access: int
    active_at: float  # exchange time from which the key signs (activation delay)
    state: int = 1  # 1 normal

    def doc(self, locked: bool) -> dict[str, Any]:
        """The key as Gate answers it (never the secret)."""
        return {
            "user_id": self.user_id,
            "mode": self.mode,
            "name": self.name,
            "perms": [dict(p) for p in self.perms],
            "ip_whitelist": list(self.ip_whitelist),
            "key": self.key,
            "state": 2 if locked else self.state,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_access": self.last_access,
        }


@dataclass
class Fault:
    """Answer ``status`` to ``count`` calls of ``method`` on paths matching ``path`` (a regex
    over the raw path); ``after``: the call takes effect first, then the error is answered.
    ``delay_s``: wait that long first (a client's timeout), then handle the call as usual."""

    method: str
    path: str
    status: int = 500
    count: int = 1
    after: bool = False
    delay_s: float = 0.0

    @property
    def label(self) -> str:
        return "TOO_MANY_REQUESTS" if self.status == 429 else "SERVER_ERROR"

    def matches(self, method: str, raw_path: str) -> bool:
        return (
            self.count > 0 and method == self.method and re.search(self.path, raw_path) is not None
        )


@dataclass
class SubAccounts:
    activation_delay_s: float = 0.0  # GATE_ACTIVATION_S at Gate; seconds in tests
    source_address: str | None = None  # the caller's address as Gate sees it (None: TCP peer)
    max_keys: int = MAX_KEYS
    keys: dict[str, SubKey] = field(default_factory=dict)
    locked: set[int] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    deleted: dict[str, SubKey] = field(default_factory=dict)  # by key id, in deletion order

    def new_key_id(self) -> tuple[str, str]:
        return secrets.token_hex(16), secrets.token_hex(32)

    def of(self, user_id: int) -> list[SubKey]:
        return [k for k in self.keys.values() if k.user_id == user_id]

    def fault(self, method: str, raw_path: str, *, after: bool) -> Fault | None:
        for fault in self.faults:
            if fault.after == after and fault.matches(method, raw_path):
                fault.count -= 1
                return fault
        return None

    def admit(
        self, api_key: str, peer: str | None, now: float, method: str = "GET", raw_path: str = ""
    ) -> None:
        """A verified request signed with ``api_key``: refuse it as Gate would (not active yet,
        locked, caller not whitelisted, permission missing or read-only), or note its access.
        Keys that are not sub-account keys pass untouched."""
        key = self.keys.get(api_key)
        if key is None:
            return
        if now < key.active_at:
            raise SubKeyRefused("INVALID_KEY", "Invalid key provided")
        if key.user_id in self.locked or key.state != 1:
            raise SubKeyRefused("ACCOUNT_LOCKED", "Account has been locked")
        source = self.source_address or peer or ""
        if key.ip_whitelist and source not in key.ip_whitelist:
            raise SubKeyRefused("IP_FORBIDDEN", f"IP {source} is not in the key's whitelist")
        key.last_access = int(now)
        perm = needed_perm(raw_path)
        granted = {p["name"]: p["read_only"] for p in key.perms}
        if raw_path and perm in PERM_NAMES and perm not in granted:
            raise SubKeyRefused("FORBIDDEN", f"the key has no {perm!r} permission")
        if raw_path and granted.get(perm) is True and method not in ("GET", "HEAD"):
            raise SubKeyRefused("READ_ONLY", f"the key's {perm!r} permission is read-only")
