"""The loop every source shares: poll, back off on errors, wake early on demand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from typing import ClassVar

from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import KeySlot
from sidecar.errors import SourceError

log = logging.getLogger("sidecar.sources")


class Source(ABC):
    """Keeps ``slot`` current. :meth:`run` is a long-lived task, cancelled at shutdown."""

    kind: ClassVar[str]
    #: seconds between polls; ``None`` means load once and never poll again.
    interval_s: float | None = None
    max_backoff_s: float = 30.0

    def __init__(self, slot: KeySlot, rotation: Rotation) -> None:
        self.slot = slot
        self.rotation = rotation
        self._wake = asyncio.Event()
        self.loaded = asyncio.Event()  # set after the first successful poll
        self.attempted = asyncio.Event()  # set after the first poll, successful or not

    @abstractmethod
    async def poll(self) -> None:
        """One check of the backend. Raise :class:`SourceError` when the backend cannot answer:
        the held pair keeps serving and the loop backs off."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release backend resources (override when there are any)."""

    def refresh_now(self) -> None:
        """Poll at once instead of waiting for the interval (SIGHUP)."""
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self.poll()
                failures = 0
                self.loaded.set()
            except SourceError as exc:
                failures += 1
                self.slot.note_error(str(exc))
                log.warning(
                    "secret source error",
                    extra={"key": self.slot.name, "source": self.kind, "error": str(exc)},
                )
            except Exception:
                # A bug in a source must not kill the key's refresh loop forever.
                failures += 1
                self.slot.note_error("internal error in secret source")
                log.exception("secret source crashed", extra={"key": self.slot.name})
            self.attempted.set()
            delay = self._next_delay(failures)
            if delay is None:
                return
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # lands just as the event is set, and the cancelled loop would then poll forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _next_delay(self, failures: int) -> float | None:
        if failures:
            # Exponential backoff from 0.5 s, capped, jittered so many sidecars don't stampede.
            base = min(self.max_backoff_s, 0.5 * 2.0 ** (failures - 1))
            if self.interval_s is not None:
                base = min(base, self.interval_s)
            return base * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not crypto
        if self.interval_s is None:
            return None
        return self.interval_s * random.uniform(0.9, 1.0)  # noqa: S311
