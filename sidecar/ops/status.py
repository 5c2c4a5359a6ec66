"""What the admin listener and /metrics may read of the running sidecar: a typed view.

The runtime implements :class:`SidecarView` (and :class:`BrakeSwitch`, the admin listener's only
write); operations code depends on these protocols only, so it never reaches into the runtime's
objects or aiohttp's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sidecar.proxy.deadman import ScopeStatus
from sidecar.vault.session import VaultStatus


@dataclass(frozen=True)
class KeyStatus:
    name: str
    listen: str  # as configured
    url: str | None  # where the listener answers; None when it is not open
    open_connections: int
    ready: bool  # holds a secret it may sign with now
    problem: str | None  # why it may not (names keys and reasons, never secrets)
    version: str | None  # the secret's version; None when there is none
    age_s: float
    stale_s: float
    slot: dict[str, object]  # the slot's status as /readyz shows it
    cancel_only: bool = False  # the emergency brake is on
    budget_fallback: bool | None = None  # rate budget on its local share (None: no shared one)
    dead_man: tuple[ScopeStatus, ...] = ()  # each dead-man scope's countdown
    windows_fallback: bool | None = None  # shared windows on the local share (None: not shared)
    mode: str = "enforce"  # enforce | warn


class SidecarView(Protocol):
    def key_statuses(self) -> list[KeyStatus]:
        """Every configured key, in config order (a key whose start failed included)."""
        ...

    @property
    def clock_offset_s(self) -> float: ...

    def clock_sync_counts(self) -> tuple[int, int] | None:
        """(successes, failures) of clock sync; None when it is off."""
        ...

    def vault_status(self) -> VaultStatus | None:
        """None when no key uses Vault."""
        ...


class BrakeSwitch(Protocol):
    """The one thing the admin listener may change: a key's cancel-only brake."""

    def switch_cancel_only(self, name: str, on: bool, by: str) -> bool | None:
        """Engage (``on``) or lift a key's cancel-only brake; None when there is no such key,
        else whether anything changed."""
        ...
