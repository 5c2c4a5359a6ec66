"""The admin listener's connections: aiohttp's request handler under the ``server:`` limits.

The admin listener stays on aiohttp (docs/development.md says why); only public parts of it are
used. aiohttp's own knobs carry the idle timeout and its parser's line and header caps; the rest
is added here without reading anything private:

- :class:`AdminServer`, the protocol factory: the connection beyond ``max_connections`` gets a
  ``503 SIDECAR_OVERLOADED`` and is closed before aiohttp allocates anything for it;
- :class:`HeadWatch`: the same bytes aiohttp reads go through llhttp (``httptools``) callbacks
  that only time and measure heads, so a head that takes longer than ``header_timeout_s``,
  grows over ``max_header_bytes`` or has more than ``max_headers`` fields is answered (408 /
  431) and closed. The admin listener serves a few scrapes a minute: a second look at its heads
  costs nothing that matters;
- every refusal aiohttp's parser makes is answered as ``SIDECAR_*`` JSON that echoes nothing,
  reported to ``refuse`` (metrics) and logged without a traceback; a client that goes away
  mid-body is not an error either.

A refusal by the head watch is written at once and closes the connection: an answer aiohttp is
still writing for an earlier pipelined request on it is cut short (the admin routes answer at
once; no bot pipelines to the admin listener).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import httptools
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
from sidecar.proxy.lean_http import error_bytes
from sidecar.proxy.limits import ListenerLimits

log = logging.getLogger("sidecar.listener")

#: Reports one refusal made outside the application (metrics of the admin listener).
Refuse = Callable[[SidecarError], None]

OVERLOAD_WAIT_S = 0.5  # how long an over-cap connection may take to send its request head
# Client-caused conditions aiohttp reports through log_exception: not sidecar bugs.
_CLIENT_FAULTS = (HttpProcessingError, ConnectionError, web.RequestPayloadError, TimeoutError)


def parser_error(status: int, exc: BaseException | None) -> SidecarError:
    """The sidecar error for a refusal made by aiohttp itself. Never quotes the request."""
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower()
    ):
        return HeadersTooLarge("the request line or headers are too large")
    if isinstance(exc, HttpProcessingError) or status == 400:
        return BadRequest("the request is not valid HTTP/1.1 and was not read")
    return for_status(status, "the request could not be handled")


def report(refuse: Refuse, exc: SidecarError) -> None:
    try:
        refuse(exc)
    except Exception:
        log.exception("refusal observer failed")


class HeadWatch:
    """llhttp callbacks timing and measuring each request head of one admin connection."""

    def __init__(self, limits: ListenerLimits, refuse: Callable[[SidecarError], None]) -> None:
        self.limits = limits
        self.refuse = refuse
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.timer: asyncio.TimerHandle | None = None
        self.size = 0
        self.count = 0

    def feed(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return
        if self.timer is not None:
            self.size += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.stop()  # no admin route upgrades; aiohttp answers it
        except httptools.HttpParserError:
            self.stop()  # aiohttp's parser refuses it too, as JSON (AdminHandler.handle_error)
            return
        if self.timer is not None and self.size > self.limits.max_header_bytes:
            self._refuse(HeadersTooLarge(f"request head over {self.limits.max_header_bytes} bytes"))

    def stop(self) -> None:
        self.parser = None
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _refuse(self, exc: SidecarError) -> None:
        self.stop()
        self.refuse(exc)

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.size, self.count = 0, 0
        self.timer = asyncio.get_running_loop().call_later(
            self.limits.header_timeout_s,
            self._refuse,
            RequestTimeout(
                f"the request head did not arrive within {self.limits.header_timeout_s:g} s"
            ),
        )

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.timer is None:
            return  # a trailer
        self.count += 1
        if self.count > self.limits.max_headers:
            self._refuse(HeadersTooLarge(f"more than {self.limits.max_headers} headers"))

    def on_headers_complete(self) -> None:
        self._stop_timer()


class AdminHandler(web.RequestHandler):
    """aiohttp's request handler with the head watch and JSON refusals."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        limits: ListenerLimits,
        refuse: Refuse,
        on_made: Callable[[AdminHandler], None],
        on_lost: Callable[[AdminHandler], None],
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
        self.refuse = refuse
        self.on_made = on_made
        self.on_lost = on_lost
        self.watch = HeadWatch(limits, self._answer_and_close)
        self.wire: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.wire = cast(asyncio.Transport, transport)
        self.on_made(self)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.watch.feed(data)
        if self.wire is not None and not self.wire.is_closing():
            super().data_received(data)

    def _answer_and_close(self, exc: SidecarError) -> None:
        wire = self.wire
        if wire is not None and not wire.is_closing():
            wire.write(error_bytes(exc))
        report(self.refuse, exc)
        self.force_close()
        if wire is not None:
            wire.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.watch.stop()
        self.wire = None
        self.on_lost(self)
        super().connection_lost(exc)

    # -- refusals by aiohttp's parser, and its logging -----------------------------------------
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        self.watch.stop()
        mapped = parser_error(status, exc)
        if mapped.status >= 500:
            log.error("request failed in the HTTP server (%s)", type(exc).__name__)
        else:
            log.debug("request refused by the HTTP parser: %s", type(exc).__name__)
        report(self.refuse, mapped)
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
        log.error("error in the admin listener (%s)", type(exc).__name__)


class OverloadedProtocol(asyncio.Protocol):
    """The connection beyond ``max_connections``: a 503 JSON answer, then closed. It waits
    (briefly) for the request head so the client reads the answer instead of a reset."""

    def __init__(self, refuse: Refuse) -> None:
        self.refuse = refuse
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: alike, no subclass
        self.timer = asyncio.get_running_loop().call_later(OVERLOAD_WAIT_S, self._answer)

    def data_received(self, data: bytes) -> None:
        self._answer()

    def _answer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        transport, self.transport = self.transport, None
        if transport is None or transport.is_closing():
            return
        exc = Overloaded("the listener has too many open connections; retry shortly")
        transport.write(error_bytes(exc))
        transport.close()
        report(self.refuse, exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None


class AdminServer:
    """The admin listener's protocol factory: :class:`AdminHandler` for aiohttp's ``Server``
    (``runner.server``, which runs the app), up to ``max_connections``."""

    def __init__(self, server: web.Server, limits: ListenerLimits, refuse: Refuse) -> None:
        self.server = server
        self.limits = limits
        self.refuse = refuse
        # Handlers made but not connected yet (a TLS handshake in progress) count too. A failed
        # handshake never connects its handler and nothing says so; handshakes are bounded by
        # header_timeout_s, so an entry older than that is dropped.
        self.pending: dict[AdminHandler, float] = {}
        self.live: set[AdminHandler] = set()

    @property
    def open_connections(self) -> int:
        if self.pending:
            cutoff = asyncio.get_running_loop().time() - self.limits.header_timeout_s - 1.0
            for handler in [h for h, made in self.pending.items() if made < cutoff]:
                del self.pending[handler]
        return len(self.live) + len(self.pending)

    def __call__(self) -> asyncio.Protocol:
        if self.open_connections >= self.limits.max_connections:
            return OverloadedProtocol(self.refuse)
        loop = asyncio.get_running_loop()
        handler = AdminHandler(
            self.server,
            loop=loop,
            limits=self.limits,
            refuse=self.refuse,
            on_made=self._made,
            on_lost=self.live.discard,
        )
        self.pending[handler] = loop.time()
        return handler

    def _made(self, handler: AdminHandler) -> None:
        self.pending.pop(handler, None)
        self.live.add(handler)
