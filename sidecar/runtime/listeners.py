"""Opening listeners: a TCP port or a unix socket, served by an aiohttp app or the lean server.

:class:`Listener` is all the rest of the runtime knows about a key's listener (its URL, whether it
is open, how many connections it holds, how to close it): :class:`AiohttpListener` (the admin
listener, and key listeners with ``server.listener: aiohttp``) and :class:`LeanListener` (key
listeners by default) both keep it. Both enforce the ``server:`` limits
(:class:`~sidecar.proxy.limits.ListenerLimits`), TLS and a unix socket's mode and group.
"""

from __future__ import annotations

import asyncio
import grp
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from aiohttp import web

from sidecar.config.listen import ListenAddress, parse_listen
from sidecar.config.models import Config
from sidecar.errors import SidecarError
from sidecar.ops import admin
from sidecar.proxy.lean_listener import LeanServer
from sidecar.proxy.limits import ListenerLimits
from sidecar.proxy.pipeline import KeyRuntime
from sidecar.runtime.guarded import Refuse
from sidecar.runtime.sites import GuardedServer, GuardedSite

T = TypeVar("T")


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


async def _unix(path: str, mode: int, group: str | None, opening: Callable[[], Awaitable[T]]) -> T:
    """Create a unix socket with its final mode (no window in which another user can connect),
    then give it ``group``. KeyError: no such group (checked before anything is created)."""
    gid = grp.getgrnam(group).gr_gid if group is not None else -1
    old = os.umask(0o777 & ~mode)
    try:
        opened = await opening()
    finally:
        os.umask(old)
    if gid != -1:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    return opened


def _tcp_url(scheme: str, host: str | None, port: int | None) -> str:
    host = f"[{host}]" if host and ":" in host else host
    return f"{scheme}://{host}:{port}"


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
        unix_site = GuardedSite(runner, factory, path=addr.path, ssl_context=ssl_context)
        await _unix(addr.path, mode, group, unix_site.start)
        return f"unix:{addr.path}", factory
    site = GuardedSite(runner, factory, host=addr.host, port=addr.port, ssl_context=ssl_context)
    await site.start()
    return _tcp_url(scheme, addr.host, site.bound_port or addr.port), factory


class _Served:
    """What every listener knows of itself: its URL and whether it still serves."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._open = True

    @property
    def url(self) -> str:
        return self._url

    @property
    def is_open(self) -> bool:
        return self._open


class AiohttpListener(_Served):
    """An aiohttp app served on one address."""

    def __init__(self, runner: web.AppRunner, url: str, factory: GuardedServer) -> None:
        super().__init__(url)
        self._runner = runner
        self._factory = factory

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


class LeanListener(_Served):
    """A key served by :class:`~sidecar.proxy.lean_listener.LeanServer`, with the key's aiohttp
    app behind it for the connections it hands over (WebSocket upgrades)."""

    def __init__(
        self,
        server: asyncio.Server,
        lean: LeanServer,
        fallback: web.AppRunner,
        url: str,
        shutdown_grace_s: float,
    ) -> None:
        super().__init__(url)
        self._server = server
        self._lean = lean
        self._fallback = fallback
        self._grace = shutdown_grace_s

    @property
    def open_connections(self) -> int:
        handed = self._fallback.server
        return len(self._lean.connections) + (len(handed.connections) if handed else 0)

    async def close(self) -> None:
        self._open = False
        self._server.close()
        await self._lean.close(self._grace)
        await self._fallback.cleanup()


async def serve_lean(
    runtime: KeyRuntime,
    fallback: web.Application,
    addr: ListenAddress,
    *,
    mode: int,
    shutdown_grace_s: float,
    limits: ListenerLimits,
    ssl_context: ssl.SSLContext | None = None,
    group: str | None = None,
) -> LeanListener:
    """Serve ``runtime`` on ``addr`` with the lean server; ``fallback`` (the key's aiohttp app)
    takes the connections it does not serve. OSError or KeyError (no such group) leaves nothing
    open. A TLS handshake gets ``header_timeout_s``, as on the aiohttp listener."""
    runner = web.AppRunner(
        fallback, access_log=None, handle_signals=False, shutdown_timeout=shutdown_grace_s
    )
    await runner.setup()
    lean = LeanServer(runtime, limits, runner.server)
    loop = asyncio.get_running_loop()
    handshake = limits.header_timeout_s if ssl_context is not None else None
    try:
        if addr.path is not None:
            path = addr.path
            server = await _unix(
                path,
                mode,
                group,
                lambda: loop.create_unix_server(
                    lean, path, ssl=ssl_context, ssl_handshake_timeout=handshake
                ),
            )
            url = f"unix:{path}"
        else:
            server = await loop.create_server(
                lean,
                addr.host,
                addr.port or 0,
                reuse_address=True,
                ssl=ssl_context,
                ssl_handshake_timeout=handshake,
            )
            scheme = "https" if ssl_context is not None else "http"
            url = _tcp_url(scheme, addr.host, server.sockets[0].getsockname()[1])
    except (OSError, KeyError):
        await runner.cleanup()
        raise
    return LeanListener(server, lean, runner, url, shutdown_grace_s)
