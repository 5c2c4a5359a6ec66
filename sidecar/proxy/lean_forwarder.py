"""The lean forwarder: asyncio protocols over a pool of keep-alive connections, llhttp parsing.

The sidecar's only forwarder. One request costs a head built with one ``join``, one write, the
llhttp parser (``httptools``) calling back into :class:`_Connection`, and one future: no client
session, request or response objects, no stream readers, no semaphore and no timer. The
connection cap is a plain count (a request waits in a queue only when every connection is busy)
and ``upstream.timeout_s`` is kept by one sweep per forwarder (:meth:`LeanForwarder._sweep`)
over the exchanges in flight, so a timeout fires between ``timeout_s`` and ``timeout_s`` plus a
quarter of it (at most one second) late. See
:class:`~sidecar.proxy.forwarder.Forwarder` for the contract it keeps; the resend rule itself is
:func:`~sidecar.proxy.forwarder.deliver`'s, this module only tells a stale connection apart.

Longer than most modules on purpose: the pool (slots, idle connections, the deadline sweep) and
one connection's exchange (its head written, Gate's answer parsed and kept as bytes, the
:class:`~sidecar.proxy.drive.Prompt` that resumes the request) hand each connection back and
forth, and are easiest to check side by side.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

from sidecar.aio import task_from_here
from sidecar.errors import (
    SidecarError,
    StaleConnection,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from sidecar.gate.head import ANSWER_KINDS, DROPPED_ANSWER, relayed_lines
from sidecar.proxy.drive import Prompt, prompt
from sidecar.proxy.forwarder import UpstreamConfig, UpstreamRequest, UpstreamResponse
from sidecar.tls import client_tls_context

# A kept-alive connection idle longer than this is closed rather than reused: upstreams and load
# balancers close idle connections after 60 s or more, and a request racing such a close is the
# one case that costs a resend.
IDLE_REUSE_S = 30.0

# Connection tokens that name no header to drop beyond the hop-by-hop ones.
_CONNECTION_OPTIONS = DROPPED_ANSWER | {b"close", b""}

# Methods whose request has a body by definition: Content-Length is sent even when it is 0.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _encode(text: str) -> bytes:
    # The lean listener hands header bytes on as latin-1 text: encoding back gives the same
    # bytes. Text decoded as UTF-8 (aiohttp's listener) goes back as UTF-8.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def request_head(request: UpstreamRequest, host: str) -> bytes:
    """The request's head, byte for byte: request line, Host, the bot's header lines as they
    came (``request.lines``), the sidecar's own headers, framing."""
    method, body, query = request.method, request.body, request.raw_query
    first = (
        f"{method} {request.path}?{query} HTTP/1.1\r\nHost: {host}\r\n"
        if query
        else f"{method} {request.path} HTTP/1.1\r\nHost: {host}\r\n"
    )
    own = "".join([f"{name}: {value}\r\n" for name, value in request.headers])
    framed = bool(body) or method in _BODY_METHODS
    own = f"{own}Content-Length: {len(body)}\r\n\r\n" if framed else own + "\r\n"
    bot = request.lines
    # Exactly the line breaks put here, one pair per line: a CR or LF inside a name or value (or
    # the request line) would add one to a count, which must be the number of lines put here
    # (the request line, Host, the sidecar's headers, the framing, the blank line). The bot's
    # lines come from llhttp, which refuses a CR or LF in a value, and admission, which refuses
    # control characters: checked all the same, a lone CR or LF by three scans, an unended last
    # line by its end.
    text = first + own
    lines = len(request.headers) + (4 if framed else 3)
    if (
        text.count("\n") != lines
        or text.count("\r") != lines
        or not bot.count(b"\r\n") == bot.count(b"\n") == bot.count(b"\r")
        or (bot and not bot.endswith(b"\r\n"))
    ):
        raise UpstreamUnavailable("a header cannot be sent (it contains a line break)")
    return _encode(first) + bot + _encode(own)


