"""Keeping :attr:`Clock.offset_s` equal to Gate's clock minus ours.

Gate refuses a ``Timestamp`` more than 60 s from its own clock (``REQUEST_EXPIRED``). A host whose
clock has drifted (no NTP in a container, a VM resumed from suspend) would then fail every signed
request, so the sidecar signs with Gate's time instead: local time plus an offset measured with the
public ``GET /api/v4/spot/time`` (``{"server_time": <ms>}``).

When: once at start (before the key listeners open, bounded in time), every ``clock.interval_s``,
and at once (rate-limited) after a relayed response labelled ``REQUEST_EXPIRED`` or one whose
``Date`` header disagrees with the corrected clock by more than :data:`DATE_DRIFT_S`. ``Date`` has
one-second resolution, so it only *detects* drift; the measurement always uses ``/spot/time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from sidecar.aio import cancel_and_wait
from sidecar.config.models import ClockConfig
from sidecar.errors import SidecarError
from sidecar.gate.clock import SERVER_TIME_PATH, Clock, offset_from_server_time, parse_http_date
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest
from sidecar.proxy.record import RequestRecord

log = logging.getLogger("sidecar.clock")

DATE_DRIFT_S = 3.0  # a Date header further than this from the corrected clock asks for a sync
DATE_TRIGGER_GAP_S = 60.0  # Date-triggered syncs at most this often (a proxy may rewrite Date)
MIN_TRIGGER_GAP_S = 1.0  # any triggered sync at most this often (a burst of REQUEST_EXPIRED)
RETRY_S = 10.0  # next try after a failed measurement (or interval_s, if shorter)


class ClockSyncError(Exception):
    """The time endpoint could not be read; the held offset stays in use."""


class ClockSync:
    """Measures the offset, sets it on the shared :class:`Clock`, and keeps it current."""

    def __init__(
        self,
        clock: Clock,
        forwarder: Forwarder,
        config: ClockConfig,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.forwarder = forwarder
        self.config = config
        self._monotonic = monotonic
        self._wake = asyncio.Event()
        self._last_attempt = -math.inf
        self._last_ok = False
        self._date_cache: tuple[str, float | None] = ("", None)
        self._task: asyncio.Task[None] | None = None
        # Counts for /metrics; the last failure for anyone diagnosing a stuck clock.
        self.successes = 0
        self.failures = 0
        self.last_error: str | None = None

    # -- measuring ----------------------------------------------------------------------------
    async def _measure(self) -> tuple[float, float]:
        request = UpstreamRequest(
            "GET", SERVER_TIME_PATH, "", [("Accept", "application/json")], b""
        )
        sent = self.clock.wall()
        resp = await self.forwarder.send(request)
        received = self.clock.wall()
        if resp.status != 200:
            raise ClockSyncError(f"{SERVER_TIME_PATH} answered HTTP {resp.status}")
        try:
            offset = offset_from_server_time(resp.body, sent, received)
        except ValueError as exc:
            raise ClockSyncError(f"{SERVER_TIME_PATH}: unexpected answer ({exc})") from None
        return offset, received - sent

    async def sync_once(self) -> bool:
        """One measurement; True when the offset was updated. Never raises (but cancellation)."""
        self._last_attempt = self._monotonic()
        try:
            offset, rtt = await self._measure()
        except (ClockSyncError, SidecarError) as exc:
            return self._failed(str(exc))
        except Exception:
            log.exception("clock sync crashed")
            return self._failed("internal error")
        previous = self.clock.offset_s
        self.clock.offset_s = offset
        self.successes += 1
        self.last_error = None
        self._last_ok = True
        extra = {"offset_s": round(offset, 3), "rtt_s": round(rtt, 3)}
        if abs(offset) > self.config.warn_offset_s:
            log.warning(
                "local clock differs from Gate's; signing with Gate's time",
                extra={**extra, "warn_offset_s": self.config.warn_offset_s},
            )
        elif self.successes == 1 or abs(offset - previous) > 1.0:
            log.info("clock offset to Gate measured", extra=extra)
        else:
            log.debug("clock offset to Gate measured", extra=extra)
        return True

    def _failed(self, error: str) -> bool:
        self.failures += 1
        self.last_error = error
        self._last_ok = False
        log.warning(
            "clock sync failed; keeping the previous offset",
            extra={"error": error, "offset_s": round(self.clock.offset_s, 3)},
        )
        return False

    # -- triggers -----------------------------------------------------------------------------
    def trigger(self, reason: str) -> None:
        """Measure again soon (at most every MIN_TRIGGER_GAP_S)."""
        if not self._wake.is_set():
            log.info("clock sync requested", extra={"reason": reason})
            self._wake.set()

    def _date(self, header: str) -> float | None:
        # Date changes once a second while requests arrive far more often: parse each value once.
        if self._date_cache[0] != header:
            self._date_cache = (header, parse_http_date(header))
        return self._date_cache[1]

    def observe(self, record: RequestRecord) -> None:
        """Request observer: resync after REQUEST_EXPIRED, or when Gate's Date header drifts."""
        if record.label == "REQUEST_EXPIRED":
            self.trigger("Gate answered REQUEST_EXPIRED")
            return
        if record.upstream_date is None:
            return
        gate = self._date(record.upstream_date)
        if gate is None:
            return
        # Date is truncated to the second: Gate's time was somewhere in [Date, Date + 1).
        drift = gate + 0.5 - (self.clock.wall() + self.clock.offset_s)
        recent = self._monotonic() - self._last_attempt < DATE_TRIGGER_GAP_S
        if abs(drift) > DATE_DRIFT_S and not recent:
            self.trigger(f"Gate's Date header is {drift:+.0f}s from the corrected clock")

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, first_timeout_s: float) -> None:
        """Measure once (waiting at most ``first_timeout_s``), then keep measuring in a task."""
        try:
            await asyncio.wait_for(self.sync_once(), timeout=first_timeout_s)
        except TimeoutError:
            self._failed(f"no answer from {SERVER_TIME_PATH} within {first_timeout_s:g}s")
        self._task = asyncio.create_task(self._run(), name="clock-sync")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def reconfigure(self, config: ClockConfig) -> None:
        self.config = config
        self.trigger("configuration reloaded")

    async def _run(self) -> None:
        while True:
            delay = self.config.interval_s
            if not self._last_ok:
                delay = min(delay, RETRY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            gap = MIN_TRIGGER_GAP_S - (self._monotonic() - self._last_attempt)
            if gap > 0:
                await asyncio.sleep(gap)
            self._wake.clear()
            await self.sync_once()
