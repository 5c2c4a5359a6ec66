"""The dead-man switch of one key: Gate's ``countdown_cancel_all``, kept armed while the bot is
alive, so that Gate cancels the open orders of each scope when the bot, the sidecar or its pod
dies.

For each scope (``spot``, ``options``, ``futures/<settle>``) the sidecar sends, signed with the
key's pair and spending the key's rate budget for cancels, ``POST .../countdown_cancel_all
{"timeout": timeout_s}``: Gate cancels every open order of that product unless the countdown is
renewed within ``timeout_s``. The sidecar renews it at most every third of the timeout
(:attr:`~sidecar.proxy.deadman.settings.DeadManConfig.rearm_s`) and only when the bot showed
life since the last arm (:meth:`DeadMan.alive`: any request or frame, or only heartbeats), and
at once when the bot shows life after a quiet spell. So the orders are cancelled no later than
``timeout_s`` plus one re-arm interval after the bot's last sign of life, and a bot that never
falls silent for ``timeout_s`` is never cancelled.

When Gate cannot be reached (or refuses), the arm is retried with a growing pause (at most the
re-arm interval), logged, and shown in /readyz and /metrics (:meth:`DeadMan.status`). The
cancel-only brake does not stop it: the switch is the sidecar's own call, and a braked bot's
cancels and reads still count as life.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sidecar.aio import cancel_and_wait
from sidecar.credentials.slot import KeySlot
from sidecar.errors import RateLimited, SidecarError
from sidecar.gate.clock import Clock
from sidecar.gate.signing import signed_headers
from sidecar.proxy.budget import KeyBudget
from sidecar.proxy.deadman.settings import Alive, DeadManConfig, OnShutdown
from sidecar.proxy.forwarder import Forwarder, UpstreamRequest

log = logging.getLogger("sidecar.deadman")

FIRST_RETRY_S = 0.5
STOP_TIMEOUT_S = 5.0  # for the disarm calls of on_shutdown: keep


def countdown_path(scope: str) -> str:
    """Gate's countdown endpoint for a scope (gate-api: ``countdown_cancel_all_spot``,
    ``countdown_cancel_all_futures``, ``countdown_cancel_all_options``)."""
    if scope in ("spot", "options"):
        return f"/api/v4/{scope}/countdown_cancel_all"
    product, _, settle = scope.partition("/")
    return f"/api/v4/{product}/{settle}/countdown_cancel_all"


class DeadManKey(Protocol):
    """What the switch reads of its key (:class:`sidecar.proxy.pipeline.KeyRuntime` is one)."""

    name: str
    slot: KeySlot
    forwarder: Forwarder
    clock: Clock
    budget: KeyBudget | None


@dataclass(frozen=True)
class ScopeStatus:
    scope: str
    armed: bool
    fires_in_s: float | None  # None when not armed
    error: str | None  # the last arm's failure, while it has not succeeded since


@dataclass
class _Scope:
    scope: str
    path: str
    wake: asyncio.Event
    last_arm: float | None = None  # monotonic start of the last successful arm
    fires_at: float | None = None  # monotonic: when Gate's countdown runs out
    failures: int = 0
    retry_at: float = 0.0
    error: str | None = None


class ArmFailed(Exception):
    """An arm did not succeed; the message says why (never a secret)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadMan:
    def __init__(
        self,
        key: DeadManKey,
        config: DeadManConfig,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key, self.config = key, config
        self._now = monotonic
        self._last_alive: float | None = None
        self._scopes = [_Scope(s, countdown_path(s), asyncio.Event()) for s in config.scopes]
        self._tasks: list[asyncio.Task[None]] = []

    # -- signs of life ------------------------------------------------------------------------
    def seen(self) -> None:
        """A request or frame of the bot passed client authentication."""
        if self.config.alive is Alive.TRAFFIC:
            self.alive()

    def heartbeat(self) -> None:
        """``POST /sidecar/v1/heartbeat`` (counts whatever ``alive`` says)."""
        self.alive()

    def alive(self) -> None:
        now = self._now()
        for scope in self._scopes:
            # A scope already waiting for its re-arm time needs no wake-up (one per request
            # would be wasted); one idle since its last arm must schedule the next.
            if not self._pending(scope) or now - (scope.last_arm or now) >= self.config.rearm_s:
                scope.wake.set()
        self._last_alive = now

    # -- the loop -----------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(scope), name=f"dead-man:{self.key.name}:{scope.scope}")
            for scope in self._scopes
        ]

    def _pending(self, scope: _Scope) -> bool:
        alive = self._last_alive
        return alive is not None and (scope.last_arm is None or alive >= scope.last_arm)

    def _due(self, scope: _Scope, now: float) -> float:
        if scope.failures:
            return scope.retry_at
        if scope.last_arm is None or scope.fires_at is None or now >= scope.fires_at:
            return now
        return scope.last_arm + self.config.rearm_s

    async def _run(self, scope: _Scope) -> None:
        while True:
            now = self._now()
            wait: float | None = None
            if self._pending(scope):
                due = self._due(scope, now)
                if now >= due:
                    await self._arm_once(scope, now)
                    continue
                wait = due - now
            scope.wake.clear()
            try:
                await asyncio.wait_for(scope.wake.wait(), wait)
            except TimeoutError:
                pass

    async def _arm_once(self, scope: _Scope, started: float) -> None:
        try:
            await self._send(scope, self.config.timeout_s)
        except ArmFailed as exc:
            scope.failures += 1
            pause = min(self.config.rearm_s, FIRST_RETRY_S * 2 ** (scope.failures - 1))
            if exc.retry_after_s is not None:
                pause = max(pause, exc.retry_after_s)
            scope.retry_at = self._now() + pause
            if scope.error != str(exc) or scope.failures in (1, 10, 100):
                log.warning(
                    "dead-man switch: cannot arm the countdown; retrying",
                    extra={
                        "key": self.key.name,
                        "scope": scope.scope,
                        "error": str(exc),
                        "failures": scope.failures,
                        "retry_in_s": round(pause, 3),
                    },
                )
            scope.error = str(exc)
            return
        first = scope.fires_at is None or started >= scope.fires_at
        scope.last_arm, scope.fires_at = started, started + self.config.timeout_s
        if scope.failures or first:
            log.info(
                "dead-man switch armed",
                extra={
                    "key": self.key.name,
                    "scope": scope.scope,
                    "timeout_s": self.config.timeout_s,
                },
            )
        scope.failures, scope.error = 0, None

    async def _send(self, scope: _Scope, timeout_s: int) -> None:
        key = self.key
        budget = key.budget
        try:
            creds = key.slot.current()
            if budget is not None:
                await budget.take("POST", scope.path)
            body = json.dumps({"timeout": timeout_s}).encode()
            auth = await signed_headers(
                creds.signer, creds.api_key, "POST", scope.path, "", body, key.clock.now()
            )
            headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
            request = UpstreamRequest("POST", scope.path, "", headers + list(auth.items()), body)
            answer = await key.forwarder.send(request)
        except RateLimited as exc:
            raise ArmFailed(f"rate budget {exc.group} spent", exc.retry_after_s) from None
        except SidecarError as exc:  # no usable pair, Gate unreachable, too slow
            raise ArmFailed(f"{exc.label}: {exc.message}") from None
        except Exception as exc:  # a bug must not end the switch's task: logged, retried
            log.exception("dead-man switch: arm failed", extra={"key": key.name})
            raise ArmFailed(f"internal error ({type(exc).__name__})") from None
        if answer.status != 200:
            label = answer.gate_label() or "no label"
            raise ArmFailed(f"Gate answered {answer.status} {label}")

    # -- state and shutdown -------------------------------------------------------------------
    def status(self) -> list[ScopeStatus]:
        now = self._now()
        out = []
        for scope in self._scopes:
            armed = scope.fires_at is not None and now < scope.fires_at
            fires_in = (scope.fires_at - now) if armed and scope.fires_at is not None else None
            out.append(ScopeStatus(scope.scope, armed, fires_in, scope.error))
        return out

    async def stop(self, *, disarm: bool | None = None) -> None:
        """Stop re-arming. ``disarm`` (default: ``on_shutdown: keep``) also sets each armed
        scope's countdown to 0, so Gate keeps the orders; else the countdown runs out."""
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []
        if disarm is None:
            disarm = self.config.on_shutdown is OnShutdown.KEEP
        if not disarm:
            if any(s.fires_at is not None for s in self._scopes):
                log.info(
                    "dead-man switch left armed: Gate cancels when the countdown runs out",
                    extra={"key": self.key.name},
                )
            return
        for scope in self._scopes:
            if scope.fires_at is None or self._now() >= scope.fires_at:
                continue
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self._send(scope, 0)
            except (ArmFailed, TimeoutError) as exc:
                log.warning(
                    "dead-man switch: cannot disarm; Gate cancels when the countdown runs out",
                    extra={"key": self.key.name, "scope": scope.scope, "error": str(exc)},
                )
                continue
            scope.fires_at = None
            log.info("dead-man switch disarmed", extra={"key": self.key.name, "scope": scope.scope})
