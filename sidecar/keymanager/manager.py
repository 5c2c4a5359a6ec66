"""The key manager process: its parts, the controller loop and its admin listener.

:class:`KeyManager` owns the Vault session (the manager's own identity), the main key's slot and
source (any source kind, transit included: the main key signs through it like a sidecar's key),
the forwarder to Gate, the lock and one :class:`~sidecar.keymanager.account.AccountKeeper` per
account. ``keys run`` is :meth:`KeyManager.run`; the one-shot commands use the same parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from sidecar.aio import backoff_s, cancel_and_wait
from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import KeySlot
from sidecar.credentials.sources.base import SourceContext
from sidecar.keymanager.account import AccountKeeper
from sidecar.keymanager.gate_keys import GateKeys, Limiter
from sidecar.keymanager.observe import ManagerMetrics
from sidecar.keymanager.perms import least_perms
from sidecar.keymanager.progress import ProgressBook, VaultLock
from sidecar.keymanager.settings import AccountConfig, ManagerConfig
from sidecar.keymanager.stores import build_store
from sidecar.policy.engine import compile_policy
from sidecar.proxy.lean_forwarder import LeanForwarder
from sidecar.vault.errors import VaultError
from sidecar.vault.session import VaultSession

log = logging.getLogger("sidecar.keys")
MAIN_KEY_WAIT_S = 30.0


def perms_of(account: AccountConfig) -> dict[str, bool]:
    """The permissions the account's keys get: the configured ones, or the least its policy
    needs (the configured ones were checked against the policy when the file was loaded)."""
    if account.perms is not None:
        return {p.name: p.read_only for p in account.perms}
    return least_perms(compile_policy(account.name, account.policy, allow_withdrawals=False))


class NotLeader(Exception):
    """Another manager holds the lock."""


class KeyManager:
    def __init__(self, cfg: ManagerConfig, *, environ: Mapping[str, str]) -> None:
        self.cfg = cfg
        self.metrics = ManagerMetrics()
        self.session = VaultSession(cfg.vault, environ=environ)
        self.slot = KeySlot("main_key")
        spec = cfg.main_key.source
        self.source = spec.source_kind.build(
            spec.spec, self.slot, Rotation(None), SourceContext(environ, self.session)
        )
        self.forwarder = LeanForwarder(cfg.gate)
        limit, window = cfg.gate_rate
        self.gate = GateKeys(
            self.forwarder,
            self.slot.current,
            limiter=Limiter(limit, window),
            retry_for_s=cfg.gate_retry_for,
            on_retry=lambda what, why: self.metrics.gate_retries.inc(),
        )
        self.book = ProgressBook(self.session, cfg.state.mount, cfg.state.path)
        self.lock = VaultLock(self.session, cfg.state.mount, cfg.state.path, cfg.lock_ttl)
        self.keepers = {
            a.name: AccountKeeper(
                a,
                perms_of(a),
                self.gate,
                build_store(self.session, a.store.vault, a.store.vault_transit),
                self.book,
                self.metrics,
            )
            for a in cfg.accounts
        }
        self.problems: dict[str, str] = {}  # account -> why its last pass failed
        self.passes = 0
        #: set to stop after the pass in progress: a rotation is never cut between mint and store
        self.stopping = asyncio.Event()
        self._source_task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def started(self) -> AsyncIterator[KeyManager]:
        """The session and the main key's source running; everything closed on exit."""
        await self.session.start()
        self._source_task = asyncio.create_task(self.source.run(), name="main-key-source")
        try:
            yield self
        finally:
            with contextlib.suppress(VaultError):
                await self.lock.release()
            await cancel_and_wait(self._source_task)
            await self.source.close()
            await self.forwarder.close()
            await self.session.close()

    async def wait_main_key(self, timeout_s: float = MAIN_KEY_WAIT_S) -> None:
        end = time.monotonic() + timeout_s
        while not self.slot.ready:
            if time.monotonic() > end:
                raise RuntimeError(f"the main key is not available: {self.slot.reason}")
            await asyncio.sleep(0.05)

    async def lead(self) -> None:
        """Take the lock for a one-shot command; NotLeader when another manager holds it."""
        await self.wait_main_key()
        if not await self.lock.acquire():
            raise NotLeader("another key manager holds the lock; try again when it stops")

    @property
    def ready(self) -> bool:
        return self.slot.ready and self.lock.held and not self.problems and self.passes > 0

    def readiness(self) -> dict[str, Any]:
        problems = [f"{name}: {why}" for name, why in sorted(self.problems.items())]
        if not self.slot.ready:
            problems.insert(0, f"main key: {self.slot.reason}")
        if not self.lock.held:
            problems.insert(0, "standby: another key manager holds the lock")
        return {"ready": self.ready, "passes": self.passes, "problems": problems}

    async def run_once(self) -> None:
        """One pass over every account (the lock held)."""
        for name, keeper in self.keepers.items():
            try:
                await keeper.tick()
            except Exception as exc:  # one account's trouble must not stop the others
                self.problems[name] = str(exc) or type(exc).__name__
                log.warning(
                    "key manager pass failed", extra={"account": name, "error": self.problems[name]}
                )
            else:
                self.problems.pop(name, None)
        self.passes += 1

    async def hold_lock(self) -> None:
        """Take the lock and keep renewing it (every third of ``lock_ttl``); the one task that
        writes it, so renewals never race each other."""
        failures = 0
        while True:
            delay = self.cfg.lock_ttl / 3
            try:
                await self.lock.acquire()
                failures = 0
            except VaultError as exc:
                failures += 1
                delay = min(delay, backoff_s(failures, 5.0))
                log.warning("cannot renew the key manager's lock", extra={"error": str(exc)})
            self.metrics.lock_held.set(1 if self.lock.held else 0)
            await asyncio.sleep(delay)

    async def run(self) -> None:
        """The controller: while holding the lock, look at every account each
        ``check_interval``, until :attr:`stopping` is set (the pass in progress finishes)."""
        holder = asyncio.create_task(self.hold_lock(), name="key-manager-lock")
        try:
            while not self.stopping.is_set():
                delay = min(self.cfg.check_interval, 1.0)  # standby: look again soon
                if self.lock.held and self.slot.ready:
                    await self.run_once()
                    delay = self.cfg.check_interval
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.stopping.wait()
        finally:
            await cancel_and_wait(holder)

    async def stop(self, task: asyncio.Task[None], grace_s: float) -> None:
        """Let ``task`` (:meth:`run`) finish its pass, at most ``grace_s``; then cancel it."""
        self.stopping.set()
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            await cancel_and_wait(task)

    @property
    def grace_s(self) -> float:
        """Long enough for a rotation in progress to reach the store."""
        return max(a.activation_timeout + 10.0 for a in self.cfg.accounts)


# -- the admin listener ------------------------------------------------------------------------

MANAGER = web.AppKey("key_manager", KeyManager)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    body = request.app[MANAGER].readiness()
    return web.json_response(body, status=200 if body["ready"] else 503)


async def _metrics(request: web.Request) -> web.StreamResponse:
    return await request.app[MANAGER].metrics.respond(request)


def admin_app(manager: KeyManager) -> web.Application:
    app = web.Application()
    app[MANAGER] = manager
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app
