"""Starting, retuning and stopping clock sync as the config asks."""

from __future__ import annotations

from sidecar.config.models import ClockConfig
from sidecar.gate.clock import Clock
from sidecar.ops.clocksync import ClockSync
from sidecar.proxy.forwarder import Forwarder
from sidecar.proxy.record import Observer

FIRST_CLOCK_SYNC_S = 5.0  # start-up waits at most this long for the first clock measurement


class ClockKeeper:
    def __init__(self, clock: Clock, forwarder: Forwarder, upstream_timeout_s: float) -> None:
        self.clock = clock
        self.forwarder = forwarder
        self.first_timeout_s = min(FIRST_CLOCK_SYNC_S, upstream_timeout_s)
        self.sync: ClockSync | None = None

    async def configure(self, cfg: ClockConfig) -> None:
        """Start, stop or retune clock sync to match ``cfg``."""
        if cfg.sync and self.sync is None:
            self.sync = ClockSync(self.clock, self.forwarder, cfg)
            await self.sync.start(self.first_timeout_s)
        elif cfg.sync and self.sync is not None:
            self.sync.reconfigure(cfg)
        elif not cfg.sync and self.sync is not None:
            await self.sync.stop()
            self.sync = None
            self.clock.offset_s = 0.0  # sync is off: sign with the local clock, as configured

    @property
    def observer(self) -> Observer | None:
        """Watches relayed answers for signs of drift (None while sync is off)."""
        return self.sync.observe if self.sync is not None else None

    def counts(self) -> tuple[int, int] | None:
        return None if self.sync is None else (self.sync.successes, self.sync.failures)

    async def close(self) -> None:
        if self.sync is not None:
            await self.sync.stop()
            self.sync = None
