"""Opening listeners: a TCP port or a unix socket, served by an aiohttp app or the lean server.

:class:`Listener` is all the rest of the runtime knows about a key's listener (its URL, whether it
is open, how many connections it holds, how to close it): :class:`AiohttpListener` (the admin
listener, and key listeners with ``server.listener: aiohttp``) and :class:`LeanListener` (key
listeners by default) both keep it.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from aiohttp import web

from sidecar.config.listen import ListenAddress
from sidecar.proxy.lean_http import ListenerLimits
from sidecar.proxy.lean_listener import LeanServer
from sidecar.proxy.pipeline import KeyRuntime

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


async def _with_mode(path: str, mode: int, opening: Callable[[], Awaitable[T]]) -> T:
    """Create a unix socket with its final mode: no window in which another user can connect."""
    old = os.umask(0o777 & ~mode)
    try:
        opened = await opening()
    finally:
        os.umask(old)
    os.chmod(path, mode)
    return opened


def _tcp_url(host: str | None, port: int | None) -> str:
    host = f"[{host}]" if host and ":" in host else host
    return f"http://{host}:{port}"


async def open_site(runner: web.AppRunner, addr: ListenAddress, mode: int = 0o660) -> str:
    """Start listening on ``addr`` (a unix socket gets ``mode``); the URL it answers on.

    ``runner`` must not serve any other site: the URL is read from its addresses.
    """
    if addr.path is not None:
        await _with_mode(addr.path, mode, web.UnixSite(runner, addr.path).start)
        return f"unix:{addr.path}"
    site = web.TCPSite(runner, addr.host, addr.port, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else addr.port
    return _tcp_url(addr.host, port)


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

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        super().__init__(url)
        self._runner = runner

    @property
    def open_connections(self) -> int:
        server = self._runner.server
        return len(server.connections) if server is not None else 0

    async def close(self) -> None:
        self._open = False
        await self._runner.cleanup()


async def serve_app(
    app: web.Application, addr: ListenAddress, *, mode: int, shutdown_grace_s: float
) -> AiohttpListener:
    """Serve ``app`` on ``addr``; OSError (port taken, bad path) leaves nothing open."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_grace_s
    )
    await runner.setup()
    try:
        url = await open_site(runner, addr, mode)
    except OSError:
        await runner.cleanup()
        raise
    return AiohttpListener(runner, url)


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
    tls: ssl.SSLContext | None = None,
) -> LeanListener:
    """Serve ``runtime`` on ``addr`` with the lean server; ``fallback`` (the key's aiohttp app)
    takes the connections it does not serve. OSError leaves nothing open."""
    runner = web.AppRunner(
        fallback, access_log=None, handle_signals=False, shutdown_timeout=shutdown_grace_s
    )
    await runner.setup()
    lean = LeanServer(runtime, limits, runner.server)
    loop = asyncio.get_running_loop()
    try:
        if addr.path is not None:
            path = addr.path
            server = await _with_mode(
                path, mode, lambda: loop.create_unix_server(lean, path, ssl=tls)
            )
            url = f"unix:{path}"
        else:
            server = await loop.create_server(
                lean, addr.host, addr.port or 0, reuse_address=True, ssl=tls
            )
            url = _tcp_url(addr.host, server.sockets[0].getsockname()[1])
    except OSError:
        await runner.cleanup()
        raise
    return LeanListener(server, lean, runner, url, shutdown_grace_s)
