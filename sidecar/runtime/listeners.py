"""Opening listeners: a key's (the lean listener) and the admin listener (aiohttp).

:class:`Listener` is all the rest of the runtime knows about a key's listener (its URL, whether it
is open, how many connections it holds, how to close it). Both kinds enforce the ``server:``
limits (:class:`~sidecar.proxy.limits.ListenerLimits`); a key's also TLS and a unix socket's
mode and group.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

from aiohttp import web

from sidecar.config.listen import ListenAddress, parse_listen
from sidecar.config.models import Config
from sidecar.ops import admin
from sidecar.proxy.lean_listener import LeanServer
from sidecar.proxy.limits import ListenerLimits
from sidecar.proxy.pipeline import KeyRuntime
from sidecar.runtime.guarded import AdminServer
from sidecar.runtime.sites import bind


class Listener(Protocol):
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the bound port, also when the config asked for 0) or
        ``unix:/path``."""
        ...

    @property
    def is_open(self) -> bool: ...

    @property
    def open_connections(self) -> int: ...

    async def close(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), then close."""
        ...


class LeanListener:
    """A key served by :class:`~sidecar.proxy.lean_listener.LeanServer`: every connection, from
    accept to close, WebSocket sessions included."""

    def __init__(
        self, server: asyncio.Server, lean: LeanServer, url: str, shutdown_grace_s: float
    ) -> None:
        self.server = server
        self.lean = lean
        self.url = url
        self.is_open = True
        self.grace = shutdown_grace_s

    @property
    def open_connections(self) -> int:
        return len(self.lean.connections)

    async def close(self) -> None:
        self.is_open = False
        self.server.close()
        await self.lean.close(self.grace)


async def serve_lean(
    runtime: KeyRuntime,
    addr: ListenAddress,
    *,
    mode: int,
    shutdown_grace_s: float,
    limits: ListenerLimits,
    ssl_context: ssl.SSLContext | None = None,
    group: str | None = None,
) -> LeanListener:
    """Serve ``runtime`` on ``addr``. OSError or KeyError (no such group) leaves nothing open."""
    lean = LeanServer(runtime, limits)
    server, url = await bind(
        lean, addr, limits=limits, mode=mode, ssl_context=ssl_context, group=group
    )
    return LeanListener(server, lean, url, shutdown_grace_s)


class AdminSite:
    """The admin listener: the admin app (its runner already set up) on ``admin.listen``."""

    def __init__(self, server: asyncio.Server, factory: AdminServer, url: str) -> None:
        self.server = server
        self.factory = factory
        self.url = url

    @property
    def open_connections(self) -> int:
        return self.factory.open_connections

    async def close(self) -> None:
        """Stop accepting; the runner's cleanup then closes the connections."""
        self.server.close()


async def open_admin_site(runner: web.AppRunner, config: Config) -> AdminSite:
    """The admin listener (``runner`` runs :func:`sidecar.runtime.app.create_app`'s app, set up),
    with the same limits as the key listeners; its refusals are counted like the app's own.
    Close it (:meth:`AdminSite.close`) before ``runner.cleanup()``."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    factory = AdminServer(server, config.server, runner.app[admin.REFUSE])
    listening, url = await bind(factory, parse_listen(config.admin.listen), limits=config.server)
    return AdminSite(listening, factory, url)
