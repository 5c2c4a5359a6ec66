"""Binding a listener's socket, and what every listener shares: accept() errors, file limits.

:func:`bind` opens a TCP port or a unix socket (final mode and group from the start) for a
protocol factory: a :class:`~sidecar.proxy.lean_listener.LeanServer`, the key listeners' and the
admin listener's alike. A TLS handshake gets the head
deadline (``header_timeout_s``): it is part of getting a request head.
accept() failures (file descriptors exhausted) are logged once per burst, not once per call.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import ssl
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sidecar.config.listen import ListenAddress
from sidecar.proxy.limits import ListenerLimits

log = logging.getLogger("sidecar.listener")

ACCEPT_BURST_S = 30.0
T = TypeVar("T")


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


async def bind(
    factory: Callable[[], asyncio.Protocol],
    addr: ListenAddress,
    *,
    limits: ListenerLimits,
    mode: int = 0o660,
    ssl_context: ssl.SSLContext | None = None,
    group: str | None = None,
) -> tuple[asyncio.Server, str]:
    """Listen on ``addr`` with ``factory``; the server and the URL it answers on
    (``http://127.0.0.1:PORT`` with the bound port, or ``unix:/path``). OSError (port taken,
    bad path) or KeyError (no such group) leaves nothing open."""
    loop = asyncio.get_running_loop()
    quiet_accept_errors(loop)
    handshake = limits.header_timeout_s if ssl_context is not None else None
    if addr.path is not None:
        path = addr.path
        server = await _unix(
            path,
            mode,
            group,
            lambda: loop.create_unix_server(
                factory, path, ssl=ssl_context, ssl_handshake_timeout=handshake
            ),
        )
        return server, f"unix:{path}"
    server = await loop.create_server(
        factory,
        addr.host,
        addr.port or 0,
        reuse_address=True,
        ssl=ssl_context,
        ssl_handshake_timeout=handshake,
    )
    scheme = "https" if ssl_context is not None else "http"
    return server, _tcp_url(scheme, addr.host, server.sockets[0].getsockname()[1])


_ACCEPT_MESSAGE = "socket.accept() out of system resource"
_quieted: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log asyncio's accept() failures (EMFILE, ENFILE, ENOBUFS, ENOMEM) once per burst of
    :data:`ACCEPT_BURST_S` seconds, with the count of the previous burst, and no traceback:
    under file-descriptor exhaustion asyncio retries every second on every listener."""
    if loop in _quieted:
        return
    _quieted.add(loop)
    previous = loop.get_exception_handler()
    burst = {"until": 0.0, "count": 0}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_MESSAGE:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = loop.time()
        burst["count"] += 1
        if now < burst["until"]:
            return
        exc = context.get("exception")
        log.error(
            "cannot accept connections (out of file descriptors or memory); "
            "further accept errors are counted for 30 s",
            extra={
                "error": getattr(exc, "strerror", None) or str(exc),
                "errors_in_last_burst": burst["count"],
            },
        )
        burst["until"], burst["count"] = now + ACCEPT_BURST_S, 0

    loop.set_exception_handler(handler)


def raise_open_files(wanted: int) -> int:
    """Raise the process's soft open-file limit towards ``wanted``, never past the hard limit
    and never lower than it is; the soft limit now."""
    import resource  # Unix only, like the rest of serve

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def raise_fd_limit(listeners: int, limits: ListenerLimits, upstream: int) -> tuple[int, int]:
    """Raise the open-file limit towards what the caps can use: every listener at
    ``max_connections``, the upstream pool and some spare. Returns (limit now, limit wanted) so
    the caller can warn when the caps exceed it."""
    wanted = listeners * limits.max_connections + upstream + 256
    return raise_open_files(wanted), wanted
