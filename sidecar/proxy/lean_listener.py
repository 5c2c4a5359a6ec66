"""The key listener: an asyncio protocol and llhttp (``httptools``) in front of the pipeline.

What a listener serves is a :class:`~sidecar.proxy.site.Site`: a key's pipeline, or the admin
listener's routes, which so get the same connections, limits and refusals.

It owns every connection of a key's listener from accept to close, whatever the connection
turns into: each request head is parsed once, here, and every ``server:`` limit
(``max_connections``, ``header_timeout_s``, ``body_timeout_s``, ``idle_timeout_s``,
``max_header_bytes``, ``max_headers``) applies to every connection, a WebSocket upgrade's
included. Deadlines are checked by one sweep per listener rather than a timer per request.

Bytes become a :class:`~sidecar.proxy.pipeline.BotRequest` once the whole request has arrived;
:func:`~sidecar.proxy.pipeline.respond` decides and forwards, and the answer goes back in one
write (:func:`~sidecar.proxy.lean_http.response_bytes`, the one writer). Requests on one
connection are answered in order. What the head itself shows to be unreadable or unserved
(CONNECT, a missing or doubled ``Host``, an encoding the sidecar does not decode: see
:func:`~sidecar.proxy.lean_http.read_head`) is refused here, recorded by :func:`record_refusal`
(the one place a listener refusal becomes an audit line and a metric), and the connection closes.

A WebSocket upgrade (``GET`` with ``Upgrade: websocket``, on a key with WebSocket sessions) is
answered ``101`` by the same connection once the requests before it are answered and the
session's checks pass (:func:`sidecar.proxy.ws.handler.serve_ws`); its frames then go to a
:class:`~sidecar.proxy.ws.bot.BotSocket` on the same transport, and the connection keeps
counting against ``max_connections`` until it closes. Any other upgrade (``h2c``) is declined:
the request is served as HTTP/1.1 and the bytes after it are parsed as the next request.

It is longer than most modules on purpose: one connection's state machine (phases, deadlines,
the answer queue, the switch to WebSocket frames) is read and written by the parser callbacks,
the answering callbacks and the sweep alike, and is easiest to check whole. What needs no connection
(the answer bytes, head checks, body decoding) lives in :mod:`sidecar.proxy.lean_http`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

from sidecar.errors import (
    BadRequest,
    BodyTooLarge,
    ClientDisconnected,
    HeadersTooLarge,
    Overloaded,
    RequestTimeout,
    SidecarError,
    Unauthenticated,
    VersionNotSupported,
)
from sidecar.gate.head import DEFAULT_KINDS, RequestHead
from sidecar.gate.paths import check_path
from sidecar.proxy.client_tokens import CLOSE_REASON
from sidecar.proxy.drive import PENDING, drive
from sidecar.proxy.lean_http import (
    CONTINUE,
    DECODED_HERE,
    decode_body,
    error_bytes,
    read_head,
    response_bytes,
)
from sidecar.proxy.limits import ListenerLimits
from sidecar.proxy.peer import UNKNOWN_PEER, Peer, peer_from_transport
from sidecar.proxy.pipeline import BotRequest, BotResponse, ReadyBody
from sidecar.proxy.record import RequestRecord
from sidecar.proxy.site import Site
from sidecar.proxy.ws.bot import BotSocket
from sidecar.proxy.ws.handler import close_sessions

log = logging.getLogger("sidecar.listener")

IDLE, HEAD, BODY, BUSY, UPGRADED = range(5)  # a connection's phase

LINGER_S = 1.0  # how long a refused connection is kept half-closed (see BotConnection._linger)

_VERSION = re.compile(rb"HTTP/\d\.\d")
_MAX_QUEUED = 8  # pipelined requests read ahead before reading pauses
_FIRST_LINE = 8192  # bytes of a head kept to tell a request line of another HTTP version
_NO_HEAD = RequestHead([], DEFAULT_KINDS)  # before a head is read (never changed)
# The usual methods' text, looked up rather than decoded for every request.
_METHODS = {m.encode("ascii"): m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")}


def _other_http_version(head: bytes) -> bool:
    """Whether a request line the parser refused is well formed but not HTTP/1.x (``HTTP/2.0``,
    ``PRI * HTTP/2.0``, or HTTP/0.9's bare ``GET /path``): 505 rather than 400."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) == 2 and parts[0].isalpha() and parts[1].startswith(b"/"):
        return b"\n" in head  # the whole line arrived: HTTP/0.9
    return (
        len(parts) == 3
        and _VERSION.fullmatch(parts[2]) is not None
        and parts[2] not in (b"HTTP/1.0", b"HTTP/1.1")
    )


def _safe_target(url: bytes) -> str:
    """The part of a refused request's target an audit line may carry: a canonical path (and
    its query, of which the record keeps only the length), else ``-``. Nothing else the client
    sent is ever echoed."""
    target = url.decode("latin-1")
    try:
        check_path(target.partition("?")[0])
    except SidecarError:
        return "-"
    return target


def record_refusal(
    site: Site,
    error: SidecarError,
    method: str = "-",
    url: bytes = b"",
    peer: Peer = UNKNOWN_PEER,
) -> None:
    """Record a refusal the listener made (an audit line and metrics, like any other answer).
    ``method`` is one llhttp recognised (or ``-``); the path only when canonical."""
    site.refused(error, method, _safe_target(url) if url else "-", peer)


class _Stop(Exception):
    """Raised from a parser callback to stop parsing; ``BotConnection.stop`` says why."""


@dataclass(slots=True)
class _Queued:
    request: BotRequest
    keep_alive: bool
    http10: bool
    websocket: bool


class LeanServer:
    """One key listener's connections, limits and deadline sweep (the protocol factory)."""

    def __init__(self, site: Site, limits: ListenerLimits) -> None:
        self.site = site
        self.limits = limits
        self.connections: set[BotConnection] = set()
        self.closing = False
        self._drained = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self.started_in_pass = False  # a request began to be answered in this loop pass

    def pass_over(self) -> None:
        self.started_in_pass = False

    def __call__(self) -> BotConnection:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return BotConnection(self)

    async def _sweep(self) -> None:
        limits = self.limits
        every = min(1.0, limits.header_timeout_s, limits.body_timeout_s, limits.idle_timeout_s) / 4
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for conn in list(self.connections):
                if conn.deadline and now >= conn.deadline:
                    conn.expire()

    @property
    def busy(self) -> int:
        return sum(1 for c in self.connections if c.phase not in (IDLE, UPGRADED) or c.queue)

    def settled(self) -> None:
        """A connection went idle or closed: when closing, maybe the last in-flight one."""
        if self.closing and not self.busy:
            self._drained.set()

    async def close(self, grace_s: float) -> None:
        """Close WebSocket sessions (1001), let in-flight requests finish (up to ``grace_s``),
        then close every connection."""
        self.closing = True
        for conn in list(self.connections):
            if conn.phase == IDLE and not conn.queue:
                conn.close()
        if self.site.ws is not None:
            await close_sessions(self.site.ws)
        self.settled()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), grace_s)
        for conn in list(self.connections):
            conn.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


