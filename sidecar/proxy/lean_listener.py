"""The lean key listener: an asyncio protocol and llhttp (``httptools``) in front of the pipeline.

Bytes become a :class:`~sidecar.proxy.pipeline.BotRequest` once the whole request has arrived;
:func:`~sidecar.proxy.pipeline.answer` decides and forwards exactly as for aiohttp's listener,
and the response goes back in one write. Requests on one connection are answered in order.

What this listener does not serve itself (an HTTP/1.1 ``Upgrade`` such as a WebSocket, CONNECT,
a ``br``/``zstd`` request body) is handed, connection and all, to the key's aiohttp application
(``fallback``): the bytes of that request are replayed into aiohttp's protocol and aiohttp owns
the connection from then on.

The limits (``server:`` ``header_timeout_s``, ``body_timeout_s``, ``idle_timeout_s``,
``max_connections``, ``max_header_bytes``, ``max_headers``) are enforced here; deadlines are
checked by one sweep per listener rather than a timer per request.

It is longer than most modules on purpose: one connection's state machine (phases, deadlines,
the bytes kept for a handover, the answer queue) is read and written by the parser callbacks,
the answering task and the sweep alike, and is easiest to check whole. What needs no connection
(response bytes, body decoding) lives in :mod:`sidecar.proxy.lean_http`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from collections.abc import Callable
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
from sidecar.proxy.client_tokens import CLIENTS, CLOSE_REASON
from sidecar.proxy.lean_http import (
    CONTINUE,
    DECODED_HERE,
    decode_body,
    response_bytes,
)
from sidecar.proxy.limits import ListenerLimits
from sidecar.proxy.peer import UNKNOWN_PEER, peer_from_transport
from sidecar.proxy.pipeline import (
    BotRequest,
    KeyRuntime,
    ReadyBody,
    error_response,
    finish,
    refuse_outside_request,
    respond,
)
from sidecar.proxy.pipeline import new_record as _new_record

IDLE, HEAD, BODY, BUSY = range(4)  # a connection's phase

LINGER_S = 1.0  # how long a refused connection is kept half-closed (see BotConnection._linger)

_VERSION = re.compile(rb"HTTP/\d\.\d")


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


_MAX_QUEUED = 8  # pipelined requests read ahead before reading pauses


class _Stop(Exception):
    """Raised from a parser callback to stop parsing; ``BotConnection.stop`` says why."""


HANDOVER = "handover"  # BotConnection.stop: this request goes to the aiohttp application


class LeanServer:
    """One key listener's connections, limits and deadline sweep (the protocol factory)."""

    def __init__(
        self,
        runtime: KeyRuntime,
        limits: ListenerLimits,
        fallback: Callable[[], asyncio.Protocol] | None = None,
    ) -> None:
        self.runtime = runtime
        self.limits = limits
        self.fallback = fallback
        self.connections: set[BotConnection] = set()
        self.closing = False
        self._drained = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None

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
        return sum(1 for c in self.connections if c.phase != IDLE or c.queue)

    def settled(self) -> None:
        """A connection went idle or closed: when closing, maybe the last in-flight one."""
        if self.closing and not self.busy:
            self._drained.set()

    async def close(self, grace_s: float) -> None:
        """Let in-flight requests finish (up to ``grace_s``), then close every connection."""
        self.closing = True
        for conn in list(self.connections):
            if conn.phase == IDLE and not conn.queue:
                conn.close()
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
        self.queue: collections.deque[tuple[BotRequest, bool, bool]] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.raw: list[bytes] = []  # this request's bytes so far, for a handover
        self.raw_exact = True
        self.completed_in_chunk = False
        self.stop: SidecarError | str | None = None  # set by a callback before it raises _Stop
        self.refused = False
        self.release: Callable[[], None] | None = None  # forgets it in sidecar.proxy.client_tokens
        self.revoked = False  # its client token was revoked: closed after the answer in flight
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.head_size = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.coding = ""

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = peer_from_transport(transport)
        if self.server.closing:  # accepted just before the listener stopped: not served
            transport.close()
            return
        if len(self.server.connections) >= self.limits.max_connections:
            exc = Overloaded("too many connections to this key listener; retry shortly")
            refuse_outside_request(self.server.runtime, exc)  # audited and counted, as any refusal
            self._write_error(exc, keep_alive=False)
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
        # An in-flight answer finishes (the order still reaches Gate once); its write is dropped.
        if self.phase == BODY and self.url and not self.refused:
            # The bot went away mid-body: nothing was signed or sent; audited like a refusal.
            runtime = self.server.runtime
            gone = ClientDisconnected("the client closed the connection mid-body")
            method = self.parser.get_method().decode("ascii")
            record = _new_record(runtime, method, self.url.decode("latin-1"), self.peer)
            record.label = gone.label
            finish(runtime, record, gone.status)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.phase == IDLE:
            self.phase = HEAD
            self.raw = []
            self.raw_exact = True
            self._expect(self.limits.header_timeout_s)
        if self.phase == HEAD:
            self.raw.append(data)
        self.completed_in_chunk = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            stop, self.stop = self.stop, None
            if stop == HANDOVER:
                self._hand_over()
            else:
                internal = SidecarError("internal error in gate-sidecar")
                self._refuse(stop if isinstance(stop, SidecarError) else internal)
            return
        except httptools.HttpParserUpgrade:
            return  # handled in on_headers_complete
        except httptools.HttpParserError:
            if _other_http_version(b"".join(self.raw)):
                self._refuse(VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served"))
            else:
                self._refuse(BadRequest("the request is not valid HTTP/1.1"))
            return
        if self.phase == HEAD and sum(map(len, self.raw)) > self.limits.max_header_bytes:
            self._refuse(self._head_too_large())

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.phase != HEAD or self.completed_in_chunk:
            # Pipelined: sent while the request before it is answered, or in the same read. Its
            # bytes are not all in self.raw, so it cannot be handed over; it is served in turn.
            self.phase = HEAD
            self.raw_exact = False
            self._expect(self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))
        self.head_size += len(name) + len(value) + 4
        if len(self.headers) > self.limits.max_headers:
            self._stop(HeadersTooLarge(f"more than {self.limits.max_headers} headers"))
        if self.head_size > self.limits.max_header_bytes:
            self._stop(self._head_too_large())

    def on_headers_complete(self) -> None:
        parser = self.parser
        if parser.get_http_version() not in ("1.1", "1.0"):
            self._stop(VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served"))
        expect = False
        length = -1
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-encoding":
                self.coding = value.strip().lower()
            elif lower == "content-length" and value.strip().isdigit():
                length = int(value)
            elif lower == "expect" and value.strip().lower() == "100-continue":
                expect = True
        method = parser.get_method()
        if parser.should_upgrade() or method == b"CONNECT" or self.coding in ("br", "zstd"):
            self._stop(HANDOVER)
        if length > self.server.runtime.max_body_bytes:
            self._stop(self._body_too_large())
        self.phase = BODY
        self.raw = []
        self._expect(self.limits.body_timeout_s)
        if expect and self.transport is not None:
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.server.runtime.max_body_bytes:
            self._stop(self._body_too_large())
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        body = b"".join(self.body)
        request = BotRequest(
            parser.get_method().decode("ascii"),
            self.url.decode("latin-1"),
            self.headers,
            ReadyBody(body),
            self.peer,
        )
        if self.coding in DECODED_HERE:
            try:
                request.read_body = ReadyBody(
                    decode_body(self.coding, body, self.server.runtime.max_body_bytes)
                )
            except SidecarError as exc:
                self._stop(exc)
        keep_alive = parser.should_keep_alive() and not self.server.closing
        if keep_alive and self.release is None:  # admission holds for the connection's life
            self.release = CLIENTS.hold(self.server.runtime, self.headers, self._token_revoked)
        self.queue.append((request, keep_alive, parser.get_http_version() == "1.0"))
        self._reset()
        self.phase = BUSY
        self.deadline = 0.0
        self.completed_in_chunk = True
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())
        elif len(self.queue) >= _MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()

    def _stop(self, why: SidecarError | str) -> None:
        self.stop = why
        raise _Stop

    def _head_too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(f"request head over {self.limits.max_header_bytes} bytes")

    def _body_too_large(self) -> BodyTooLarge:
        return BodyTooLarge(f"request body exceeds {self.server.runtime.max_body_bytes} bytes")

    # -- answering -----------------------------------------------------------------------------
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                request, keep_alive, http10 = self.queue.popleft()
                runtime = self.server.runtime
                response, record = await respond(runtime, request)
                transport = self.transport
                keep_alive = keep_alive and not self.server.closing and not self.revoked
                if transport is not None:
                    transport.write(
                        response_bytes(
                            response.status,
                            response.headers,
                            response.body,
                            keep_alive=keep_alive,
                            http10=http10,
                            head=request.method == "HEAD",
                        )
                    )
                # The observers (the audit line above all) run once the answer is on the wire:
                # uvloop sends what was written at the end of the current callbacks, so calling
                # them here would hold the answer back by their cost.
                loop.call_soon(finish, runtime, record, response.status)
                if transport is None:
                    return
                if not keep_alive:
                    self.close()
                    return
                if len(self.queue) < _MAX_QUEUED:
                    transport.resume_reading()
            if self.phase == BUSY:
                self.phase = IDLE
                self._expect(self.limits.idle_timeout_s)
                if self.server.closing:
                    self.close()
        finally:
            self.worker = None

    def _refuse(self, error: SidecarError) -> None:
        """Answer a request the listener itself refuses, after any queued answers, and close.
        Its audit line is written with its answer, so audit lines follow the answers' order."""
        self.refused = True
        runtime = self.server.runtime
        record = None
        if self.url:  # the request line was read: record the refusal like any other answer
            method = self.parser.get_method().decode("ascii")
            record = _new_record(runtime, method, self.url.decode("latin-1"), self.peer)
            record.label = error.label
        self.phase = BUSY
        self.deadline = 0.0

        def answer(_: object = None) -> None:
            if record is not None:
                finish(runtime, record, error.status)
            else:  # refused before a request line (a stalled or unparsable head): still audited
                refuse_outside_request(runtime, error)
            self._write_error(error, keep_alive=False)
            self._linger()

        if self.worker is None:
            answer()
        else:  # answer in order: after the queued requests
            self.queue.clear()
            self.worker.add_done_callback(answer)

    def _write_error(self, error: SidecarError, *, keep_alive: bool) -> None:
        if self.transport is not None:
            response = error_response(error)
            data = response_bytes(
                response.status, response.headers, response.body, keep_alive=keep_alive
            )
            self.transport.write(data)

    def _hand_over(self) -> None:
        transport = self.transport
        fallback = self.server.fallback
        if transport is None:
            return
        if fallback is None or not self.raw_exact or self.worker is not None:
            self._refuse(BadRequest("this request cannot be served on this connection"))
            return
        self.server.connections.discard(self)
        if self.release is not None:  # the WebSocket session holds its own
            self.release()
        self.transport = None
        protocol = fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(b"".join(self.raw))

    def _token_revoked(self) -> None:
        """The client token this connection was opened with left the token file: audited, then
        closed now if idle, else once the answer in flight is written."""
        refuse_outside_request(self.server.runtime, Unauthenticated(CLOSE_REASON))
        self.revoked = True
        if self.phase == IDLE and not self.queue:
            self.close()

    # -- deadlines -----------------------------------------------------------------------------
    def _expect(self, within_s: float) -> None:
        self.deadline = asyncio.get_running_loop().time() + within_s

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
        if transport.can_write_eof():  # not on TLS: there the pause alone must do
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.close)
