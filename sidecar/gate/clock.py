"""The time the sidecar signs with: local time corrected by the measured offset to Gate's clock."""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall  # the local clock, uncorrected
        self.offset_s = 0.0  # Gate's clock minus ours; set by clock sync (sidecar.ops.clocksync)

    def now(self) -> int:
        """Integer seconds: the safe choice for Gate's ``Timestamp``."""
        return int(self.wall() + self.offset_s)
