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

A request head pipelined behind a request still being handled gets the same deadline and cap
from its first byte; its refusal is written only once the answers to the requests before it have
been (HTTP/1.1 answers go in order), then the connection closes. One case is not covered: the
first bytes of a next head that arrive in the same read as the end of the previous request (the
parser keeps them inside llhttp, out of reach); the head timer starts with its next bytes, and a
head that never sends any is closed by ``idle_timeout_s`` instead.

Where no public hook exists this reads attributes of aiohttp's ``RequestHandler`` (all present
from 3.14, the floor): ``_request_count`` and ``_messages`` (requests parsed on the connection,
and those queued behind the one being handled), ``_request_in_progress``, ``_waiter`` (set while
the handler waits for the next request), ``_upgraded`` and ``_payload_parser`` (the connection
was upgraded, e.g. a WebSocket): with the body stream of the last parsed request they tell a
request head apart from a request body.
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
        self._last_payload: Any = None  # the body stream of the last request parsed
        self._deferred: SidecarError | None = None  # a refusal waiting for earlier answers

    # -- the head deadline and size cap -------------------------------------------------------
    def _between_requests(self) -> bool:
        waiter = self._waiter
        return (waiter is not None and not waiter.done()) or self._request_count == 0

    def _awaiting_head(self) -> bool:
        """The next bytes start a request head: the connection is idle, or the last request's
        body is complete (a pipelined head while that request is still handled)."""
        if self._upgraded or self._payload_parser is not None:
            return False  # a WebSocket (or another upgrade): its bytes are not HTTP heads
        if self._between_requests():
            return True
        last = self._last_payload
        return last is not None and last.is_eof()

    def data_received(self, data: bytes) -> None:
        if self._deferred is not None:
            return  # refused already: the answer goes out after the earlier ones, then close
        in_head = self._head_timer is not None or self._awaiting_head()
        before = self._request_count
        if in_head and self._head_timer is None:
            self._head_bytes = 0
            self._head_timer = self._loop.call_later(
                self._limits.header_timeout_s, self._head_timed_out
            )
        super().data_received(data)
        if self._request_count != before and self._messages:
            self._last_payload = self._messages[-1][1]
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
        """Refuse a head that never completed: now if the connection is idle, else once the
        requests before it have been answered (:meth:`finish_response`)."""
        self._stop_head_timer()
        if self._request_in_progress or self._messages:
            self._deferred = exc
        else:
            self._answer_and_close(exc)

    def _answer_and_close(self, exc: SidecarError) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(raw_response(exc))
        report(self._refuse, exc)
        self.force_close()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        resp, reset = await super().finish_response(request, resp, start_time)
        exc = self._deferred
        if exc is not None and not self._messages:  # the last answer before the refused head
            self._deferred = None
            if not reset and resp.keep_alive:
                self._answer_and_close(exc)
            # else the connection closes anyway, and the unfinished head with it
        return resp, reset

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
