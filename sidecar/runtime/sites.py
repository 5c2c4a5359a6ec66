"""Serving a guarded listener: the connection cap, the sites, and accept() errors.

- A cap on open connections (``max_connections``): the connection beyond it gets a canned
  ``503 SIDECAR_OVERLOADED`` and is closed, before aiohttp allocates anything for it.
- :class:`GuardedSite`: a TCP or unix-socket site (aiohttp's public ``BaseSite``) whose protocol
  factory is the cap in front of :class:`~sidecar.runtime.guarded.GuardedHandler`.
- accept() failures (file descriptors exhausted) logged once per burst, not once per call.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sidecar.errors import Overloaded
from sidecar.proxy.limits import ListenerLimits
from sidecar.runtime.guarded import GuardedHandler, Refuse, raw_response, report

log = logging.getLogger("sidecar.listener")

ACCEPT_BURST_S = 30.0
OVERLOAD_WAIT_S = 0.5  # how long an over-cap connection may take to send its request head


class OverloadedProtocol(asyncio.Protocol):
    """The connection beyond ``max_connections``: a canned 503 JSON answer, then closed. It
    waits (briefly) for the request head so the client reads the answer instead of a reset."""

    def __init__(self, refuse: Refuse) -> None:
        self._refuse = refuse
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(OVERLOAD_WAIT_S, self._answer)

    def data_received(self, data: bytes) -> None:
        self._answer()

    def _answer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport, self._transport = self._transport, None
        if transport is None or transport.is_closing():
            return
        exc = Overloaded("the listener has too many open connections; retry shortly")
        transport.write(raw_response(exc))
        transport.close()
        report(self._refuse, exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None


class GuardedServer:
    """The protocol factory of a guarded listener: aiohttp's ``Server`` (which tracks the
    connections and runs the app) making :class:`GuardedHandler`, up to ``max_connections``."""

    def __init__(self, server: web.Server, limits: ListenerLimits, refuse: Refuse) -> None:
        self._server = server
        self._limits = limits
        self._refuse = refuse
        # Handlers made but not connected yet (a TLS handshake in progress) count too. A failed
        # handshake never connects its handler and nothing says so; handshakes are bounded by
        # header_timeout_s (GuardedSite), so an entry older than that is dropped.
        self._pending: dict[GuardedHandler, float] = {}
        self._live: set[GuardedHandler] = set()

    @property
    def limits(self) -> ListenerLimits:
        return self._limits

    @property
    def open_connections(self) -> int:
        if self._pending:
            cutoff = asyncio.get_running_loop().time() - self._limits.header_timeout_s - 1.0
            for handler in [h for h, made in self._pending.items() if made < cutoff]:
                del self._pending[handler]
        return len(self._live) + len(self._pending)

    def __call__(self) -> asyncio.Protocol:
        if self.open_connections >= self._limits.max_connections:
            return OverloadedProtocol(self._refuse)
        loop = asyncio.get_running_loop()
        handler = _Tracked(
            self._server,
            loop=loop,
            limits=self._limits,
            refuse=self._refuse,
            on_lost=self._live.discard,
        )
        handler.on_made = self._made
        self._pending[handler] = loop.time()
        return handler

    def _made(self, handler: GuardedHandler) -> None:
        self._pending.pop(handler, None)
        self._live.add(handler)


class _Tracked(GuardedHandler):
    on_made: Callable[[GuardedHandler], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.on_made is not None:
            self.on_made(self)
        super().connection_made(transport)


class GuardedSite(web.BaseSite):
    """A TCP or unix-socket site served through a :class:`GuardedServer`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        factory: GuardedServer,
        *,
        host: str | None = None,
        port: int | None = None,
        path: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._factory = factory
        self._host, self._port, self._path = host, port, path
        self._tcp: asyncio.Server | None = None
        # A TLS handshake is part of getting a request head: the same deadline.
        self._handshake_timeout = factory.limits.header_timeout_s if ssl_context else None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://unix:{self._path}:" if self._path else f"{scheme}://{self._host}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        quiet_accept_errors(loop)
        if self._path is not None:
            self._server = await loop.create_unix_server(
                self._factory,
                self._path,
                ssl=self._ssl_context,
                backlog=self._backlog,
                ssl_handshake_timeout=self._handshake_timeout,
            )
        else:
            self._tcp = await loop.create_server(
                self._factory,
                self._host,
                self._port or 0,
                ssl=self._ssl_context,
                backlog=self._backlog,
                reuse_address=True,
                ssl_handshake_timeout=self._handshake_timeout,
            )
            self._server = self._tcp

    @property
    def bound_port(self) -> int | None:
        server = self._tcp
        if server is None or not server.sockets:
            return None
        port: int = server.sockets[0].getsockname()[1]
        return port


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
