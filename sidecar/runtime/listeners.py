"""Opening listeners: a TCP port or a unix socket, served by an aiohttp app.

:class:`Listener` is all the rest of the runtime knows about a key's listener (its URL, whether it
is open, how many connections it holds, how to close it), so a listener served another way can
stand beside this one.
"""

from __future__ import annotations

import os
from typing import Protocol

from aiohttp import web

from sidecar.config.listen import ListenAddress


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


async def open_site(runner: web.AppRunner, addr: ListenAddress, mode: int = 0o660) -> str:
    """Start listening on ``addr`` (a unix socket gets ``mode``); the URL it answers on.

    ``runner`` must not serve any other site: the URL is read from its addresses.
    """
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
    port = runner.addresses[0][1] if runner.addresses else addr.port
    host = f"[{addr.host}]" if addr.host and ":" in addr.host else addr.host
    return f"http://{host}:{port}"


class AiohttpListener:
    """An aiohttp app served on one address."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self._runner = runner
        self._url = url
        self._open = True

    @property
    def url(self) -> str:
        return self._url

    @property
    def is_open(self) -> bool:
        return self._open

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
