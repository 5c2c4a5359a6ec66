"""The bot's side of a WebSocket session on the key listener: the handshake and the frames.

The key listener (:mod:`sidecar.proxy.lean_listener`) parses the upgrade request like any other
request head, under the same limits; :func:`handshake` checks what RFC 6455 asks of it and gives
the ``101`` answer's headers; :class:`BotSocket` then reads and writes frames on the same
connection with wsproto's sans-IO frame layer. The session (:mod:`.session`) sees only
:class:`BotLeg`: whole messages in, text, binary, ping, pong and close out.

What wsproto refuses (an unmasked client frame, a bad opcode, text that is not UTF-8) closes the
connection with the code it names (1002, 1007); a message over ``max_frame_bytes`` with 1009.
No extension (permessage-deflate) and no subprotocol is accepted: a bot gets plain frames.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError, generate_accept_token

from sidecar.errors import BadRequest

CLOSE_WAIT_S = 2.0  # how long a close we started waits for the bot's close before hanging up
_MAX_INBOX = 64  # messages read ahead of the session before reading pauses


class Kind(Enum):
    TEXT = "text"
    BINARY = "binary"
    PING = "ping"
    PONG = "pong"
    CLOSE = "close"  # the bot closed (``code``, ``reason``); its close was answered
    GONE = "gone"  # the connection ended without a close from the bot (or on a protocol error)


@dataclass(frozen=True, slots=True)
class BotMessage:
    kind: Kind
    text: str = ""  # TEXT
    data: bytes = b""  # BINARY, PING, PONG
    code: int | None = None  # CLOSE
    reason: str = ""  # CLOSE


class BotLeg(Protocol):
    """The bot's connection as a session uses it."""

    async def receive(self) -> BotMessage: ...
    async def send_text(self, text: str) -> None: ...
    async def send_binary(self, data: bytes) -> None: ...
    async def ping(self, data: bytes) -> None: ...
    async def pong(self, data: bytes) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


def handshake(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers of the ``101`` answer to a WebSocket upgrade request (GET, ``Upgrade:
    websocket``); BadRequest when the request is not one RFC 6455 allows."""
    key = version = None
    connection: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "sec-websocket-key":
            if key is not None:
                raise BadRequest("more than one Sec-WebSocket-Key header")
            key = value.strip()
        elif lower == "sec-websocket-version":
            version = value.strip()
        elif lower == "connection":
            connection.extend(t.strip().lower() for t in value.split(","))
    if "upgrade" not in connection:
        raise BadRequest("a WebSocket upgrade needs Connection: Upgrade")
    if version != "13":
        raise BadRequest("only WebSocket version 13 is served")
    if key is None or len(key) != 24 or not key.isascii():
        raise BadRequest("a WebSocket upgrade needs a valid Sec-WebSocket-Key")
    return [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", generate_accept_token(key.encode("ascii")).decode("ascii")),
    ]


class Wire(Protocol):
    """The part of the connection a BotSocket writes to (an asyncio transport)."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class BotSocket:
    """One bot WebSocket over an upgraded connection; the listener feeds it bytes
    (:meth:`feed`), tells it when writing must wait (:meth:`pause_writing`) and when the
    connection is lost (:meth:`lost`)."""

    def __init__(self, wire: Wire, max_message_bytes: int) -> None:
        self.wire = wire
        self.max_message_bytes = max_message_bytes
        self.ws = Connection(ConnectionType.SERVER)
        self.inbox: asyncio.Queue[BotMessage] = asyncio.Queue()
        self.closed = asyncio.Event()  # the close handshake ended, or the connection did
        self.writable = asyncio.Event()
        self.writable.set()
        self.paused = False
        self.parts: list[str | bytes | bytearray] = []
        self.size = 0

    # -- from the listener --------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.closed.is_set():
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                self._message(event)
            elif isinstance(event, Ping):
                self._put(BotMessage(Kind.PING, data=bytes(event.payload)))
            elif isinstance(event, Pong):
                self._put(BotMessage(Kind.PONG, data=bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                self._closed_by_bot(event)
                return
        if self.inbox.qsize() >= _MAX_INBOX and not self.paused:
            self.paused = True
            self.wire.pause_reading()

    def lost(self) -> None:
        self.closed.set()
        self.writable.set()
        self._put(BotMessage(Kind.GONE))

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def _put(self, message: BotMessage) -> None:
        self.inbox.put_nowait(message)

    def _message(self, event: TextMessage | BytesMessage) -> None:
        self.size += len(event.data)
        if self.size > self.max_message_bytes:
            self._fail(1009, "message too big")
            return
        self.parts.append(event.data)
        if not event.message_finished:
            return
        parts, self.parts, self.size = self.parts, [], 0
        if isinstance(event, TextMessage):
            self._put(BotMessage(Kind.TEXT, text="".join(p for p in parts if isinstance(p, str))))
        elif isinstance(event, BytesMessage):
            self._put(
                BotMessage(Kind.BINARY, data=b"".join(p for p in parts if isinstance(p, bytes)))
            )

    def _closed_by_bot(self, event: CloseConnection) -> None:
        state = self.ws.state
        if state is ConnectionState.REMOTE_CLOSING:  # the bot's close: answered with its code
            self._write(event.response())
            self._put(BotMessage(Kind.CLOSE, code=event.code, reason=event.reason or ""))
            self._hang_up()
        elif state is ConnectionState.CLOSED:  # the answer to a close we sent
            self._hang_up()
        else:  # wsproto refused a frame (1002 unmasked or malformed, 1007 bad UTF-8)
            self._fail(event.code, event.reason or "protocol error")

    def _fail(self, code: int, reason: str) -> None:
        self._write(CloseConnection(code, reason))
        self._hang_up()
        self._put(BotMessage(Kind.GONE))

    def _hang_up(self) -> None:
        self.closed.set()
        self.wire.close()

    def _write(self, event: CloseConnection | TextMessage | BytesMessage | Ping | Pong) -> None:
        if self.wire.is_closing():
            raise ConnectionResetError("the bot's connection is closed")
        try:
            self.wire.write(self.ws.send(event))
        except LocalProtocolError:  # a close was sent already: nothing more may follow
            raise ConnectionResetError("the bot's WebSocket is closing") from None

    # -- BotLeg -------------------------------------------------------------------------------
    async def receive(self) -> BotMessage:
        message = await self.inbox.get()
        if self.paused and self.inbox.qsize() < _MAX_INBOX // 2:
            self.paused = False
            self.wire.resume_reading()
        return message

    async def _send(self, event: TextMessage | BytesMessage | Ping | Pong) -> None:
        await self.writable.wait()
        self._write(event)

    async def send_text(self, text: str) -> None:
        await self._send(TextMessage(text))

    async def send_binary(self, data: bytes) -> None:
        await self._send(BytesMessage(data))

    async def ping(self, data: bytes) -> None:
        await self._send(Ping(data))

    async def pong(self, data: bytes) -> None:
        await self._send(Pong(data))

    async def close(self, code: int, reason: str) -> None:
        """Send a close (if none was sent), wait a moment for the bot's, then hang up."""
        if self.ws.state is ConnectionState.OPEN and not self.wire.is_closing():
            self._write(CloseConnection(code, reason))
            try:
                await asyncio.wait_for(self.closed.wait(), CLOSE_WAIT_S)
            except TimeoutError:
                pass
        self._hang_up()
