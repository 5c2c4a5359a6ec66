"""Whether a newly fetched pair may replace the one a key holds (the canary check).

Switching to a key Gate rejects would fail every order until someone notices, so a rotation is
only taken after one signed read-only call with the new pair succeeds. The first load is taken
without a canary: there is nothing older to fall back to, and refusing it would only keep the key
at 503 (its requests then fail at Gate with the same label the canary would have seen).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sidecar.credentials.slot import Credentials, KeySlot, fingerprint

log = logging.getLogger("sidecar.rotation")


@dataclass(frozen=True)
class CanaryResult:
    ok: bool
    detail: str


def canary_verdict(status: int, label: str | None) -> CanaryResult:
    """Pure: does Gate's answer to the canary call accept the new pair?"""
    if status < 400:
        return CanaryResult(True, f"HTTP {status}")
    if label == "FORBIDDEN" or label == "READ_ONLY":
        # The key is valid; it merely lacks permission for the canary endpoint.
        return CanaryResult(True, f"HTTP {status} {label} (key valid)")
    return CanaryResult(False, f"HTTP {status} {label or 'no label'}")


Canary = Callable[[str, Credentials], Awaitable[CanaryResult]]
RotationListener = Callable[[str, str, str], None]  # (key name, event, detail)


class Rotation:
    """Installs pairs into slots, running the canary before replacing a held pair."""

    def __init__(self, canary: Canary | None = None, vet: Canary | None = None) -> None:
        self.canary = canary
        # A second check of a rotated pair, after the canary (the key self-check): a pair it
        # refuses is not installed and the held one keeps serving.
        self.vet = vet
        self.listeners: list[RotationListener] = []

    def _emit(self, key: str, event: str, detail: str) -> None:
        for listener in self.listeners:
            listener(key, event, detail)

    async def offer(self, slot: KeySlot, creds: Credentials, *, use_canary: bool = True) -> bool:
        """Install ``creds`` unless the canary (or the vet) rejects them. True when installed (or
        unchanged)."""
        held = slot.credentials
        if held is not None and held.version == creds.version and held.api_key == creds.api_key:
            slot.confirm()
            return True
        if held is not None and use_canary:
            # (check, what its refusal is called in the slot, the log and the event)
            checks = (
                (self.canary, "rejected by canary", "canary rejected the new key", "canary"),
                (self.vet, "refused", "the new key is wider than its policy needs", "self_check"),
            )
            for check, refused, why, event in checks:
                result = CanaryResult(True, "") if check is None else await check(slot.name, creds)
                if not result.ok:
                    slot.note_error(f"new version {creds.version} {refused}: {result.detail}")
                    log.warning(
                        f"rotation refused: {why}",
                        extra={"key": slot.name, "version": creds.version, "detail": result.detail},
                    )
                    self._emit(slot.name, f"{event}_rejected", result.detail)
                    return False
        slot.install(creds)
        log.info(
            "credentials installed",
            extra={
                "key": slot.name,
                "version": creds.version,
                "key_fp": fingerprint(creds.api_key),
                "previous_version": None if held is None else held.version,
            },
        )
        self._emit(slot.name, "installed" if held is None else "rotated", creds.version)
        return True

    def revoke(self, slot: KeySlot, reason: str, error: str = "") -> None:
        if slot.ready:
            log.warning("credentials revoked", extra={"key": slot.name, "reason": reason})
            self._emit(slot.name, "revoked", reason)
        elif slot.reason != reason:
            # Still nothing usable, for a new reason: say so once, not at every poll.
            log.warning(
                "no usable credentials", extra={"key": slot.name, "reason": reason, "error": error}
            )
        slot.revoke(reason)
