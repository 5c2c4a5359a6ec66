"""aiohttp's HTTP server with the ``server:`` limits: one client cannot hold the process.

aiohttp gives knobs for some limits (``keepalive_timeout``, ``max_line_size``,
``max_field_size``, ``max_headers`` of its request handler); the rest is added here:

- a deadline for a request's head (first byte to blank line, ``header_timeout_s``) and a cap on
  its size (``max_header_bytes``), answered 408 / 431 and closed;
- a cap on open connections (``max_connections``): the connection beyond it gets a canned
  ``503 SIDECAR_OVERLOADED`` and is closed, before aiohttp allocates anything for it;
- every refusal aiohttp's own parser makes (a target starting ``%2F``, too many headers, a broken
  request line) answered as ``SIDECAR_*`` JSON that echoes nothing, reported to ``refuse`` (audit
  line and metrics for a key), and logged without a traceback; a client that goes away mid-body
  is not an error either;
- accept() failures (file descriptors exhausted) logged once per burst, not once per call.

Where no public hook exists this reads two attributes of aiohttp's ``RequestHandler``:
``_request_count`` (requests parsed on the connection) and ``_waiter`` (set while the handler
waits for the next request): they tell a request head apart from a request body.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from sidecar.errors import (
    BadRequest,
    HeadersTooLarge,
    Overloaded,
    RequestTimeout,
    SidecarError,
    error_body,
    for_status,
)
from sidecar.proxy.limits import ListenerLimits

log = logging.getLogger("sidecar.listener")

#: Reports one refusal made outside the application (audit line and metrics for a key).
Refuse = Callable[[SidecarError], None]

ACCEPT_BURST_S = 30.0
OVERLOAD_WAIT_S = 0.5  # how long an over-cap connection may take to send its request head


def raw_response(exc: SidecarError) -> bytes:
    """A complete HTTP/1.1 answer for ``exc`` that closes the connection."""
    body = error_body(exc)
    reason = HTTPStatus(exc.status).phrase
    head = (
        f"HTTP/1.1 {exc.status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def parser_error(status: int, exc: BaseException | None) -> SidecarError:
    """The sidecar error for a refusal made by aiohttp itself. Never quotes the request."""
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower()
    ):
        return HeadersTooLarge("the request line or headers are too large")
    if isinstance(exc, HttpProcessingError) or status == 400:
        return BadRequest("the request is not valid HTTP/1.1 and was not read")
    return for_status(status, "the request could not be handled")


def _report(refuse: Refuse, exc: SidecarError) -> None:
    try:
        refuse(exc)
    except Exception:
        log.exception("refusal observer failed")


# Client-caused conditions aiohttp reports through log_exception: not sidecar bugs.
_CLIENT_FAULTS = (HttpProcessingError, ConnectionError, web.RequestPayloadError, TimeoutError)


class GuardedHandler(web.RequestHandler):
    """aiohttp's request handler plus the head deadline, head size cap and JSON refusals."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        limits: ListenerLimits,
        refuse: Refuse,
        on_lost: Callable[[GuardedHandler], None],
    ) -> None:
        super().__init__(
            manager,
            loop=loop,
            keepalive_timeout=limits.idle_timeout_s,
            max_line_size=limits.max_header_bytes,
            max_field_size=limits.max_header_bytes,
            max_headers=limits.max_headers,
            # What is left of a body after an early answer is drained for at most the body
            # deadline, then the connection closes.
            lingering_time=limits.body_timeout_s,
            access_log=None,  # type: ignore[arg-type]  # the audit line is the access log
        )
        self._limits = limits
        self._refuse = refuse
        self._on_lost = on_lost
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    # -- the head deadline and size cap -------------------------------------------------------
    def _between_requests(self) -> bool:
        waiter = self._waiter
        return (waiter is not None and not waiter.done()) or self._request_count == 0

    def data_received(self, data: bytes) -> None:
        in_head = self._head_timer is not None or self._between_requests()
        before = self._request_count
        if in_head and self._head_timer is None:
            self._head_bytes = 0
            self._head_timer = self._loop.call_later(
                self._limits.header_timeout_s, self._head_timed_out
            )
        super().data_received(data)
        if not in_head:
            return
        if self._request_count != before:  # the head is complete (and possibly more)
            self._stop_head_timer()
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._limits.max_header_bytes:
            self._refuse_raw(
                HeadersTooLarge(f"the request head exceeds {self._limits.max_header_bytes} bytes")
            )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._refuse_raw(
            RequestTimeout(
                f"the request head did not arrive within {self._limits.header_timeout_s:g} s"
            )
        )

    def _refuse_raw(self, exc: SidecarError) -> None:
        """Answer outside any request (the head never completed) and close."""
        self._stop_head_timer()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(raw_response(exc))
        _report(self._refuse, exc)
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        self._on_lost(self)
        super().connection_lost(exc)

    # -- refusals by aiohttp's parser, and its logging -----------------------------------------
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        self._stop_head_timer()
        mapped = parser_error(status, exc)
        if mapped.status >= 500:
            log.error("request failed in the HTTP server", exc_info=exc)
        else:
            log.debug("request refused by the HTTP parser: %s", type(exc).__name__)
        _report(self._refuse, mapped)
        resp = web.Response(
            status=mapped.status, body=error_body(mapped), content_type="application/json"
        )
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, _CLIENT_FAULTS):
            log.debug("client-side error: %s", type(exc).__name__)
            return
        super().log_exception(*args, **kw)


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
        _report(self._refuse, exc)

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
