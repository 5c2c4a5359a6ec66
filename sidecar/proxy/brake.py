"""The cancel-only brake of one key: on, only reads, cancels and position closes pass.

Switched by the config (``guards.cancel_only``), by ``POST``/``DELETE /keys/{name}/cancel-only``
on the admin listener, and by SIGUSR1 (on, for every key). A config reload keeps the switch as
it is unless the file's value changed, which then applies (:meth:`Brake.configure`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("sidecar.guards")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class Brake:
    key: str
    configured: bool = False  # the config file's value, as last applied
    engaged: bool = False
    by: str = "config"  # who switched it last: config, admin, SIGUSR1
    since: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.engaged = self.configured

    def why(self) -> str | None:
        """None when off; else who switched it on and when, for refusal messages."""
        if not self.engaged:
            return None
        return f"switched on by {self.by} at {_iso(self.since)}"

    def switch(self, on: bool, by: str) -> bool:
        """Engage or lift; True when that changed anything."""
        if on == self.engaged:
            return False
        self.engaged, self.by, self.since = on, by, time.time()
        log.warning(
            "cancel-only brake engaged" if on else "cancel-only brake lifted",
            extra={"key": self.key, "by": by},
        )
        return True

    def configure(self, configured: bool) -> None:
        """A reload: the file's value applies only when it changed."""
        if configured != self.configured:
            self.configured = configured
            self.switch(configured, "config")
