"""One front door (issue 18) and the edge items of issue 17: the key listener owns every
connection, WebSocket upgrades included, under the same limits; what it cannot read or does not
serve is refused as ``SIDECAR_*`` JSON with an audit line and a metric; nothing a client sent is
echoed into an answer or a log line.

Written from the bot's side against the verifying exchange, which records what arrives.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
import os
import secrets
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from sidecar.proxy.lean_listener import LeanServer
from sidecar.runtime.listeners import LeanListener
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.fixtures_ws import recv_json, ws_upstream
from tests.leaks import register_secret
from tests.rawhttp import parse_response
from tests.sync import eventually

# The scenario of issue 18: before it, 40 CONNECT connections stayed open past every deadline,
# and a head of 100 headers was forwarded.
LIMITS = {
    "max_connections": 8,
    "idle_timeout_s": 4,
    "header_timeout_s": 2,
    "max_headers": 20,
}
PATH = "/api/v4/spot/accounts"
TOKEN = "front-door-token-" + secrets.token_hex(8)


@dataclass
class Door:
    sidecar: RunningSidecar
    exchange: RunningExchange

    def port(self, key: str = "bot") -> int:
        port = URL(self.sidecar.url(key)).port
        assert port is not None
        return port

    def lean(self, key: str = "bot") -> LeanServer:
        listener = self.sidecar.sidecar.keys[key].listener
        assert isinstance(listener, LeanListener)
        return listener.lean

    def host(self, key: str = "bot") -> bytes:
        return b"Host: 127.0.0.1:%d\r\n" % self.port(key)

    def ws_url(self, key: str = "bot") -> str:
        return self.sidecar.url(key).replace("http://", "ws://") + "/ws/v4/"

    async def connect(self, key: str = "bot") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port(key))

    async def send(self, data: bytes, key: str = "bot") -> tuple[int, dict[str, str], bytes]:
        """Send ``data`` on a new connection; the answer, read until the sidecar closes."""
        reader, writer = await self.connect(key)
        try:
            writer.write(data)
            raw = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        return parse_response(raw)

    def counted(self, status: int, key: str = "bot") -> float:
        return sum(
            s.value
            for m in self.sidecar.sidecar.metrics.requests.collect()
            for s in m.samples
            if s.name.endswith("_total")
            and s.labels["key"] == key
            and s.labels["status"] == str(status)
        )


@pytest.fixture
async def door(exchange: RunningExchange, tmp_path: Path) -> AsyncIterator[Door]:
    async with _door(exchange, tmp_path, LIMITS) as door:
        yield door


@pytest.fixture
async def quick_door(exchange: RunningExchange, tmp_path: Path) -> AsyncIterator[Door]:
    """The door with a short ``idle_timeout_s``, for tests that read a keep-alive connection
    until the sidecar closes it (so that they see every byte it ever sends on it): the idle
    deadline starts only once an answer is written, after the whole request was sent, so it
    can be short without racing the client."""
    async with _door(exchange, tmp_path, {**LIMITS, "idle_timeout_s": 0.2}) as door:
        yield door


@contextlib.asynccontextmanager
async def _door(
    exchange: RunningExchange, tmp_path: Path, limits: Mapping[str, float]
) -> AsyncIterator[Door]:
    register_secret(TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    bot, env1, key1, secret1 = env_key("bot", "full-trading", ws={})
    tok, env2, key2, secret2 = env_key(
        "tok", "full-trading", client_auth={"token_file": str(token_file)}
    )
    exchange.state.add_key(key1, secret1)
    exchange.state.add_key(key2, secret2)
    config = make_config(
        exchange.url, [bot, tok], server=limits, upstream={"ws": ws_upstream(exchange)}
    )
    async with running_sidecar(config, {**env1, **env2}) as sidecar:
        yield Door(sidecar, exchange)


def _audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.audit for r in caplog.records if r.name == "sidecar.audit"]  # type: ignore[attr-defined]


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage() for r in bad]


# -- limits hold whatever a connection turns into -------------------------------------------


async def test_connect_is_405_and_closed_and_the_limits_hold_after_it(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(40):  # each answered and closed: none of them stays open
        status, _, body = await door.send(
            b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n"
        )
        assert (status, json.loads(body)["label"]) == (405, "SIDECAR_METHOD_NOT_ALLOWED")
    await eventually(lambda: not door.lean().connections, 5, "every CONNECT connection closed")
    assert door.counted(405) == 40
    assert [a["label"] for a in _audit(caplog)] == ["SIDECAR_METHOD_NOT_ALLOWED"] * 40
    assert door.exchange.state.requests == []
    # max_connections still counts: 8 held, the 9th refused; header_timeout_s closes the silent.
    held = [await door.connect() for _ in range(8)]
    status, _, body = await door.send(b"GET " + PATH.encode() + b" HTTP/1.1\r\n" + door.host())
    assert (status, json.loads(body)["label"]) == (503, "SIDECAR_OVERLOADED")
    for reader, _ in held:
        assert await asyncio.wait_for(reader.read(), 4) == b""  # closed by the head deadline
    for _, writer in held:
        writer.close()
    _no_tracebacks(caplog)


async def test_a_head_of_100_headers_is_431(door: Door) -> None:
    head = b"GET " + PATH.encode() + b" HTTP/1.1\r\n" + door.host()
    head += b"".join(b"X-N%d: 1\r\n" % i for i in range(100))
    status, _, body = await door.send(head + b"\r\n")
    assert (status, json.loads(body)["label"]) == (431, "SIDECAR_HEADERS_TOO_LARGE")
    assert door.exchange.state.requests == []


async def test_websocket_sessions_count_against_max_connections(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        sessions = [await http.ws_connect(door.ws_url()) for _ in range(8)]
        try:
            for ws in sessions:  # each a working session on the key's listener
                await ws.send_str('{"time": 1, "channel": "spot.ping"}')
                assert (await recv_json(ws))["channel"] == "spot.pong"
            assert len(door.lean().connections) == 8
            status, _, body = await door.send(
                b"GET " + PATH.encode() + b" HTTP/1.1\r\n" + door.host() + b"\r\n"
            )
            assert (status, json.loads(body)["label"]) == (503, "SIDECAR_OVERLOADED")
            await sessions.pop().close()
            await eventually(lambda: len(door.lean().connections) == 7, 5, "one session closed")
            async with http.get(door.sidecar.url("bot") + PATH) as resp:
                assert resp.status == 200
        finally:
            for ws in sessions:
                await ws.close()


async def test_an_upgrade_head_that_stalls_gets_the_head_deadline(door: Door) -> None:
    reader, writer = await door.connect()
    writer.write(b"GET /ws/v4/ HTTP/1.1\r\n" + door.host() + b"Upgrade: websocket\r\n")
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status, _, body = parse_response(raw)
    assert (status, json.loads(body)["label"]) == (408, "SIDECAR_REQUEST_TIMEOUT")


def _upgrade(door: Door) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET /ws/v4/ HTTP/1.1\r\n" + door.host() + b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )


async def test_an_unmasked_client_frame_is_closed_with_1002(door: Door) -> None:
    mark = len(door.exchange.state.ws_frames)
    reader, writer = await door.connect()
    writer.write(_upgrade(door))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    frame = b'{"time": 1, "channel": "spot.ping"}'
    writer.write(bytes([0x81, len(frame)]) + frame)  # FIN + text, no mask bit: forbidden
    rest = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert rest[0] == 0x88 and int.from_bytes(rest[2:4], "big") == 1002
    assert door.exchange.state.ws_frames[mark:] == []


async def test_frames_sent_with_the_upgrade_request_reach_the_session(door: Door) -> None:
    """Bytes that follow the upgrade head in the same write are frames, kept for the session."""
    reader, writer = await door.connect()
    frame = b'{"time": 1, "channel": "spot.ping"}'
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(frame))
    writer.write(_upgrade(door) + bytes([0x81, 0x80 | len(frame)]) + mask + masked)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    first = await asyncio.wait_for(reader.readexactly(2), 5)
    answer = await asyncio.wait_for(reader.readexactly(first[1] & 0x7F), 5)
    assert json.loads(answer)["channel"] == "spot.pong"
    writer.close()


# -- refusals at the edge ---------------------------------------------------------------------

EDGE: list[tuple[str, bytes, int, str]] = [
    ("HTTP/1.1 without Host", b"GET /api/v4/spot/accounts HTTP/1.1\r\n\r\n", 400, "BAD_REQUEST"),
    (
        "two Host headers",
        b"GET /api/v4/spot/accounts HTTP/1.1\r\nHost: {h}\r\nHost: {h}\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    (
        "two X-Sidecar-Token headers",
        b"GET /api/v4/spot/accounts HTTP/1.1\r\nHost: {h}\r\nX-Sidecar-Token: a\r\n"
        b"X-Sidecar-Token: b\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    (
        "a br body",
        b"POST /api/v4/spot/orders HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: br\r\nContent-Length: 4\r\n\r\n\x0b\x01\x80{",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "a zstd body",
        b"POST /api/v4/spot/orders HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: zstd\r\nContent-Length: 2\r\n\r\n{}",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "gzip twice",
        b"POST /api/v4/spot/orders HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip, gzip\r\nContent-Length: 2\r\n\r\n{}",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "bytes after the end of a gzip body",
        b"POST /api/v4/spot/orders HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        % (len(gzip.compress(b"{}")) + 9)
        + gzip.compress(b"{}")
        + b"[trailing]"[:9],
        400,
        "BAD_REQUEST",
    ),
    (
        "bytes after the end of a deflate body",
        b"POST /api/v4/spot/orders HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
        % (len(zlib.compress(b"{}")) + 3)
        + zlib.compress(b"{}")
        + b"xyz",
        400,
        "BAD_REQUEST",
    ),
]


@pytest.mark.parametrize(
    ("data", "status", "suffix"), [pytest.param(d, s, x, id=n) for n, d, s, x in EDGE]
)
async def test_an_edge_refusal_is_json_audited_counted_and_nothing_is_forwarded(
    door: Door, caplog: pytest.LogCaptureFixture, data: bytes, status: int, suffix: str
) -> None:
    caplog.set_level(logging.DEBUG)
    data = data.replace(b"{h}", b"127.0.0.1:%d" % door.port())
    got, _, body = await door.send(data)
    assert (got, json.loads(body)["label"]) == (status, f"SIDECAR_{suffix}")
    assert [a["label"] for a in _audit(caplog)] == [f"SIDECAR_{suffix}"]
    assert door.counted(status) == 1
    assert door.exchange.state.requests == []
    _no_tracebacks(caplog)


async def test_a_decoded_body_loses_its_encoding_label_and_trailers_never_cross(
    door: Door,
) -> None:
    """``x-gzip`` is decoded and its label dropped; a chunked body's trailers are read and
    dropped (issue 17, finding 8). The exchange records exactly what arrived."""
    packed = gzip.compress(b'{"text":"t-1"}')
    body = b"%x\r\n%s\r\n0\r\nX-Gate-Channel-Id: evil\r\nContent-Encoding: gzip\r\n\r\n" % (
        len(packed),
        packed,
    )
    _, _, answer = await door.send(
        b"POST /api/v4/spot/orders HTTP/1.1\r\n" + door.host() + b"Content-Type: application/json"
        b"\r\nContent-Encoding: x-gzip\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + body
    )
    assert not json.loads(answer).get("label", "").startswith("SIDECAR_"), answer  # forwarded
    (seen,) = door.exchange.state.requests
    assert seen.body == b'{"text":"t-1"}'
    assert "Content-Encoding" not in seen.headers
    assert "X-Gate-Channel-Id" not in seen.headers


# -- nothing a client sent is echoed (issue 17, finding 5) --------------------------------------

TOKEN_VARIANTS: list[tuple[str, bytes]] = [
    ("a control character", b"X-Sidecar-Token: " + TOKEN.encode() + b"\x01\r\n"),
    ("a NUL", b"X-Sidecar-Token: " + TOKEN.encode() + b"\x00\r\n"),
    ("a space before the colon", b"X-Sidecar-Token : " + TOKEN.encode() + b"\r\n"),
    ("a line over 8190 bytes", b"X-Sidecar-Token: " + TOKEN.encode() + b"a" * 8200 + b"\r\n"),
    ("a line over the head cap", b"X-Sidecar-Token: " + TOKEN.encode() * 3000 + b"\r\n"),
    ("a folded line", b"X-Sidecar-Token: x\r\n " + TOKEN.encode() + b"\r\n"),
    ("no colon", b"X-Sidecar-Token " + TOKEN.encode() + b"\r\n"),
    ("the token as a header name", TOKEN.encode() + b": 1\r\n"),
    ("a non-ASCII byte", b"X-Sidecar-Token: " + TOKEN.encode() + b"\xff\r\n"),
    ("twice", b"X-Sidecar-Token: " + TOKEN.encode() + b"\r\nX-Sidecar-Token: x\r\n"),
    ("a wrong token around it", b"X-Sidecar-Token: <" + TOKEN.encode() + b">\r\n"),
    ("in Host", b"Host: " + TOKEN.encode() + b"\r\n"),
    ("in Sec-Fetch-Site", b"Sec-Fetch-Site: " + TOKEN.encode() + b"\r\n"),
    ("in Content-Encoding", b"Content-Encoding: " + TOKEN.encode() + b"\r\n"),
    ("in Content-Length", b"Content-Length: " + TOKEN.encode() + b"\r\n"),
    ("in Transfer-Encoding", b"Transfer-Encoding: " + TOKEN.encode() + b"\r\n"),
]


@pytest.mark.parametrize("line", [pytest.param(v, id=n) for n, v in TOKEN_VARIANTS])
async def test_the_client_token_in_a_malformed_header_is_never_echoed(
    quick_door: Door, caplog: pytest.LogCaptureFixture, line: bytes
) -> None:
    """Every answer and every log line is scanned for the token (also by tests/leaks.py,
    which fails the test on its own); the request is refused, never forwarded. Each variant is
    sent first on a connection, and after a declined ``h2c`` upgrade on the same connection
    (where, before issue 18, aiohttp parsed it and logged it with a traceback). Each connection
    is read until the sidecar closes it (a refusal it keeps alive: at ``idle_timeout_s``), so
    every byte it sends is scanned."""
    door = quick_door
    caplog.set_level(logging.DEBUG)
    head = b"GET /api/v4/spot/accounts HTTP/1.1\r\n"
    if not line.startswith(b"Host:"):
        head += door.host("tok")
    upgrade = (
        b"GET /api/v4/spot/accounts HTTP/1.1\r\n"
        + door.host("tok")
        + b"X-Sidecar-Token: "
        + TOKEN.encode()
        + b"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n"
    )
    variants = [head + line + b"\r\n", head + line + b"Connection: close\r\n\r\n"]
    variants += [upgrade + v for v in variants]
    for variant in variants:
        reader, writer = await door.connect("tok")
        writer.write(variant)
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert TOKEN.encode() not in raw
        assert raw.startswith(b"HTTP/1.1 4") or raw.startswith(b"HTTP/1.1 200"), raw[:40]
        assert raw.count(b"HTTP/1.1 ") == (2 if variant.startswith(upgrade) else 1)
    logged = "\n".join(repr(vars(r)) for r in caplog.records)
    assert TOKEN not in logged
    assert len(door.exchange.state.requests) == 2  # the two upgrade requests, nothing else
    _no_tracebacks(caplog)