class BotConnection(asyncio.Protocol):
    """One bot connection."""

    def __init__(self, server: LeanServer) -> None:
        self.server = server
        self.limits = server.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = UNKNOWN_PEER
        self.phase = IDLE
        self.deadline = 0.0
        self.loop = asyncio.get_running_loop()
        self.now = self.loop.time()  # read once per data callback (see _expect)
        self.queue: deque[_Queued] = deque()
        self.answering = False  # from a request taken off the queue until the queue is empty
        self.current: _Queued | None = None  # the request whose answer is being made
        self.worker: asyncio.Task[None] | None = None  # a WebSocket session's
        self.refusal: Callable[[], None] | None = None  # written once the answers before it are
        self.first_bytes = b""  # the start of the current head, to tell HTTP/2 from garbage
        self.read_in_head = 0  # bytes read since the current head began (a bound, not exact)
        self.completed_in_chunk = False
        self.stop: SidecarError | None = None  # set by a callback before it raises _Stop
        self.refused = False
        self.release: Callable[[], None] | None = None  # forgets it in sidecar.proxy.client_tokens
        self.revoked = False  # its client token was revoked: closed after the answer in flight
        self.socket: BotSocket | None = None  # once upgraded to a WebSocket
        self.held: list[bytes] = []  # bytes after a WebSocket upgrade head, until the 101
        self.raw_left = (
            0  # body bytes of a declined upgrade still to come (llhttp ends at its head)
        )
        self.eof = False  # the bot half-closed: it sends nothing more, but reads its answers
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []  # as llhttp read them: one pass at the end
        self.head_size = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.head = _NO_HEAD

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = peer_from_transport(transport)
        if self.server.closing:  # accepted just before the listener stopped: not served
            transport.close()
            return
        if len(self.server.connections) >= self.limits.max_connections:
            exc = Overloaded("too many connections to this listener; retry shortly")
            record_refusal(self.server.site, exc, peer=self.peer)
            self.transport.write(error_bytes(exc))
            transport.close()
            return
        self.server.connections.add(self)
        self._expect(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.release is not None:
            self.release()
        self.transport = None
        self.server.settled()
        if self.socket is not None:
            self.socket.lost()
        # An in-flight answer finishes (the order still reaches Gate once); its write is dropped.
        if self.phase == BODY and self.url and not self.refused:
            # The bot went away mid-body: nothing was signed or sent; audited like a refusal.
            gone = ClientDisconnected("the client closed the connection mid-body")
            record_refusal(self.server.site, gone, self._method(), self.url, self.peer)

    def eof_received(self) -> bool | None:
        """The bot half-closed (``shutdown(SHUT_WR)``): it sends nothing more but still reads.
        The answers owed for what it sent are written (an order it sent has reached Gate, or is
        on its way: its answer must not be lost), then the connection closes. Owing nothing, it
        closes now: a request not yet whole was never forwarded (``connection_lost`` audits it).
        Over TLS a close_notify ends the connection whole (asyncio cannot keep it half open)."""
        self.eof = True
        owed = (bool(self.queue) or self.answering) and self.phase != UPGRADED  # a session ends
        if owed and self.transport is not None and not self.transport.get_extra_info("sslcontext"):
            return True
        return None

    def pause_writing(self) -> None:
        if self.socket is not None:
            self.socket.pause_writing()

    def resume_writing(self) -> None:
        if self.socket is not None:
            self.socket.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.now = self.loop.time()
        if self.raw_left:
            self._raw_body(data)
            return
        if self.phase == UPGRADED:
            if self.socket is not None:
                self.socket.feed(data)
            else:  # before the 101: kept for the WebSocket (reading is paused meanwhile)
                self.held.append(data)
            return
        if self.phase == IDLE:
            self.phase = HEAD
            self.read_in_head = 0
            self.first_bytes = b""
            self._expect(self.limits.header_timeout_s)
        if self.phase == HEAD:
            self.read_in_head += len(data)
            if b"\n" not in self.first_bytes and len(self.first_bytes) < _FIRST_LINE:
                self.first_bytes += data[:_FIRST_LINE]
        self.completed_in_chunk = False
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            stop, self.stop = self.stop, None
            if stop is None:  # a bug in a callback, not a refusal: named, never the bytes
                log.error("listener callback failed (%s)", type(exc.__context__).__name__)
                stop = SidecarError("internal error in gate-sidecar")
            self._refuse(stop)
            return
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0] :] if upgrade.args else b"")
            return
        except httptools.HttpParserError:
            if _other_http_version(self.first_bytes):
                self._refuse(VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served"))
            else:
                self._refuse(BadRequest("the request is not valid HTTP/1.1"))
            return
        if self.phase == HEAD and self.read_in_head > self.limits.max_header_bytes:
            self._refuse(self._head_too_large())

    def _upgraded(self, rest: bytes) -> None:
        """llhttp stopped after a head asking for an upgrade (the request itself is queued)."""
        # The upgrade request is the last one queued, or already taken off the queue to answer.
        queued = self.queue[-1] if self.queue else self.current
        if queued is not None and queued.websocket:
            self.phase = UPGRADED  # what follows are frames, for the session (or nothing)
            self.deadline = 0.0
            if rest:
                self.held.append(rest)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        # Declined (h2c, or a WebSocket on a key without sessions): the request is ordinary
        # HTTP/1.1 and the bytes after it are its body (llhttp ends an upgrade request at its
        # head), then the next request.
        if self.raw_left:
            self._raw_body(rest)
        else:
            self._next_request(rest)

    def _raw_body(self, data: bytes) -> None:
        """Bytes of a declined upgrade request's body (``Content-Length`` long)."""
        take = data[: self.raw_left]
        self.body.append(take)
        self.raw_left -= len(take)
        if self.raw_left:
            return
        try:
            self._complete()
        except SidecarError as exc:
            self._refuse(exc)
            return
        self._next_request(data[len(take) :])

    def _next_request(self, rest: bytes) -> None:
        """After an upgrade request llhttp will not read on: a new parser for what follows."""
        self.parser = httptools.HttpRequestParser(self)
        if rest:
            self.phase = HEAD
            self.first_bytes = rest[:_FIRST_LINE]
            self.read_in_head = len(rest)
            self._expect(self.limits.header_timeout_s)
            self._feed(rest)

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.phase != HEAD or self.completed_in_chunk:
            # Pipelined: sent while the request before it is answered, or in the same read.
            self.phase = HEAD
            self.read_in_head = 0
            self._expect(self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.phase == BODY:  # a chunked body's trailer: bounded, read, never forwarded
            if self.head_size > self.limits.max_header_bytes:
                self._stop(self._head_too_large())
            return
        self.headers.append((name, value))
        if len(self.headers) > self.limits.max_headers:
            self._stop(HeadersTooLarge(f"more than {self.limits.max_headers} headers"))
        if self.head_size > self.limits.max_header_bytes:
            self._stop(self._head_too_large())

    def on_headers_complete(self) -> None:
        parser = self.parser
        try:
            head = read_head(
                parser.get_method(),
                parser.get_http_version(),
                self.headers,
                self.server.site.kinds,
            )
        except SidecarError as exc:
            self._stop(exc)
        if head.websocket and self.server.site.ws is None:
            head.websocket = False  # a key without WebSocket sessions: an ordinary GET
        if parser.should_upgrade() or head.websocket:
            if head.chunked or (head.websocket and head.length > 0):
                self._stop(BadRequest("an upgrade request with this body is not served"))
            if not head.websocket:  # declined: llhttp leaves the body to the listener
                self.raw_left = max(head.length, 0)
        if head.length > self.server.site.max_body_bytes:
            self._stop(self._body_too_large())
        self.head = head
        self.phase = BODY
        self._expect(self.limits.body_timeout_s)
        if head.expect_continue and self.transport is not None:
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.server.site.max_body_bytes:
            self._stop(self._body_too_large())
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.raw_left:
            return  # a declined upgrade: its body comes after llhttp stops (_raw_body)
        try:
            self._complete()
        except SidecarError as exc:
            self._stop(exc)

    def _complete(self) -> None:
        """The request is whole: queue it, and start answering if nothing is being answered."""
        parser = self.parser
        body = b"".join(self.body)
        head = self.head
        if head.coding in DECODED_HERE:  # the body goes on decoded: its label never crosses
            body = decode_body(head.coding, body, self.server.site.max_body_bytes)
        method = _METHODS.get(parser.get_method()) or self._method()
        request = BotRequest(method, self.url.decode("latin-1"), head, ReadyBody(body), self.peer)
        keep_alive = parser.should_keep_alive() and not self.server.closing
        if keep_alive and self.release is None and not head.websocket:
            # Admission holds for the connection's life (a WebSocket session holds its own).
            self.release = self.server.site.hold(head.headers, self._token_revoked)
        self.queue.append(
            _Queued(request, keep_alive, parser.get_http_version() == "1.0", head.websocket)
        )
        self._reset()
        self.phase = BUSY
        self.deadline = 0.0
        self.completed_in_chunk = True
        if not self.answering:
            self.answering = True
            server = self.server
            if server.started_in_pass:
                # Others were read in this loop pass: answered together at the next pass, after
                # all of them are parsed, which measured 6-9% less CPU per request under 64 busy
                # connections than answering each inside its own callback (docs/performance.md).
                self.loop.call_soon(self._answer)
            else:
                # The first of its pass (every one, on a quiet listener): answered at once, no
                # loop pass between the bot's last byte and the upstream write.
                server.started_in_pass = True
                self.loop.call_soon(server.pass_over)
                self._answer()
        elif len(self.queue) >= _MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()

    def _method(self) -> str:
        try:
            return self.parser.get_method().decode("ascii")
        except (httptools.HttpParserError, UnicodeDecodeError):
            return "-"

    def _stop(self, why: SidecarError) -> None:
        self.stop = why
        raise _Stop

    def _head_too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(f"request head over {self.limits.max_header_bytes} bytes")

    def _body_too_large(self) -> BodyTooLarge:
        return BodyTooLarge(f"request body exceeds {self.server.site.max_body_bytes} bytes")

    # -- answering -----------------------------------------------------------------------------
    def _answer(self) -> None:
        """Answer the queued requests in order. Each goes through the pipeline without a Task,
        as far as it goes without waiting; the answer of one that waits for Gate is written from
        the upstream connection's callback (see :mod:`sidecar.proxy.drive`), and what really
        must wait goes on in a Task."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self._answered_all()  # closed meanwhile, or after a Connection: close answer
            return
        self._answer_queue()

    def _answer_queue(self) -> None:
        site = self.server.site
        queue = self.queue
        while queue:
            queued = self.current = queue.popleft()
            if queued.websocket:
                self.worker = self.loop.create_task(self._websocket(queued.request))
                return
            outcome = drive(site.respond(queued.request), self._answered)
            if outcome is PENDING:
                return  # on in _answered
            if not self._write(queued, outcome):
                return
        if self.eof and self.refusal is None:  # every answer owed to a half-closed bot is out
            self.close()
        elif self.phase == BUSY:
            self.phase = IDLE
            self.now = self.loop.time()
            self._expect(self.limits.idle_timeout_s)
            if self.server.closing:
                self.close()
        self._answered_all()

    def _answered(self, outcome: tuple[BotResponse, RequestRecord | None] | None) -> None:
        """The request in flight has its answer, from the upstream connection's callback (or at
        the end of the Task that took it over)."""
        queued = self.current
        assert queued is not None
        if self._write(queued, outcome):
            self._answer_queue()

    def _write(
        self, queued: _Queued, outcome: tuple[BotResponse, RequestRecord | None] | None
    ) -> bool:
        """Write one answer; whether the connection goes on to the next request."""
        self.current = None
        if outcome is None:  # the pipeline failed outside its own handling (logged)
            self.close()
            self._answered_all()
            return False
        response, record = outcome
        transport = self.transport
        keep_alive = (
            queued.keep_alive
            and not self.server.closing
            and not response.close
            and not self.revoked
        )
        if transport is not None and not transport.is_closing():
            transport.write(
                response_bytes(
                    response.status,
                    response.headers,
                    response.body,
                    keep_alive=keep_alive,
                    http10=queued.http10,
                    head=queued.request.method == "HEAD",
                    lines=response.lines,
                )
            )
        # The observers (the audit line above all) run once the answer is on the wire: uvloop
        # sends what was written at the end of the current callbacks, so calling them here
        # would hold the answer back by their cost.
        self.loop.call_soon(self.server.site.finish, record, response.status)
        if transport is None:
            self._answered_all()
            return False
        if not keep_alive:
            self.close()
            self._answered_all()
            return False
        if len(self.queue) < _MAX_QUEUED and self.phase != UPGRADED:
            transport.resume_reading()
        return True

    def _answered_all(self) -> None:
        """No answer is being made any more: a refusal waiting for the answers before it goes
        out after them (at the next loop pass, after their audit lines)."""
        self.answering = False
        refusal, self.refusal = self.refusal, None
        if refusal is not None:
            self.loop.call_soon(refusal)

    async def _websocket(self, request: BotRequest) -> None:
        """Serve a WebSocket upgrade: refused with a JSON answer before the ``101``, or relayed
        until either side closes; the connection closes after it."""
        try:
            await self._session(request)
        finally:
            self.worker = None
            self._answered_all()

    async def _session(self, request: BotRequest) -> None:
        site = self.server.site
        try:
            await site.websocket(request, self._switch)
        except SidecarError as exc:  # before the 101: an ordinary refusal
            self._refuse(exc, request.method, request.target.encode("latin-1"))
            return
        except Exception:
            log.exception("websocket session failed", extra={"key": site.name})
        self.close()

    def _switch(self, accept: list[tuple[str, str]], max_message_bytes: int) -> BotSocket:
        """Answer ``101`` and read frames from now on."""
        transport = self.transport
        if transport is None:
            raise ClientDisconnected("the client closed the connection before the upgrade")
        if self.server.closing:
            raise Overloaded("the listener is shutting down; reconnect")
        transport.write(response_bytes(101, accept, b"", keep_alive=True))
        self.phase = UPGRADED
        self.deadline = 0.0  # the session keeps its own idle deadline (keys[].ws.idle_timeout_s)
        socket = self.socket = BotSocket(transport, max_message_bytes)
        held, self.held = b"".join(self.held), []
        transport.resume_reading()
        if held:
            socket.feed(held)
        return socket

    def _refuse(
        self, error: SidecarError, method: str | None = None, url: bytes | None = None
    ) -> None:
        """Answer a request the listener itself refuses, after any queued answers, and close.
        Its audit line is written with its answer, so audit lines follow the answers' order."""
        if self.refused:
            return
        self.refused = True
        site = self.server.site
        if url is None:
            url = self.url  # the request line read so far (empty: refused before one)
            method = self._method() if url else "-"
        self.phase = BUSY
        self.deadline = 0.0

        def answer(_: object = None) -> None:
            record_refusal(site, error, method or "-", url, self.peer)
            if self.transport is not None:
                self.transport.write(error_bytes(error))
            self._linger()

        in_session = self.worker is not None and self.worker is asyncio.current_task()
        if not self.answering or in_session:
            self.queue.clear()  # the refused request is the last one served
            answer()
        else:  # answer in order: after the requests before it (all of them are answered)
            self.refusal = answer

    def _token_revoked(self) -> None:
        """The client token this connection was opened with left the token file: audited, then
        closed now if idle, else once the answer in flight is written."""
        record_refusal(self.server.site, Unauthenticated(CLOSE_REASON), peer=self.peer)
        self.revoked = True
        if self.phase == IDLE and not self.queue:
            self.close()

    # -- deadlines -----------------------------------------------------------------------------
    def _expect(self, within_s: float) -> None:
        # The loop's time as the current callback began: one read per callback, however many
        # phases a read goes through.
        self.deadline = self.now + within_s

    def expire(self) -> None:
        """The sweep found this connection past its deadline."""
        if self.phase in (HEAD, BODY):
            self._refuse(RequestTimeout("the request did not arrive in time"))
        elif self.phase == IDLE:
            self.close()

    def close(self) -> None:
        self.server.connections.discard(self)
        self.deadline = 0.0
        if self.transport is not None:
            self.transport.close()

    def _linger(self) -> None:
        """Close after a refusal without destroying the answer: a socket closed while the bot's
        bytes are still arriving makes the kernel reset the connection, and the reset can discard
        the answer before the bot reads it. So: stop writing (FIN), let what the bot still sends
        be dropped unread (``refused``), and close a moment later, or when the bot closes."""
        transport = self.transport
        if transport is None:
            return
        self.deadline = 0.0
        transport.resume_reading()  # paused for a WebSocket upgrade: read (and drop) till close
        if transport.can_write_eof():  # not on TLS: there the pause alone must do
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.close)
