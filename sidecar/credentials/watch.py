"""Telling long-lived users of a key (WebSocket sessions) that its credentials changed.

A REST request reads the slot once and is done; a WebSocket session lives for hours and must
learn of a rotation or a revocation while it runs. :class:`CredentialWatch` is a rotation
listener (:attr:`sidecar.credentials.rotation.Rotation.listeners`) that fans each event out to
the subscribers of that key, by name, so a slot swapped by a config reload keeps its watchers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("sidecar.rotation")

#: Called with (event, detail): installed, rotated, canary_rejected, revoked, swapped.
Watcher = Callable[[str, str], None]

# A config reload gave the key a new slot (KeySet.swap_secret): read it again.
SWAPPED = "swapped"


class CredentialWatch:
    def __init__(self) -> None:
        self._watchers: dict[str, list[Watcher]] = {}

    def subscribe(self, key: str, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher`` on every event of ``key``; returns the unsubscribe function."""
        self._watchers.setdefault(key, []).append(watcher)

        def unsubscribe() -> None:
            watchers = self._watchers.get(key, [])
            if watcher in watchers:
                watchers.remove(watcher)

        return unsubscribe

    def watchers(self, key: str) -> int:
        return len(self._watchers.get(key, []))

    def __call__(self, key: str, event: str, detail: str) -> None:
        """The rotation listener: one event of one key to each of its watchers."""
        for watcher in list(self._watchers.get(key, [])):
            try:
                watcher(event, detail)
            except Exception:  # one session's bug must not stop a rotation or the others
                log.exception("credential watcher failed", extra={"key": key})
