"""The key listener (the lean one, the only one): HTTP/1.1 over raw sockets, its limits, a
declined upgrade, TLS, and the peer it gives the pipeline. WebSocket upgrades and the refusals
at the edge: tests/test_front_door.py."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httptools
import pytest

from sidecar.config import parse_config
from sidecar.config.listen import parse_listen
from sidecar.proxy.forwarder import UpstreamRequest, UpstreamResponse
from sidecar.proxy.limits import ListenerLimits
from sidecar.proxy.pipeline import BotRequest, KeyRuntime, respond
from sidecar.runtime.app import running
from sidecar.runtime.listeners import LeanListener, serve_lean
from tests.certs import self_signed
from tests.doubles import MemoryForwarder
from tests.sync import eventually

PATH = "/api/v4/spot/accounts"


@dataclass
class Lean:
    """A sidecar whose key is served by the lean listener, over an in-memory upstream."""

    url: str
    port: int
    forwarder: MemoryForwarder
    runtime: KeyRuntime
    listener: LeanListener
    delay_s: float = 0.0

    @property
    def host(self) -> str:
        """The Host header line an HTTP/1.1 request to this listener carries."""
        return f"Host: 127.0.0.1:{self.port}\r\n"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


JSON = "Content-Type: application/json\r\n"  # the sidecar forwards JSON bodies only


def _config(listen: str = "127.0.0.1:0", **server: Any) -> Any:
    return parse_config(
        {
            "upstream": {"base_url": "http://127.0.0.1:9"},
            "admin": {"listen": "127.0.0.1:0"},
            "clock": {"sync": False},
            "server": {"max_body_bytes": 1000, **server},
            "keys": [
                {
                    "name": "bot",
                    "listen": listen,
                    "socket_mode": "0600",
                    "source": {"env": {}},
                    "policy": "full-trading",
                    "canary": {"enabled": False},
                }
            ],
        },
        environ={},
    )


@contextlib.asynccontextmanager
async def lean_sidecar(listen: str = "127.0.0.1:0", **server: Any) -> AsyncIterator[Lean]:
    holder: list[Lean] = []

    async def upstream(request: UpstreamRequest) -> UpstreamResponse:
        await asyncio.sleep(holder[0].delay_s)  # pace: the fake upstream's latency
        echo = {"method": request.method, "body": request.body.decode(), "path": request.path}
        return UpstreamResponse(200, [("X-Up", "1")], json.dumps(echo).encode())

    forwarder = MemoryForwarder(upstream)
    environ = {"GATE_KEY": "k", "GATE_SECRET": "s"}
    async with running(_config(listen, **server), environ=environ, forwarder=forwarder) as sidecar:
        handle = sidecar.keys["bot"]
        await asyncio.wait_for(handle.source.loaded.wait(), 5)
        assert isinstance(handle.listener, LeanListener)
        port = int(handle.url.rsplit(":", 1)[1]) if handle.url.startswith("http") else 0
        holder.append(Lean(handle.url, port, forwarder, handle.runtime, handle.listener))
        yield holder[0]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from ``reader`` (status, headers lower-cased, body)."""
    got: dict[str, Any] = {"headers": {}, "body": b"", "done": False}

    class Sink:
        def on_header(self, name: bytes, value: bytes) -> None:
            got["headers"][name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            got["body"] += body

        def on_message_complete(self) -> None:
            got["done"] = True

    parser = httptools.HttpResponseParser(Sink())
    while not got["done"]:
        chunk = await asyncio.wait_for(reader.read(1), 5)  # byte by byte: never read past it
        if not chunk:
            raise ConnectionError("closed before a whole response")
        parser.feed_data(chunk)
    return parser.get_status_code(), got["headers"], got["body"]


async def exchange(lean: Lean, data: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await lean.connect()
    try:
        writer.write(data)
        return await read_response(reader)
    finally:
        writer.close()


async def closed(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionError):
        return await asyncio.wait_for(reader.read(), 5) == b""
    return True


def label(body: bytes) -> str:
    value: str = json.loads(body)["label"]
    return value


# -- HTTP/1.1 ------------------------------------------------------------------------------


async def test_a_request_is_forwarded_with_the_bots_headers_in_order_and_answered() -> None:
    async with lean_sidecar() as lean:
        status, headers, body = await exchange(
            lean,
            f"POST {PATH}?a=1 HTTP/1.1\r\nHost: 127.0.0.1:{lean.port}\r\n"
            "X-Gate-Channel-Id: 2\r\nX-Client-Request-Id: 1\r\nContent-Type: "
            'application/json\r\nContent-Length: 7\r\n\r\n{"n":1}'.encode(),
        )
        assert status == 200 and headers["x-up"] == "1"
        assert json.loads(body) == {"method": "POST", "body": '{"n":1}', "path": PATH}
        (sent,) = lean.forwarder.sent
        names = [k for k, _ in sent.all_headers()]
        assert names[:3] == ["X-Gate-Channel-Id", "X-Client-Request-Id", "Content-Type"]
        assert sent.raw_query == "a=1"
        assert {"KEY", "Timestamp", "SIGN"} <= set(names) and "Host" not in names


async def test_a_kept_alive_connection_serves_requests_one_after_another() -> None:
    async with lean_sidecar() as lean:
        reader, writer = await lean.connect()
        for _ in range(3):
            writer.write(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{lean.port}\r\n\r\n".encode())
            status, headers, _ = await read_response(reader)
            assert status == 200 and "connection" not in headers
        writer.close()
        assert len(lean.forwarder.sent) == 3


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with lean_sidecar() as lean:
        reader, writer = await lean.connect()
        bodies = [b'{"i":1}', b'{"i":22}', b'{"i":333}']
        writer.write(
            b"".join(
                f"POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}"
                f"Content-Length: {len(b)}\r\n\r\n".encode()
                + b
                for b in bodies
            )
        )
        for b in bodies:
            _, _, body = await read_response(reader)
            assert json.loads(body)["body"] == b.decode()
        writer.close()


async def test_a_request_sent_while_the_one_before_is_answered_is_served_next() -> None:
    async with lean_sidecar(header_timeout_s=5) as lean:
        lean.delay_s = 0.2
        reader, writer = await lean.connect()
        writer.write(
            f"POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}Content-Length: 3\r\n\r\n[1]".encode()
        )
        await eventually(lambda: len(lean.forwarder.sent) == 1, 5, "the first at the upstream")
        writer.write(
            f"POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}Content-Length: 3\r\n\r\n[2]".encode()
        )
        bodies = [json.loads((await read_response(reader))[2])["body"] for _ in range(2)]
        assert bodies == ["[1]", "[2]"]
        writer.close()


async def test_an_http10_request_without_keep_alive_is_answered_and_closed() -> None:
    async with lean_sidecar() as lean:
        reader, writer = await lean.connect()
        writer.write(f"GET {PATH} HTTP/1.0\r\n\r\n".encode())
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers["connection"] == "close"
        assert await closed(reader)


async def test_a_head_request_gets_headers_and_no_body() -> None:
    async with lean_sidecar() as lean:
        reader, writer = await lean.connect()
        writer.write(
            f"HEAD {PATH} HTTP/1.1\r\n{lean.host}\r\n"
            f"GET {PATH} HTTP/1.1\r\n{lean.host}\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        status, _, body = await read_response(reader)  # the next answer follows at once
        assert status == 200 and json.loads(body)["method"] == "GET"
        writer.close()


async def test_a_gzip_body_is_forwarded_decoded_without_its_encoding() -> None:
    async with lean_sidecar() as lean:
        packed = gzip.compress(b'{"text":"buy"}')
        status, _, body = await exchange(
            lean,
            f"POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}Content-Encoding: gzip\r\n"
            f"Content-Length: {len(packed)}\r\n\r\n".encode()
            + packed,
        )
        assert status == 200 and json.loads(body)["body"] == '{"text":"buy"}'
        assert all(k.lower() != "content-encoding" for k, _ in lean.forwarder.sent[0].all_headers())


async def test_a_chunked_body_is_forwarded_whole() -> None:
    async with lean_sidecar() as lean:
        status, _, body = await exchange(
            lean,
            f"POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}Transfer-Encoding: chunked\r\n\r\n"
            '3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'.encode(),
        )
        assert status == 200 and json.loads(body)["body"] == '{"a":1}'


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async with lean_sidecar() as lean:
        reader, writer = await lean.connect()
        writer.write(
            f"POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}Expect: 100-continue\r\n"
            "Content-Length: 2\r\n\r\n".encode()
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"{}")
        status, _, _ = await read_response(reader)
        assert status == 200
        writer.close()


# -- refusals and limits -----------------------------------------------------------------------

REFUSALS: list[tuple[str, bytes, int, str]] = [
    (
        "an HTTP/0.9 request line",
        b"GET /api/v4/spot/accounts\r\n\r\n",
        505,
        "HTTP_VERSION_NOT_SUPPORTED",
    ),
    (
        "an HTTP/2.0 request line",
        f"GET {PATH} HTTP/2.0\r\n\r\n".encode(),
        505,
        "HTTP_VERSION_NOT_SUPPORTED",
    ),
    ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP_VERSION_NOT_SUPPORTED"),
    (
        "an unknown version",
        f"GET {PATH} HTTP/1.7\r\n\r\n".encode(),
        505,
        "HTTP_VERSION_NOT_SUPPORTED",
    ),
    ("garbage", b"\x16\x03\x01 not http\r\n\r\n", 400, "BAD_REQUEST"),
    (
        "more headers than max_headers",
        (f"GET {PATH} HTTP/1.1\r\nHost: x\r\n" + "X-N: 1\r\n" * 11 + "\r\n").encode(),
        431,
        "HEADERS_TOO_LARGE",
    ),
    (
        "a head over max_header_bytes",
        f"GET {PATH} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 2000}\r\n\r\n".encode(),
        431,
        "HEADERS_TOO_LARGE",
    ),
    (
        "a Content-Length over max_body_bytes",
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n".encode(),
        413,
        "BODY_TOO_LARGE",
    ),
    (
        "a chunked body over max_body_bytes",
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"3e9\r\n{'a' * 1001}\r\n0\r\n\r\n".encode(),
        413,
        "BODY_TOO_LARGE",
    ),
    (
        "a gzip body that inflates over max_body_bytes",
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: "
        f"{len(gzip.compress(b'0' * 5000))}\r\n\r\n".encode()
        + gzip.compress(b"0" * 5000),
        413,
        "BODY_TOO_LARGE",
    ),
    (
        "a gzip body that does not inflate",
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
        "Content-Length: 4\r\n\r\nnope".encode(),
        400,
        "BAD_REQUEST",
    ),
]


@pytest.mark.parametrize(
    ("data", "status", "suffix"),
    [pytest.param(d, s, x, id=name) for name, d, s, x in REFUSALS],
)
async def test_the_listener_refuses_with_a_sidecar_error_and_closes(
    data: bytes, status: int, suffix: str
) -> None:
    async with lean_sidecar(max_headers=10, max_header_bytes=1024) as lean:
        reader, writer = await lean.connect()
        writer.write(data)
        got, _, body = await read_response(reader)
        assert (got, label(body)) == (status, f"SIDECAR_{suffix}")
        assert await closed(reader)
        # The bot closes its end too, as a client does: else the refused connection lingers
        # (LINGER_S), and the shutdown below waits for it.
        writer.close()
        assert lean.forwarder.sent == []


async def test_a_head_that_does_not_arrive_in_time_is_408_and_closed() -> None:
    async with lean_sidecar(header_timeout_s=0.2) as lean:
        reader, writer = await lean.connect()
        writer.write(f"GET {PATH} HTTP/1.1\r\n{lean.host}X-Slow: ".encode())
        status, _, body = await read_response(reader)
        assert (status, label(body)) == (408, "SIDECAR_REQUEST_TIMEOUT")
        assert await closed(reader)
        writer.close()  # (as above: no lingering until the shutdown)


async def test_a_body_that_does_not_arrive_in_time_is_408_and_closed() -> None:
    async with lean_sidecar(body_timeout_s=0.2) as lean:
        reader, writer = await lean.connect()
        writer.write(f"POST {PATH} HTTP/1.1\r\n{lean.host}Content-Length: 10\r\n\r\n{{".encode())
        status, _, body = await read_response(reader)
        assert (status, label(body)) == (408, "SIDECAR_REQUEST_TIMEOUT")
        assert lean.forwarder.sent == []
        writer.close()  # (as above: no lingering until the shutdown)


async def test_a_silent_or_idle_connection_is_closed_after_its_timeout() -> None:
    async with lean_sidecar(header_timeout_s=0.2, idle_timeout_s=0.3) as lean:
        silent, _ = await lean.connect()
        reader, writer = await lean.connect()
        writer.write(f"GET {PATH} HTTP/1.1\r\n{lean.host}\r\n".encode())
        assert (await read_response(reader))[0] == 200
        assert await closed(silent) and await closed(reader)


async def test_connections_beyond_max_connections_get_503_overloaded() -> None:
    async with lean_sidecar(max_connections=2) as lean:
        held = [await lean.connect() for _ in range(2)]  # accepted in order: no wait needed
        reader, _ = await lean.connect()
        status, _, body = await read_response(reader)
        assert (status, label(body)) == (503, "SIDECAR_OVERLOADED")
        assert await closed(reader)
        reader, writer = held[0]  # the ones it holds are served as usual
        writer.write(f"GET {PATH} HTTP/1.1\r\n{lean.host}\r\n".encode())
        assert (await read_response(reader))[0] == 200


async def test_closing_lets_an_in_flight_request_finish_and_closes_idle_ones() -> None:
    async with lean_sidecar(shutdown_grace_s=5) as lean:
        lean.delay_s = 0.3
        idle_reader, _ = await lean.connect()
        reader, writer = await lean.connect()
        writer.write(f"GET {PATH} HTTP/1.1\r\n{lean.host}\r\n".encode())
        await eventually(lambda: len(lean.forwarder.sent) == 1, 5, "the request in flight")
        closing = asyncio.create_task(lean.listener.close())
        assert await closed(idle_reader)
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers["connection"] == "close"
        await closing
        assert not lean.listener.is_open


# -- the peer, TLS and a declined upgrade ---------------------------------------------------------


def _tls_pair(tmp: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the CA file a client needs to verify it."""
    cert, key = self_signed("127.0.0.1", ip="127.0.0.1")
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, cert_file


@contextlib.asynccontextmanager
async def extra_listener(
    lean: Lean, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[LeanListener]:
    """A second listener for the same key."""
    listener = await serve_lean(
        lean.runtime,
        parse_listen("127.0.0.1:0"),
        mode=0o660,
        shutdown_grace_s=1,
        limits=ListenerLimits(),
        ssl_context=tls,
    )
    try:
        yield listener
    finally:
        await listener.close()


async def test_a_unix_socket_listener_is_created_with_its_mode_and_serves(tmp_path: Path) -> None:
    sock = tmp_path / "bot.sock"
    async with lean_sidecar(listen=f"unix:{sock}") as lean:
        assert lean.url == f"unix:{sock}" and stat.S_IMODE(sock.stat().st_mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(f"GET {PATH} HTTP/1.1\r\n{lean.host}\r\n".encode())
        assert (await read_response(reader))[0] == 200
        writer.close()


async def test_the_pipeline_gets_the_bots_transport_as_its_peer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sidecar.proxy.site as key_site

    peers: list[Any] = []

    async def spying(key: KeyRuntime, request: BotRequest) -> Any:
        peers.append(request.peer.remote)
        return await respond(key, request)

    monkeypatch.setattr(key_site, "respond", spying)
    async with lean_sidecar() as lean:
        reader, writer = await lean.connect()
        writer.write(f"GET {PATH} HTTP/1.1\r\n{lean.host}\r\n".encode())
        await read_response(reader)
        host, port = writer.get_extra_info("sockname")[:2]
        assert peers == [f"{host}:{port}"]
        writer.close()


async def test_a_tls_listener_serves_https(tmp_path: Path) -> None:
    server_ctx, ca_file = _tls_pair(tmp_path)
    client_ctx = ssl.create_default_context(cafile=str(ca_file))
    async with (
        lean_sidecar() as lean,
        extra_listener(lean, tls=server_ctx) as listener,
        aiohttp.ClientSession() as http,
    ):
        url = listener.url.replace("http://", "https://") + PATH
        for _ in range(2):  # twice: the TLS connection is kept alive
            async with http.get(url, ssl=client_ctx) as resp:
                assert (
                    resp.status == 200 and (await resp.json(content_type=None))["method"] == "GET"
                )


async def test_a_declined_upgrade_is_served_and_the_request_after_it_in_the_same_write_too() -> (
    None
):
    """An ``h2c`` upgrade is not taken: the request is served as HTTP/1.1, and the one that
    came in the same write behind it is answered, not dropped (issue 17, finding 8)."""
    async with lean_sidecar() as lean:
        reader, writer = await lean.connect()
        writer.write(
            f"GET {PATH} HTTP/1.1\r\n{lean.host}Connection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
            f'POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}Content-Length: 7\r\n\r\n{{"n":2}}'.encode()
        )
        first = await read_response(reader)
        second = await read_response(reader)
        assert (first[0], json.loads(first[2])["method"]) == (200, "GET")
        assert (second[0], json.loads(second[2])["body"]) == (200, '{"n":2}')
        writer.close()


async def test_a_declined_upgrade_with_a_body_gets_its_body_also_when_it_comes_later() -> None:
    """llhttp ends an upgrade request at its head; Java's HttpClient offers h2c on a POST with a
    body, so the listener reads that body itself, in whatever pieces it arrives."""
    async with lean_sidecar() as lean:
        reader, writer = await lean.connect()
        head = (
            f"POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}Connection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AA\r\nContent-Length: 7\r\n\r\n"
        ).encode()
        writer.write(head + b'{"n"')
        await eventually(lambda: bool(lean.listener.lean.connections), 5, "connected")
        writer.write(b":1}" + f"GET {PATH} HTTP/1.1\r\n{lean.host}\r\n".encode())
        first = await read_response(reader)
        second = await read_response(reader)
        assert (first[0], json.loads(first[2])["body"]) == (200, '{"n":1}')
        assert (second[0], json.loads(second[2])["method"]) == (200, "GET")
        writer.close()


async def test_an_upgrade_request_with_a_chunked_body_is_refused() -> None:
    async with lean_sidecar() as lean:
        status, _, body = await exchange(
            lean,
            f"POST {PATH} HTTP/1.1\r\n{lean.host}{JSON}Connection: Upgrade\r\nUpgrade: h2c\r\n"
            "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".encode(),
        )
        assert (status, label(body)) == (400, "SIDECAR_BAD_REQUEST")
        assert lean.forwarder.sent == []