class _Connection(asyncio.Protocol):
    """One upstream connection; carries one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        # Made by loop.create_connection, in the loop it serves. One read of the running loop
        # per connection: in CPython 3.11 each read is a getpid() system call.
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self.uses = 0  # requests written on this connection
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self.deadline = 0.0  # the loop time by which the exchange in flight must be answered
        self._waiter: Prompt[UpstreamResponse] | None = None
        self._feeding = False  # inside the parser: a driver waiting on the answer waits for it
        self._then: Callable[[], None] | None = None  # that driver, once the parser returns
        self._limit = 0
        self._head_only = False
        self._answer_bytes = 0
        self._status = 0
        self._new_head()
        self._body: list[bytes] = []
        self._size = 0

    # -- one exchange ------------------------------------------------------------------------
    def exchange(self, data: bytes, limit: int, head_only: bool) -> Prompt[UpstreamResponse]:
        assert self._transport is not None and self._waiter is None
        self.uses += 1
        self.reusable = False
        self._waiter = prompt(self._loop)
        self._limit, self._head_only = limit, head_only
        self._answer_bytes = self._status = self._size = 0
        self._new_head()
        self._body = []
        self._transport.write(data)
        return self._waiter

    def _finish(self, result: UpstreamResponse | SidecarError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if isinstance(result, SidecarError):
            self.close()  # whatever is left of the answer makes the connection useless
            waiter.set_exception(result)
        else:
            waiter.set_result(result)
        # A request driven without a Task (sidecar.proxy.drive) goes on from here, at once: it
        # writes the bot's answer. Not from inside the parser, though: the request after it may
        # take this very connection for its own exchange.
        if waiter.then is not None:
            if self._feeding:
                self._then = waiter.then
            else:
                waiter.then()

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        self._answer_bytes += len(data)
        self._feeding = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            # Also a callback that stopped the parser (_Stop) after it had failed the exchange:
            # then this _finish changes nothing.
            self._finish(UpstreamUnavailable("Gate's answer is not valid HTTP/1.1"))
        finally:
            self._feeding = False
        then, self._then = self._then, None
        if then is not None:
            then()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None:
            if self.uses > 1 and self._answer_bytes == 0:
                self._finish(StaleConnection("Gate closed a kept-alive connection"))
            else:
                self._finish(UpstreamUnavailable("Gate connection failed before a whole answer"))

    def time_out(self) -> None:
        # Called by the sweep's Task: the request waiting goes on outside it (see _finish).
        self._loop.call_soon(self._time_out, self._waiter)

    def _time_out(self, waiter: Prompt[UpstreamResponse] | None) -> None:
        if waiter is not None and waiter is self._waiter:  # not answered meanwhile
            self._finish(UpstreamTimeout("Gate did not answer in time"))

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    # -- httptools callbacks -----------------------------------------------------------------
    def _new_head(self) -> None:
        self._pairs: list[tuple[bytes, bytes]] = []  # every header of the answer, as received
        self._read: list[tuple[bytes, bytes]] = []  # those the sidecar reads, by lower-case name
        self._relayed: list[bytes] = []  # the lines the bot gets, in pieces
        self._length = -1  # Content-Length
        self._listed = False  # a Connection header named a header that is not hop-by-hop

    def on_header(self, name: bytes, value: bytes) -> None:
        self._pairs.append((name, value))  # read in one pass once the head is whole

    def _read_head(self) -> None:
        # One pass: each header kept as bytes, classified by one lookup of its lower-case name.
        relayed, read = self._relayed, self._read
        for name, value in self._pairs:
            lower = name.lower()
            kind = ANSWER_KINDS.get(lower)
            if kind is None or kind[0]:  # relayed as it came
                relayed += (name, b": ", value, b"\r\n")
                if kind is None:  # and not read
                    continue
            if kind[1]:  # read by the sidecar (decoded if asked for)
                read.append((lower, value))
                if lower == b"content-length" and value.isdigit() and self._length < 0:
                    self._length = int(value)
            elif lower == b"connection" and not self._listed:
                # Most answers say just keep-alive or close: one lookup, no split.
                self._listed = value.lower() not in _CONNECTION_OPTIONS and any(
                    token.strip().lower() not in _CONNECTION_OPTIONS for token in value.split(b",")
                )

    def _answer(self, body: bytes) -> UpstreamResponse:
        relayed = relayed_lines(self._pairs) if self._listed else b"".join(self._relayed)
        return UpstreamResponse(
            self._status, None, body, pairs=self._pairs, read=self._read, relayed=relayed
        )

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status < 200:  # an interim answer (100 Continue): its headers are not Gate's
            self._new_head()
            return
        self._read_head()
        if self._head_only:  # the answer to HEAD ends here; llhttp would wait for a body
            self._finish(self._answer(b""))
            self.close()
            return
        if self._length > self._limit:
            self._finish(UpstreamTooLarge(f"Gate's answer is over {self._limit} bytes"))
            raise _Stop

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            self._finish(UpstreamTooLarge(f"Gate's answer is over {self._limit} bytes"))
            raise _Stop
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:
            return
        self.reusable = self._parser.should_keep_alive() and not self.closed
        self._finish(self._answer(b"".join(self._body)))


class _Stop(Exception):
    """Stops the parser from a callback once the exchange has failed."""


#: Opens one upstream connection for a protocol factory and returns the protocol, connected.
Opener = Callable[[Callable[[], _Connection]], Awaitable[_Connection]]


class LeanForwarder:
    """The forwarder to Gate; see :class:`~sidecar.proxy.forwarder.Forwarder`."""

    def __init__(self, cfg: UpstreamConfig, opener: Opener | None = None) -> None:
        """``opener``: opens a connection for a protocol factory (by default a TCP or TLS
        connection to ``cfg.base_url``); ``bench/path.py`` gives in-memory ones."""
        self._opener = opener
        url = urlsplit(cfg.base_url)
        self._host_header = url.netloc
        self._host = url.hostname or ""
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._tls: ssl.SSLContext | None = (
            client_tls_context(cfg.ca_file) if url.scheme == "https" else None
        )
        self._connect_timeout = cfg.connect_timeout_s
        self._timeout = cfg.timeout_s
        self._limit = cfg.max_response_bytes
        self._max = cfg.max_connections
        self._busy = 0  # requests holding one of the max_connections slots
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()
        self._idle: list[_Connection] = []  # most recently used last: taken first
        self._inflight: set[_Connection] = set()  # exchanges the sweep watches
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it sends on (see send)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._closed:
            raise UpstreamUnavailable("the forwarder is closed")
        data = request_head(request, self._host_header) + request.body
        loop = self._loop
        if loop is None or not loop.is_running():
            # Bound to the loop it sends on, like its pooled connections and its sweep; read
            # once, not per request (each read of the running loop is a getpid() system call in
            # CPython 3.11).
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        if self._busy < self._max and not self._queue:
            self._busy += 1
        else:
            await self._wait_for_slot(loop)
        try:
            conn = self._take_idle() or await self._connect(deadline)
            if self._closed:
                conn.close()
                raise UpstreamUnavailable("the forwarder is closed")
            waiter = conn.exchange(data, self._limit, request.method == "HEAD")
            conn.deadline = deadline
            inflight = self._inflight
            inflight.add(conn)
            if self._sweeper is None:
                self._sweeper = loop.create_task(self._sweep())
            try:
                answer = await waiter
            except BaseException:
                conn.close()
                raise
            finally:
                inflight.discard(conn)
            if conn.reusable and not self._closed:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return answer
        finally:
            self._release()

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for a slot, first come first served; :meth:`_release` hands it over."""
        slot = loop.create_future()
        self._queue.append(slot)
        try:
            await slot
        except BaseException:
            if slot.done() and not slot.cancelled():  # handed over as it was cancelled
                self._release()
            raise

    def _release(self) -> None:
        queue = self._queue
        while queue:
            slot = queue.popleft()
            if not slot.done():
                slot.set_result(None)  # the slot passes to the next request as it stands
                return
        self._busy -= 1

    async def _sweep(self) -> None:
        """Fail the exchanges past their deadline: one task for the forwarder, instead of a
        timer armed and cancelled for every request."""
        every = min(1.0, self._timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            if self._closed and not self._inflight:
                self._sweeper = None
                return
            now = loop.time()
            for conn in [c for c in self._inflight if now >= c.deadline]:
                conn.time_out()

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_REUSE_S:
                return conn
            conn.close()
        return None

    async def _connect(self, deadline: float) -> _Connection:
        await task_from_here()  # asyncio.timeout below needs one
        loop = asyncio.get_running_loop()
        within = min(self._connect_timeout, deadline - loop.time())
        try:
            async with asyncio.timeout(within):
                if self._opener is not None:
                    conn = await self._opener(_Connection)
                else:
                    _, conn = await loop.create_connection(
                        _Connection,
                        self._host,
                        self._port,
                        ssl=self._tls,
                        server_hostname=self._host if self._tls else None,
                    )
        except TimeoutError:
            if within < self._connect_timeout:
                raise UpstreamTimeout("Gate did not answer in time") from None
            raise UpstreamUnavailable("cannot reach Gate: connect timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamUnavailable(f"cannot reach Gate: {type(exc).__name__}") from None
        return conn

    def idle_open(self) -> int:
        """How many kept-alive connections wait for reuse and have not seen their upstream close
        them (a close that reached one takes it out of reuse, see :meth:`_take_idle`)."""
        return sum(1 for conn in self._idle if not conn.closed)

    async def close(self) -> None:
        """Close the idle connections; one in use is closed when its exchange ends."""
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        sweeper = self._sweeper
        if sweeper is not None and not self._inflight:  # else it ends with the last exchange
            self._sweeper = None
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
