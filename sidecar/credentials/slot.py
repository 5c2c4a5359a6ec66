"""Per-key credential slots: the one place a key's current (api_key, signer, version) lives.

A request reads the slot once (:meth:`KeySlot.current`) and signs with that whole pair, so a
rotation can never mix a new key with an old secret, and in-flight requests finish with the pair
they started with: swapping is a single reference assignment on the event loop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sidecar.errors import KeyUnavailable
from sidecar.gate.signing import Signer


def fingerprint(api_key: str) -> str:
    """A short, stable, non-reversible id for an API key, safe for logs and metrics."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str = field(repr=False)
    signer: Signer = field(repr=False)
    version: str = "unknown"

    def __repr__(self) -> str:
        return f"Credentials(key_fp={fingerprint(self.api_key)}, version={self.version!r})"


class KeySlot:
    """Holds one key's credentials and knows whether they are usable.

    States: *empty* (nothing loaded yet, or revoked) -> 503; *fresh* (the source confirmed the pair
    recently); *stale* (the source cannot reach its backend: keep signing, but report how stale,
    and refuse once ``max_stale_s`` is exceeded, if set).
    """

    def __init__(
        self,
        name: str,
        max_stale_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.max_stale_s = max_stale_s
        self._now = monotonic
        self._creds: Credentials | None = None
        self._confirmed_at: float | None = None
        self._installed_at: float | None = None
        self.reason = "no secret loaded yet"
        self.last_error: str | None = None
        self.held: str | None = None  # why the held pair may not sign (the key self-check)

    # -- read side (hot path) -------------------------------------------------------------
    def current(self) -> Credentials:
        creds = self._creds
        if creds is None:
            raise KeyUnavailable(f"key {self.name} has no usable secret ({self.reason})")
        if self.held is not None:
            raise KeyUnavailable(f"key {self.name} is held: {self.held}")
        if self.max_stale_s is not None and self.stale_seconds > self.max_stale_s:
            raise KeyUnavailable(
                f"key {self.name}: secret not confirmed for {self.stale_seconds:.0f}s "
                f"(max_stale_s={self.max_stale_s:g})"
            )
        return creds

    @property
    def ready(self) -> bool:
        return self._creds is not None

    @property
    def version(self) -> str | None:
        return None if self._creds is None else self._creds.version

    @property
    def credentials(self) -> Credentials | None:
        return self._creds

    @property
    def stale_seconds(self) -> float:
        """Seconds since the source last confirmed the held pair (0 when fresh or empty)."""
        if self._confirmed_at is None:
            return 0.0
        return max(0.0, self._now() - self._confirmed_at)

    @property
    def age_seconds(self) -> float:
        """Seconds since the held pair was installed."""
        return 0.0 if self._installed_at is None else self._now() - self._installed_at

    # -- write side (sources) -------------------------------------------------------------
    def install(self, creds: Credentials) -> None:
        self._creds = creds
        now = self._now()
        self._installed_at = now
        self._confirmed_at = now
        self.reason = "loaded"
        self.last_error = None

    def confirm(self) -> None:
        """The source checked its backend and the held pair is still current."""
        if self._creds is not None:
            self._confirmed_at = self._now()
        self.last_error = None

    def note_error(self, message: str) -> None:
        """The source could not check its backend; the held pair (if any) keeps serving."""
        self.last_error = message
        if self._creds is None:
            self.reason = message

    def hold(self, reason: str) -> None:
        """Keep the pair but refuse to sign with it (503) until :meth:`release`."""
        self.held = reason

    def release(self) -> None:
        self.held = None

    def revoke(self, reason: str) -> None:
        self._creds = None
        self._confirmed_at = None
        self._installed_at = None
        self.reason = reason

    def status(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "version": self.version,
            "reason": self.reason,
            "stale_s": round(self.stale_seconds, 1),
            "last_error": self.last_error,
            "held": self.held,
        }
