"""Opening listeners: a key's and the admin listener, both on the lean connection layer.

:class:`Listener` is all the rest of the runtime knows about a key's listener (its URL, whether it
is open, how many connections it holds, how to close it). Both kinds are a
:class:`~sidecar.proxy.lean_listener.LeanServer` serving a :class:`~sidecar.proxy.site.Site` (a
key's pipeline, or the admin routes) and enforce the ``server:`` limits
(:class:`~sidecar.proxy.limits.ListenerLimits`); a key's also TLS and a unix socket's mode and
group.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

from sidecar.config.listen import ListenAddress
from sidecar.proxy.lean_listener import LeanServer
from sidecar.proxy.limits import ListenerLimits
from sidecar.proxy.pipeline import KeyRuntime
from sidecar.proxy.site import KeySite, Site
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
    """A site served by :class:`~sidecar.proxy.lean_listener.LeanServer`: every connection, from
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
    return await serve_site(
        KeySite(runtime),
        addr,
        mode=mode,
        shutdown_grace_s=shutdown_grace_s,
        limits=limits,
        ssl_context=ssl_context,
        group=group,
    )


async def serve_site(
    site: Site,
    addr: ListenAddress,
    *,
    mode: int = 0o660,
    shutdown_grace_s: float,
    limits: ListenerLimits,
    ssl_context: ssl.SSLContext | None = None,
    group: str | None = None,
) -> LeanListener:
    """Serve ``site`` on ``addr``. OSError or KeyError (no such group) leaves nothing open."""
    lean = LeanServer(site, limits)
    server, url = await bind(
        lean, addr, limits=limits, mode=mode, ssl_context=ssl_context, group=group
    )
    return LeanListener(server, lean, url, shutdown_grace_s)
