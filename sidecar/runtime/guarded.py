"""aiohttp's request handler with the ``server:`` limits: one client cannot hold the process.

aiohttp gives knobs for some limits (``keepalive_timeout``, ``max_line_size``,
``max_field_size``, ``max_headers`` of its request handler); the rest is added here:

- a deadline for a request's head (first byte to blank line, ``header_timeout_s``) and a cap on
  its size (``max_header_bytes``), answered 408 / 431 and closed;
- every refusal aiohttp's own parser makes (a target starting ``%2F``, too many headers, a broken
  request line) answered as ``SIDECAR_*`` JSON that echoes nothing, reported to ``refuse`` (audit
  line and metrics for a key), and logged without a traceback; a client that goes away mid-body
  is not an error either.

The connection cap and accept() errors are :mod:`sidecar.runtime.sites`.

Where no public hook exists this reads two attributes of aiohttp's ``RequestHandler``:
``_request_count`` (requests parsed on the connection) and ``_waiter`` (set while the handler
waits for the next request): they tell a request head apart from a request body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from sidecar.errors import (
    BadRequest,
    HeadersTooLarge,
    RequestTimeout,
    SidecarError,
    error_body,
    for_status,
)
from sidecar.proxy.limits import ListenerLimits

log = logging.getLogger("sidecar.listener")

#: Reports one refusal made outside the application (audit line and metrics for a key).
Refuse = Callable[[SidecarError], None]


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


def report(refuse: Refuse, exc: SidecarError) -> None:
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
        report(self._refuse, exc)
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
        report(self._refuse, mapped)
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
