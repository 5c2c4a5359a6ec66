"""Opening listeners: a TCP port or a unix socket, served by an aiohttp app.

:class:`Listener` is all the rest of the runtime knows about a key's listener (its URL, whether it
is open, how many connections it holds, how to close it), so a listener served another way can
stand beside this one.
"""

from __future__ import annotations

import grp
import os
import ssl
from typing import Protocol

from aiohttp import web

from sidecar.config.listen import ListenAddress, parse_listen
from sidecar.config.models import Config
from sidecar.errors import SidecarError
from sidecar.ops import admin
from sidecar.proxy.limits import ListenerLimits
from sidecar.runtime.guarded import Refuse
from sidecar.runtime.sites import GuardedServer, GuardedSite


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


def _noop_refuse(exc: SidecarError) -> None:
    return None


async def open_site(
    runner: web.AppRunner,
    addr: ListenAddress,
    mode: int = 0o660,
    *,
    limits: ListenerLimits | None = None,
    refuse: Refuse = _noop_refuse,
    ssl_context: ssl.SSLContext | None = None,
    group: str | None = None,
) -> tuple[str, GuardedServer]:
    """Start listening on ``addr`` with the ``server:`` limits (a unix socket gets ``mode`` and
    ``group``); the URL it answers on, and the protocol factory that counts its connections.

    ``runner`` must not serve any other site.
    """
    server = runner.server
    assert server is not None, "runner.setup() first"
    factory = GuardedServer(server, limits or ListenerLimits(), refuse)
    scheme = "https" if ssl_context is not None else "http"
    if addr.path is not None:
        gid = grp.getgrnam(group).gr_gid if group is not None else -1
        # Create the socket with its final mode: no window in which another user can connect.
        old = os.umask(0o777 & ~mode)
        try:
            site = GuardedSite(runner, factory, path=addr.path, ssl_context=ssl_context)
            await site.start()
        finally:
            os.umask(old)
        if gid != -1:
            os.chown(addr.path, -1, gid)
        os.chmod(addr.path, mode)
        return f"unix:{addr.path}", factory
    site = GuardedSite(runner, factory, host=addr.host, port=addr.port, ssl_context=ssl_context)
    await site.start()
    port = site.bound_port or addr.port
    host = f"[{addr.host}]" if addr.host and ":" in addr.host else addr.host
    return f"{scheme}://{host}:{port}", factory


class AiohttpListener:
    """An aiohttp app served on one address."""

    def __init__(self, runner: web.AppRunner, url: str, factory: GuardedServer) -> None:
        self._runner = runner
        self._url = url
        self._factory = factory
        self._open = True

    @property
    def url(self) -> str:
        return self._url

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def open_connections(self) -> int:
        return self._factory.open_connections

    async def close(self) -> None:
        self._open = False
        await self._runner.cleanup()


async def serve_app(
    app: web.Application,
    addr: ListenAddress,
    *,
    mode: int,
    shutdown_grace_s: float,
    limits: ListenerLimits | None = None,
    refuse: Refuse = _noop_refuse,
    ssl_context: ssl.SSLContext | None = None,
    group: str | None = None,
) -> AiohttpListener:
    """Serve ``app`` on ``addr``; OSError (port taken, bad path) or KeyError (no such group)
    leaves nothing open."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_grace_s
    )
    await runner.setup()
    try:
        url, factory = await open_site(
            runner, addr, mode, limits=limits, refuse=refuse, ssl_context=ssl_context, group=group
        )
    except (OSError, KeyError):
        await runner.cleanup()
        raise
    return AiohttpListener(runner, url, factory)


async def open_admin_site(runner: web.AppRunner, config: Config) -> str:
    """The admin listener (``runner`` runs :func:`sidecar.runtime.app.create_app`'s app, set up),
    with the same limits as the key listeners; its refusals are counted like the app's own."""
    url, _ = await open_site(
        runner,
        parse_listen(config.admin.listen),
        limits=config.server,
        refuse=runner.app[admin.REFUSE],
    )
    return url
