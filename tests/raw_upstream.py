"""A scriptable HTTP/1.1 upstream on a raw asyncio server, for the forwarder contract suite.

It sees requests exactly as they were sent (header names, order and duplicates, the target byte
for byte) and can fail a connection in every way a real upstream or a middlebox does: before any
byte of an answer, with a reset, halfway through the status line, after the head, halfway
through the body, or not at all (hang). Each request knows how many came before it on its
connection, so a script can fail only reused keep-alive connections.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools


@dataclass(frozen=True)
class Seen:
    """A request as the upstream received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]  # in order, as sent
    body: bytes
    conn_seq: int = 0  # how many requests this connection carried before this one

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b'{"ok":true}'
    chunked: bool = False  # Transfer-Encoding: chunked instead of Content-Length
    close: bool = False  # close the connection once the answer is written
    delay_s: float = 0.0


class Fault:
    DROP = "drop"  # close the connection before any byte of an answer
    RESET = "reset"  # the same, with a TCP reset
    PARTIAL_HEAD = "partial-head"  # half a status line, then close
    HEAD_ONLY = "head-only"  # a whole head announcing a body, then close
    PARTIAL_BODY = "partial-body"  # the head and half the body, then close
    HANG = "hang"  # never answer

    ALL_CLOSING = (DROP, RESET, PARTIAL_HEAD, HEAD_ONLY, PARTIAL_BODY)


Script = Callable[[Seen, int], Reply | str]  # (request, how many came before) -> reply or fault


def answer_ok(seen: Seen, before: int) -> Reply | str:
    return Reply()


def _head(reply: Reply) -> bytes:
    lines = [f"HTTP/1.1 {reply.status} X"]
    lines += [f"{k}: {v}" for k, v in reply.headers]
    if reply.chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {len(reply.body)}")
    if reply.close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _body(reply: Reply) -> bytes:
    if not reply.chunked:
        return reply.body
    half = len(reply.body) // 2
    parts = [reply.body[:half], reply.body[half:]]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


class _Conn(asyncio.Protocol):
    def __init__(self, upstream: RawUpstream) -> None:
        self.upstream = upstream
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.served = 0
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.upstream.connections += 1
        self.upstream.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.upstream.open.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        seen = Seen(method, self.url.decode("latin-1"), self.headers, bytes(self.body), self.served)
        self.served += 1
        self._reset()
        before = len(self.upstream.seen)
        self.upstream.seen.append(seen)
        asyncio.get_running_loop().create_task(self.answer(self.upstream.script(seen, before)))

    async def answer(self, reply: Reply | str) -> None:
        transport = self.transport
        assert transport is not None
        if isinstance(reply, Reply):
            await asyncio.sleep(reply.delay_s)  # pace: the scripted upstream's latency
            transport.write(_head(reply) + _body(reply))
            if reply.close:
                self.close()
            return
        head = _head(Reply(body=b"x" * 100))
        if reply == Fault.HANG:
            return
        if reply == Fault.RESET:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return
        if reply == Fault.PARTIAL_HEAD:
            transport.write(head[:7])  # "HTTP/1."
        elif reply == Fault.HEAD_ONLY:
            transport.write(head)
        elif reply == Fault.PARTIAL_BODY:
            transport.write(head + b"x" * 50)
        await asyncio.sleep(0.01)  # hold: the bytes leave before the close (a fault's shape)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class RawUpstream:
    seen: list[Seen] = field(default_factory=list)
    script: Script = field(default=answer_ok)
    connections: int = 0  # connections accepted so far
    open: set[_Conn] = field(default_factory=set)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Conn(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for conn in list(self.open):
                conn.close()
            await self.server.wait_closed()
            self.server = None
