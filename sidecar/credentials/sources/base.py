"""What every source shares: the poll loop (interval, backoff, wake-up) and the kind record that
registers a source with the config and the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from sidecar.aio import backoff_s, jittered
from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import KeySlot
from sidecar.errors import SourceError
from sidecar.settings import Strict

if TYPE_CHECKING:
    from sidecar.vault.session import VaultSession

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
            cap = self.max_backoff_s
            if self.interval_s is not None:
                cap = min(cap, self.interval_s)
            return backoff_s(failures, cap)
        if self.interval_s is None:
            return None
        return jittered(self.interval_s)


@dataclass(frozen=True)
class SourceContext:
    """What a source may need from the running process besides its own settings."""

    environ: Mapping[str, str]
    vault: VaultSession | None = None  # open when some key's source needs Vault


SpecT = TypeVar("SpecT", bound=Strict)


@dataclass(frozen=True)
class SourceKind(Generic[SpecT]):
    """One kind of secret source, as the config file names it (``source: {<name>: {...}}``).

    A new kind is one module defining its settings model, its :class:`Source` and one of these,
    plus one line in :mod:`sidecar.credentials.sources.registry`.
    """

    name: str
    spec: type[SpecT]  # the settings model of ``source.<name>``
    build: Callable[[SpecT, KeySlot, Rotation, SourceContext], Source]
    describe: Callable[[SpecT], str]  # one line for check-config
    needs_vault: bool = False  # the config then requires a vault: section
    # What stops `serve` and `check-config` at once, before anything starts: a problem no retry
    # can fix (an environment cannot change under a running process). None: nothing to check.
    preflight: Callable[[SpecT, Mapping[str, str]], str | None] | None = None
