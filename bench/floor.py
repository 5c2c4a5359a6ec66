"""The floor of `make bench`: the least a Python signing proxy on the sidecar's stack can cost.

    python bench/floor.py --listen 127.0.0.1:8081 --upstream http://127.0.0.1:8080 [--cafile F]

uvloop, an asyncio Protocol per connection, httptools to find where each request and answer
ends, one kept-alive upstream connection per bot connection, and Gate's three headers (KEY,
Timestamp, SIGN: HMAC-SHA512 of "METHOD\\npath\\nunescaped query\\nhex(sha512(body))\\ntimestamp",
as the sidecar and bench/goproxy sign). Nothing else: no policy, no limits, no audit line, no
metrics, no error answers; the upstream's answer is relayed byte for byte. It is what the issue
that set the speed targets called "a minimal Python proxy on the same stack", measured here in
the same run as nginx, the Go proxy and the sidecar, so the distance from the sidecar to the
floor is read on the machine the bench runs on. Not a product: a bot gets nothing useful from
it on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import ssl
import time
from typing import cast
from urllib.parse import unquote_plus, urlsplit

import httptools
import uvloop

EMPTY_HASH = hashlib.sha512(b"").hexdigest()
DROPPED = {b"host", b"connection", b"keep-alive", b"proxy-connection"}


class Upstream(asyncio.Protocol):
    """The bot connection's own upstream connection: answers go back to the bot as they come."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        for data in self.bot.queued:
            self.transport.write(data)
        self.bot.queued.clear()

    def data_received(self, data: bytes) -> None:
        self.bot.transport.write(data)  # byte for byte: nginx's answers carry Content-Length

    def connection_lost(self, exc: Exception | None) -> None:
        self.bot.transport.close()


class Bot(asyncio.Protocol):
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.parser = httptools.HttpRequestParser(self)
        self.queued: list[bytes] = []
        self.upstream = Upstream(self)
        self.url = b""
        self.headers: list[bytes] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        host, port, ctx = self.proxy.upstream
        name = host if ctx else None
        self.connecting = loop.create_task(
            loop.create_connection(lambda: self.upstream, host, port, ssl=ctx, server_hostname=name)
        )

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream.transport is not None:
            self.upstream.transport.close()

    # httptools' callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in DROPPED:
            self.headers.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        target = self.url.decode()
        body = b"".join(self.body)
        path, _, query = target.partition("?")
        ts = str(int(time.time()))
        body_hash = hashlib.sha512(body).hexdigest() if body else EMPTY_HASH
        message = "\n".join((method, path, unquote_plus(query), body_hash, ts)).encode()
        sign = hmac.new(self.proxy.secret, message, hashlib.sha512).hexdigest()
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {self.proxy.host}\r\nKEY: {self.proxy.key}\r\n"
            f"Timestamp: {ts}\r\nSIGN: {sign}\r\n"
        ).encode()
        data = b"".join((head, *self.headers, b"\r\n", body))
        self.url, self.headers, self.body = b"", [], []
        if self.upstream.transport is None:
            self.queued.append(data)
        else:
            self.upstream.transport.write(data)


class Proxy:
    def __init__(self, upstream: str, cafile: str | None) -> None:
        parts = urlsplit(upstream)
        tls = parts.scheme == "https"
        ctx = ssl.create_default_context(cafile=cafile) if tls else None
        assert parts.hostname is not None
        self.upstream = (parts.hostname, parts.port or (443 if tls else 80), ctx)
        self.host = parts.netloc
        self.key = os.environ["GATE_KEY"]
        self.secret = os.environ["GATE_SECRET"].encode()


async def serve(listen: str, proxy: Proxy) -> None:
    host, _, port = listen.rpartition(":")
    server = await asyncio.get_running_loop().create_server(lambda: Bot(proxy), host, int(port))
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8081")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--cafile")
    args = parser.parse_args()
    uvloop.run(serve(args.listen, Proxy(args.upstream, args.cafile)))


if __name__ == "__main__":
    main()
