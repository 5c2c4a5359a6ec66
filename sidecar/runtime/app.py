"""Builds the running sidecar from a config: one factory for `serve`, the demo and the tests.

:func:`create_app` returns the admin application. Its ``cleanup_ctx`` owns every long-lived
resource: the upstream session, the Vault session, clock sync, and each key's slot, source task
and listener. Running the admin app (an ``AppRunner``) therefore runs the whole sidecar; the
:class:`Sidecar` object is what a config reload (``sidecar.runtime.reload``) changes while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from sidecar.config.listen import ListenAddress
from sidecar.config.models import ClockConfig, Config, KeyConfig
from sidecar.credentials.rotation import CanaryResult, Rotation, RotationListener, canary_verdict
from sidecar.credentials.slot import Credentials, KeySlot
from sidecar.credentials.sources.base import Source
from sidecar.credentials.sources.registry import SourceContext, build_source, uses_vault
from sidecar.gate.clock import Clock
from sidecar.gate.signing import signed_headers
from sidecar.ops import admin
from sidecar.ops.audit import Observer, audit_line
from sidecar.ops.clocksync import ClockSync
from sidecar.ops.metrics import Metrics
from sidecar.policy.engine import compile_policy
from sidecar.proxy.forwarder import AiohttpForwarder, Forwarder, UpstreamRequest
from sidecar.proxy.handler import KeyRuntime, create_key_app

log = logging.getLogger("sidecar.app")

FIRST_CLOCK_SYNC_S = 5.0  # start-up waits at most this long for the first clock measurement


@dataclass
class KeyHandle:
    """A running key: its config, runtime, source task and listener."""

    config: KeyConfig
    runtime: KeyRuntime
    source: Source
    task: asyncio.Task[None]
    runner: web.AppRunner
    url: str  # http://127.0.0.1:PORT or unix:/path


@dataclass
class Sidecar:
    """The live state shared by the admin app, the key listeners and reloads."""

    config: Config
    environ: Mapping[str, str]
    forwarder: Forwarder
    clock: Clock = field(default_factory=Clock)
    keys: dict[str, KeyHandle] = field(default_factory=dict)
    # Shared by reference with every KeyRuntime: changed in place, never rebound.
    observers: list[Observer] = field(default_factory=list)
    rotation_listeners: list[RotationListener] = field(default_factory=list)
    source_ctx: SourceContext | None = None
    metrics: Metrics = field(default_factory=Metrics)
    clock_sync: ClockSync | None = None

    # -- one key's parts ----------------------------------------------------------------------
    def canary_for(self, key: KeyConfig) -> Rotation:
        if not key.canary.enabled:
            return Rotation(None)
        path = key.canary.path

        async def canary(name: str, creds: Credentials) -> CanaryResult:
            auth = await signed_headers(
                creds.signer, creds.api_key, "GET", path, "", b"", self.clock.now()
            )
            headers = [("Accept", "application/json"), *auth.items()]
            try:
                resp = await self.forwarder.send(UpstreamRequest("GET", path, "", headers, b""))
            except Exception as exc:  # network trouble: keep the old pair, try again later
                return CanaryResult(False, f"canary call failed: {type(exc).__name__}")
            return canary_verdict(resp.status, resp.gate_label())

        return Rotation(canary)

    def build_secret(self, key: KeyConfig) -> tuple[KeySlot, Source]:
        """A new, empty slot and the (not yet running) source that fills it."""
        assert self.source_ctx is not None
        slot = KeySlot(key.name, key.max_stale_s)
        rotation = self.canary_for(key)
        rotation.listeners.extend(self.rotation_listeners)
        return slot, build_source(key, slot, rotation, self.source_ctx)

    async def open_listener(self, key: KeyConfig, runtime: KeyRuntime) -> tuple[web.AppRunner, str]:
        runner = web.AppRunner(
            create_key_app(runtime),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.config.server.shutdown_grace_s,
        )
        await runner.setup()
        try:
            url = await open_site(runner, key.address, int(key.socket_mode, 8))
        except OSError:
            await runner.cleanup()
            raise
        return runner, url

    # -- whole keys ---------------------------------------------------------------------------
    async def start_key(self, key: KeyConfig) -> KeyHandle:
        slot, source = self.build_secret(key)
        runtime = KeyRuntime(
            name=key.name,
            policy=compile_policy(key),
            slot=slot,
            forwarder=self.forwarder,
            clock=self.clock,
            max_body_bytes=self.config.server.max_body_bytes,
            observers=self.observers,
        )
        try:
            runner, url = await self.open_listener(key, runtime)
        except OSError as exc:
            log.error(
                "cannot open key listener",
                extra={"key": key.name, "listen": key.listen, "error": exc.strerror or str(exc)},
            )
            raise
        task = asyncio.create_task(source.run(), name=f"source:{key.name}")
        handle = KeyHandle(key, runtime, source, task, runner, url)
        self.keys[key.name] = handle
        log.info(
            "key listener open",
            extra={"key": key.name, "listen": url, "source": key.source.kind},
        )
        return handle

    async def stop_key(self, name: str) -> None:
        handle = self.keys.pop(name)
        await handle.runner.cleanup()  # stop accepting, let in-flight requests finish
        await _stop_source(handle.source, handle.task)
        log.info("key listener closed", extra={"key": name, "listen": handle.url})

    async def stop_all(self) -> None:
        """Stop every key at once: all listeners stop accepting, then drain in parallel."""
        await asyncio.gather(*(self.stop_key(name) for name in list(self.keys)))

    async def swap_secret(
        self, key: KeyConfig, slot: KeySlot, source: Source, wait_s: float
    ) -> None:
        """Give a running key a new slot and source (its source config changed).

        The new source gets ``wait_s`` to load before the swap, so a healthy change never shows
        the key empty; after that the swap happens anyway (the config no longer names the old
        secret) and readiness shows why the key has none.
        """
        task = asyncio.create_task(source.run(), name=f"source:{key.name}")
        try:
            await asyncio.wait_for(source.loaded.wait(), timeout=wait_s)
        except TimeoutError:
            log.warning(
                "new secret source not loaded yet; switching to it anyway",
                extra={"key": key.name, "reason": slot.reason},
            )
        handle = self.keys[key.name]
        old_source, old_task = handle.source, handle.task
        handle.runtime.slot = slot  # one reference: each request reads the slot once
        handle.source, handle.task = source, task
        await _stop_source(old_source, old_task)

    async def move_listener(self, name: str, runner: web.AppRunner, url: str) -> None:
        """Serve a key from an already opened new listener, then drain and close the old one."""
        handle = self.keys[name]
        old_runner, old_url = handle.runner, handle.url
        handle.runner, handle.url = runner, url
        log.info("key listener moved", extra={"key": name, "listen": url, "previous": old_url})
        await old_runner.cleanup()

    def refresh_all(self) -> None:
        for handle in self.keys.values():
            handle.source.refresh_now()

    # -- process-wide parts -------------------------------------------------------------------
    def set_observers(self) -> None:
        """(Re)build the observer list in place from the current config."""
        observers: list[Observer] = [self.metrics.observe]
        if self.config.logging.audit:
            observers.append(audit_line)
        if self.clock_sync is not None:
            observers.append(self.clock_sync.observe)
        self.observers[:] = observers

    async def configure_clock(self, cfg: ClockConfig) -> None:
        """Start, stop or retune clock sync to match ``cfg``."""
        if cfg.sync and self.clock_sync is None:
            self.clock_sync = ClockSync(self.clock, self.forwarder, cfg)
            first = min(FIRST_CLOCK_SYNC_S, self.config.upstream.timeout_s)
            await self.clock_sync.start(first)
        elif cfg.sync and self.clock_sync is not None:
            self.clock_sync.reconfigure(cfg)
        elif not cfg.sync and self.clock_sync is not None:
            await self.clock_sync.stop()
            self.clock_sync = None
            self.clock.offset_s = 0.0  # sync is off: sign with the local clock, as configured
        self.set_observers()

    async def ensure_vault(self, config: Config) -> None:
        """Open the Vault session if a key of ``config`` needs one and none is open yet."""
        ctx = self.source_ctx
        assert ctx is not None
        if ctx.vault is not None or not uses_vault(config):
            return
        from sidecar.vault.session import VaultSession

        assert config.vault is not None
        vault = VaultSession(config.vault, environ=self.environ)
        await vault.start()  # never blocks on Vault: listeners open at once
        ctx.vault = vault

    async def close(self) -> None:
        await self.stop_all()
        if self.clock_sync is not None:
            await self.clock_sync.stop()
        if self.source_ctx is not None and self.source_ctx.vault is not None:
            await self.source_ctx.vault.close()
        await self.forwarder.close()
        self.metrics.unwatch()


async def _stop_source(source: Source, task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await source.close()


async def open_site(runner: web.AppRunner, addr: ListenAddress, mode: int = 0o660) -> str:
    """Start listening on ``addr`` (a unix socket gets ``mode``); the URL it answers on."""
    if addr.path is not None:
        # Create the socket with its final mode: no window in which another user can connect.
        old = os.umask(0o777 & ~mode)
        try:
            site: web.BaseSite = web.UnixSite(runner, addr.path)
            await site.start()
        finally:
            os.umask(old)
        os.chmod(addr.path, mode)
        return f"unix:{addr.path}"
    site = web.TCPSite(runner, addr.host, addr.port, reuse_address=True)
    await site.start()
    server = site._server  # the bound port, when the config asked for port 0
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else addr.port
    host = f"[{addr.host}]" if addr.host and ":" in addr.host else addr.host
    return f"http://{host}:{port}"


SIDECAR = web.AppKey("sidecar", Sidecar)
CONFIG = web.AppKey("config", Config)
ENVIRON = web.AppKey("environ", Mapping[str, str])


def create_app(config: Config, *, environ: Mapping[str, str] | None = None) -> web.Application:
    app = web.Application()
    app[CONFIG] = config
    app[ENVIRON] = os.environ if environ is None else environ
    app.cleanup_ctx.append(_sidecar_ctx)
    admin.add_routes(app)
    return app


async def _sidecar_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    sidecar = Sidecar(
        config=config, environ=app[ENVIRON], forwarder=AiohttpForwarder(config.upstream)
    )
    sidecar.source_ctx = SourceContext(config, sidecar.environ)
    sidecar.rotation_listeners.append(sidecar.metrics.on_credential_event)
    sidecar.metrics.watch(sidecar)
    app[SIDECAR] = sidecar
    try:
        await sidecar.ensure_vault(config)
        # Measure the clock before any listener opens: a host minutes off would otherwise sign
        # its first requests with a timestamp Gate refuses.
        await sidecar.configure_clock(config.clock)
        for key in config.keys:
            await sidecar.start_key(key)
        yield
    finally:
        await sidecar.close()
