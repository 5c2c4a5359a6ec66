"""Builds the running sidecar from a config: one factory for `serve`, the demo and the tests.

:func:`create_app` returns the admin application. Its ``cleanup_ctx`` owns every long-lived
resource: the upstream session, the Vault session, and each key's slot, source task and listener.
Running the admin app (``web.run_app`` or an ``AppRunner``) therefore runs the whole sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from sidecar import admin
from sidecar.audit import Observer, audit_line
from sidecar.clock import Clock
from sidecar.config import Config, KeyConfig
from sidecar.forward import AiohttpForwarder, Forwarder, UpstreamRequest
from sidecar.keys import Credentials, KeySlot
from sidecar.listen import ListenAddress
from sidecar.policy import compile_policy
from sidecar.proxy import KeyRuntime, create_key_app
from sidecar.rotation import CanaryResult, Rotation, canary_verdict
from sidecar.signing import signed_headers
from sidecar.sources.base import Source
from sidecar.sources.factory import SourceContext, build_source, uses_vault

log = logging.getLogger("sidecar.app")


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
    observers: list[Observer] = field(default_factory=list)
    rotation_listeners: list[object] = field(default_factory=list)
    source_ctx: SourceContext | None = None

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

    async def start_key(self, key: KeyConfig) -> KeyHandle:
        assert self.source_ctx is not None
        slot = KeySlot(key.name, key.max_stale_s)
        rotation = self.canary_for(key)
        rotation.listeners.extend(self.rotation_listeners)  # type: ignore[arg-type]
        runtime = KeyRuntime(
            name=key.name,
            policy=compile_policy(key),
            slot=slot,
            forwarder=self.forwarder,
            clock=self.clock,
            max_body_bytes=self.config.server.max_body_bytes,
            observers=self.observers,
        )
        source = build_source(key, slot, rotation, self.source_ctx)
        runner = web.AppRunner(
            create_key_app(runtime),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.config.server.shutdown_grace_s,
        )
        await runner.setup()
        try:
            url = await _open_site(runner, key.address, int(key.socket_mode, 8))
        except OSError:
            await runner.cleanup()
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
        handle.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await handle.task
        await handle.source.close()

    def refresh_all(self) -> None:
        for handle in self.keys.values():
            handle.source.refresh_now()


async def _open_site(runner: web.AppRunner, addr: ListenAddress, mode: int) -> str:
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
    forwarder = AiohttpForwarder(config.upstream)
    sidecar = Sidecar(config=config, environ=app[ENVIRON], forwarder=forwarder)
    if config.logging.audit:
        sidecar.observers.append(audit_line)
    sidecar.source_ctx = SourceContext(config, sidecar.environ)
    app[SIDECAR] = sidecar
    vault = None
    try:
        if uses_vault(config):
            from sidecar.vault.session import VaultSession

            assert config.vault is not None
            vault = VaultSession(config.vault)
            await vault.start()  # never blocks on Vault: listeners open at once
            sidecar.source_ctx.vault = vault
        for key in config.keys:
            await sidecar.start_key(key)
        yield
    finally:
        for name in list(sidecar.keys):
            await sidecar.stop_key(name)
        if vault is not None:
            await vault.close()
        await forwarder.close()
