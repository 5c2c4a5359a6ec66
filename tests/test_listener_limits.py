"""Listener limits and refusals outside the app (issue 13, gaps 1, 5 and 6): deadlines, the
connection cap, head size caps, the HTTP parser's refusals, clients that vanish mid-body; the key
listener and the admin listener (the same connection layer, sidecar.proxy.lean_listener)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from yarl import URL

from sidecar.proxy.lean_listener import BODY, BUSY, LeanServer
from sidecar.runtime.listeners import LeanListener
from sidecar.runtime.sites import ACCEPT_BURST_S, quiet_accept_errors
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.leaks import register_secret
from tests.rawhttp import parse_response, raw_exchange
from tests.sync import eventually

LIMITS = {
    "header_timeout_s": 0.5,
    "body_timeout_s": 0.5,
    "idle_timeout_s": 1.5,
    "max_connections": 4,
    "max_header_bytes": 2048,
    "max_headers": 20,
}


@dataclass
class Setup:
    sidecar: RunningSidecar
    exchange: RunningExchange

    @property
    def port(self) -> int:
        port = URL(self.sidecar.url("bot")).port
        assert port is not None
        return port

    @property
    def admin_port(self) -> int:
        port = URL(self.sidecar.admin_url).port
        assert port is not None
        return port

    def head(self, target: str = "/api/v4/spot/accounts", method: str = "GET") -> bytes:
        return f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n".encode()

    @property
    def lean(self) -> LeanServer:
        listener = self.sidecar.sidecar.keys["bot"].listener
        assert isinstance(listener, LeanListener)
        return listener.lean

    async def phase(self, phase: int) -> None:
        """Wait until a connection of the bot's listener is in ``phase`` (BUSY: a request is
        being handled; BODY: a body is arriving)."""
        await eventually(
            lambda: any(c.phase == phase for c in self.lean.connections), 5, f"phase {phase}"
        )


@pytest.fixture
async def setup(exchange: RunningExchange) -> AsyncIterator[Setup]:
    entry, environ, api_key, secret = env_key("bot", "full-trading")
    other, env2, api_key2, secret2 = env_key("other", "read-only")
    exchange.state.add_key(api_key, secret)
    exchange.state.add_key(api_key2, secret2)
    config = make_config(exchange.url, [entry, other], server=LIMITS)
    async with running_sidecar(config, {**environ, **env2}) as sidecar:
        yield Setup(sidecar, exchange)


def _audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.audit for r in caplog.records if r.name == "sidecar.audit"]  # type: ignore[attr-defined]


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage() for r in bad]


async def _ok(url: str) -> float:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200, await resp.text()
    return time.perf_counter() - started


async def test_a_stalled_request_head_is_answered_408_and_closed_by_its_deadline(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    writer.write(setup.head() + b"X-Slow: 1\r\n")  # never the blank line
    started = time.perf_counter()
    data = await asyncio.wait_for(reader.read(), timeout=5)
    elapsed = time.perf_counter() - started
    writer.close()
    status, _, body = parse_response(data)
    assert (status, json.loads(body)["label"]) == (408, "SIDECAR_REQUEST_TIMEOUT")
    assert 0.4 < elapsed < 2.0
    assert [a["label"] for a in _audit(caplog)] == ["SIDECAR_REQUEST_TIMEOUT"]
    _no_tracebacks(caplog)


async def test_a_head_dripped_byte_by_byte_still_meets_the_deadline(setup: Setup) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    started = time.perf_counter()

    async def drip() -> None:
        for byte in setup.head():
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)  # pace: one byte every 50 ms

    dripping = asyncio.create_task(drip())
    data = await asyncio.wait_for(reader.read(), timeout=5)
    dripping.cancel()
    writer.close()
    assert parse_response(data)[0] == 408
    assert time.perf_counter() - started < 2.5


def _responses(data: bytes) -> list[tuple[int, bytes]]:
    """Every (status, body) in a stream of HTTP/1.1 answers with Content-Length."""
    out = []
    while data:
        status, headers, body = parse_response(data)
        out.append((status, body))
        head_len = data.index(b"\r\n\r\n") + 4
        data = data[head_len + int(headers["content-length"]) :]
    return out


@pytest.mark.parametrize(
    "handling_s",
    [0.2, 1.2],
    ids=["handler-done-before-the-deadline", "handler-still-busy-at-the-deadline"],
)
async def test_a_stalled_head_pipelined_behind_a_request_being_handled_gets_its_deadline(
    setup: Setup, caplog: pytest.LogCaptureFixture, handling_s: float
) -> None:
    """The head timer starts with the pipelined head's first byte, not when the request before
    it is done; the 408 comes after that request's answer (answers go in order), then close."""
    caplog.set_level(logging.INFO)
    setup.exchange.state.delays["/api/v4/spot/accounts"] = handling_s
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    writer.write(setup.head() + b"\r\n")
    await writer.drain()
    await setup.phase(BUSY)  # a read of its own: the first request is being handled
    writer.write(setup.head("/api/v4/spot/open_orders") + b"X-Slow: 1\r\n")  # never ends
    await writer.drain()
    sent = time.perf_counter()
    data = await asyncio.wait_for(reader.read(), timeout=5)
    closed = time.perf_counter() - sent
    writer.close()
    [(first, _), (second, body)] = _responses(data)
    assert first == 200
    assert (second, json.loads(body)["label"]) == (408, "SIDECAR_REQUEST_TIMEOUT")
    # header_timeout_s is 0.5 and idle_timeout_s 1.5: closed by the head deadline (or just
    # after the answer before it), never left to the idle timeout.
    assert closed < max(0.5, handling_s) + 0.6
    assert [a["label"] for a in _audit(caplog)] == [None, "SIDECAR_REQUEST_TIMEOUT"]
    assert [r.raw_path for r in setup.exchange.state.requests] == ["/api/v4/spot/accounts"]


async def test_a_pipelined_head_that_completes_in_time_is_served_in_order(setup: Setup) -> None:
    setup.exchange.state.delays["/api/v4/spot/accounts"] = 0.6
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    writer.write(setup.head() + b"\r\n")
    await writer.drain()
    await setup.phase(BUSY)
    second = setup.head("/api/v4/spot/open_orders")
    writer.write(second)  # half now, the rest within the deadline
    await writer.drain()
    await asyncio.sleep(0.2)  # pace: the rest of the head comes later
    writer.write(b"Connection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert [status for status, _ in _responses(data)] == [200, 200]


async def test_a_pipelined_head_over_the_size_cap_is_431_after_the_answer_before_it(
    setup: Setup,
) -> None:
    setup.exchange.state.delays["/api/v4/spot/accounts"] = 0.4
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    writer.write(setup.head() + b"\r\n")
    await writer.drain()
    await setup.phase(BUSY)
    writer.write(setup.head("/api/v4/spot/open_orders"))
    for i in range(15):  # 15 lines of 160 bytes, never the blank line: over 2048 bytes
        writer.write(b"X-H%d: %s\r\n" % (i, b"a" * 150))
    data = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    [(first, _), (second, body)] = _responses(data)
    assert first == 200
    assert (second, json.loads(body)["label"]) == (431, "SIDECAR_HEADERS_TOO_LARGE")


async def test_a_body_that_never_arrives_is_408_and_nothing_is_forwarded(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = len(setup.exchange.state.requests)
    head = setup.head("/api/v4/spot/orders", "POST")
    head += b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    status, body = await raw_exchange("127.0.0.1", setup.port, head, timeout=5)
    assert (status, json.loads(body)["label"]) == (408, "SIDECAR_REQUEST_TIMEOUT")
    assert len(setup.exchange.state.requests) == before
    assert [a["label"] for a in _audit(caplog)] == ["SIDECAR_REQUEST_TIMEOUT"]


async def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout(setup: Setup) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    writer.write(setup.head() + b"\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert first.startswith(b"HTTP/1.1 200")
    started = time.perf_counter()
    await asyncio.wait_for(reader.read(), timeout=5)  # the rest of the body, then EOF
    writer.close()
    assert 1.0 < time.perf_counter() - started < 3.0


async def test_connections_beyond_the_cap_get_a_quick_503_and_the_others_keep_working(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    held = [await asyncio.open_connection("127.0.0.1", setup.port) for _ in range(4)]
    await eventually(lambda: len(setup.lean.connections) == 4, 5, "4 connections held")
    started = time.perf_counter()
    status, body = await raw_exchange("127.0.0.1", setup.port, setup.head() + b"\r\n")
    assert (status, json.loads(body)["label"]) == (503, "SIDECAR_OVERLOADED")
    assert time.perf_counter() - started < 1.0
    # Another key's listener and the admin listener are not affected.
    await _ok(setup.sidecar.url("other") + "/api/v4/spot/accounts")
    await _ok(setup.sidecar.admin_url + "/healthz")
    for _, writer in held:
        writer.close()
    await eventually(lambda: not setup.lean.connections, 5, "the held connections closed")
    await _ok(setup.sidecar.url("bot") + "/api/v4/spot/accounts")
    assert "SIDECAR_OVERLOADED" in [a["label"] for a in _audit(caplog)]


@pytest.mark.parametrize(
    ("why", "extra"),
    [
        ("one header line longer than the cap", b"X-Big: " + b"a" * 3000 + b"\r\n"),
        (
            "many lines adding up past the cap",
            b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 150) for i in range(15)),
        ),
        ("more header fields than max_headers", b"".join(b"X-N%d: 1\r\n" % i for i in range(30))),
    ],
)
async def test_a_request_head_over_its_caps_is_431(
    setup: Setup, caplog: pytest.LogCaptureFixture, why: str, extra: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    status, body = await raw_exchange("127.0.0.1", setup.port, setup.head() + extra + b"\r\n")
    assert (status, json.loads(body)["label"]) == (431, "SIDECAR_HEADERS_TOO_LARGE"), why
    assert [a["label"] for a in _audit(caplog)] == ["SIDECAR_HEADERS_TOO_LARGE"]
    _no_tracebacks(caplog)


@pytest.mark.parametrize(
    "payload",
    [
        b"GET %2Fapi/v4/spot/accounts HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /api/v4/spot/accounts HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
        b"GET /api/v4/spot/accounts?<script> HTTP/1.1 junk\r\n\r\n",
    ],
)
async def test_a_refusal_by_the_http_parser_is_json_audited_counted_and_has_no_traceback(
    setup: Setup, caplog: pytest.LogCaptureFixture, payload: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    status, body = await raw_exchange("127.0.0.1", setup.port, payload)
    assert (status, json.loads(body)["label"]) == (400, "SIDECAR_BAD_REQUEST")
    assert b"script" not in body and b"2F" not in body  # the request is never echoed
    assert [a["label"] for a in _audit(caplog)] == ["SIDECAR_BAD_REQUEST"]
    # Counted once as a 400 of the key, whatever method and path the listener could make out.
    counted = [
        s.value
        for m in setup.sidecar.sidecar.metrics.requests.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels["key"] == "bot" and s.labels["status"] == "400"
    ]
    assert sum(counted) == 1
    _no_tracebacks(caplog)


@pytest.mark.parametrize(
    "line", [b"GET /api/v4/spot/accounts HTTP/2.0", b"GET /api/v4/spot/accounts HTTP/0.9"]
)
async def test_a_request_line_that_is_not_http_1_is_505(setup: Setup, line: bytes) -> None:
    before = len(setup.exchange.state.requests)
    payload = line + b"\r\nHost: 127.0.0.1:%d\r\n\r\n" % setup.port
    status, body = await raw_exchange("127.0.0.1", setup.port, payload)
    assert (status, json.loads(body)["label"]) == (505, "SIDECAR_HTTP_VERSION_NOT_SUPPORTED")
    assert len(setup.exchange.state.requests) == before


async def test_a_bot_that_disconnects_mid_body_gets_no_500_and_logs_no_traceback(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = len(setup.exchange.state.requests)
    _reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    head = setup.head("/api/v4/spot/orders", "POST")
    writer.write(head + b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
    await writer.drain()
    await setup.phase(BODY)
    writer.transport.abort()
    await eventually(lambda: bool(_audit(caplog)), 5, "the disconnect audited")
    assert len(setup.exchange.state.requests) == before
    assert [(a["label"], a["status"]) for a in _audit(caplog)] == [
        ("SIDECAR_CLIENT_DISCONNECTED", 400)
    ]
    _no_tracebacks(caplog)


async def test_an_invalid_gzip_body_is_a_json_400_with_no_unhandled_exception(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    junk = gzip.compress(b'{"a":1}')[:-6] + b"garbage!"
    head = setup.head("/api/v4/spot/orders", "POST")
    head += b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(junk)
    status, body = await raw_exchange("127.0.0.1", setup.port, head + junk)
    assert (status, json.loads(body)["label"]) == (400, "SIDECAR_BAD_REQUEST")
    assert "Unhandled exception" not in caplog.text
    _no_tracebacks(caplog)


# -- the admin listener ----------------------------------------------------------------------


async def test_the_admin_listener_has_the_same_deadline_and_cap(setup: Setup) -> None:
    port = setup.admin_port
    status, body = await raw_exchange("127.0.0.1", port, b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n")
    assert (status, json.loads(body)["label"]) == (408, "SIDECAR_REQUEST_TIMEOUT")
    # Accepted in order: the fifth connection finds four held (no wait needed).
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    status, body = await raw_exchange("127.0.0.1", port, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert (status, json.loads(body)["label"]) == (503, "SIDECAR_OVERLOADED")
    for _, writer in held:
        writer.close()
    metrics = setup.sidecar.sidecar.metrics.registry
    assert (
        metrics.get_sample_value(
            "gate_sidecar_admin_refusals_total", {"label": "SIDECAR_OVERLOADED"}
        )
        == 1
    )


async def test_the_admin_listener_refuses_http_2_request_lines(setup: Setup) -> None:
    payload = b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"
    status, body = await raw_exchange("127.0.0.1", setup.admin_port, payload)
    assert (status, json.loads(body)["label"]) == (505, "SIDECAR_HTTP_VERSION_NOT_SUPPORTED")


ADMIN_REFUSALS = [
    (b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: 1\r\n" * 25 + b"\r\n",
     431, "SIDECAR_HEADERS_TOO_LARGE"),
    (b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 3000 + b"\r\n\r\n",
     431, "SIDECAR_HEADERS_TOO_LARGE"),
    (b"POST /keys/bot/cancel-only HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab",
     408, "SIDECAR_REQUEST_TIMEOUT"),
    (b"\x16\x03\x01 not http at all\r\n\r\n", 400, "SIDECAR_BAD_REQUEST"),
    (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "SIDECAR_BAD_REQUEST"),  # no Host
    (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
     405, "SIDECAR_METHOD_NOT_ALLOWED"),
]  # fmt: skip


async def test_the_admin_listener_refuses_what_the_key_listeners_refuse(setup: Setup) -> None:
    """Header count and size, the body deadline, unreadable bytes, HTTP/1.1 without Host and
    CONNECT: the key listeners' refusals, as SIDECAR_* JSON, each counted."""
    for payload, status, label in ADMIN_REFUSALS:
        got, body = await raw_exchange("127.0.0.1", setup.admin_port, payload)
        assert (got, json.loads(body)["label"]) == (status, label), payload[:40]
    registry = setup.sidecar.sidecar.metrics.registry
    for label, count in (("SIDECAR_HEADERS_TOO_LARGE", 2), ("SIDECAR_BAD_REQUEST", 2)):
        sample = registry.get_sample_value("gate_sidecar_admin_refusals_total", {"label": label})
        assert sample == count, label


async def test_the_admin_listener_answers_pipelined_requests_in_order_then_idles_out(
    setup: Setup,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.admin_port)
    try:
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
            b"HEAD /readyz HTTP/1.1\r\nHost: a\r\n\r\n"
            b"DELETE /keys/bot/cancel-only HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        answers: list[tuple[int, bytes]] = []
        for _ in range(3):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            status, headers, _ = parse_response(head)
            length = int(headers["content-length"]) if len(answers) != 1 else 0  # HEAD: no body
            answers.append((status, await reader.readexactly(length)))
        assert [a[0] for a in answers] == [200, 200, 200]
        assert json.loads(answers[0][1]) == {"status": "ok"} and answers[1][1] == b""
        assert json.loads(answers[2][1])["cancel_only"] is False
        # Idle past server.idle_timeout_s (1.5 s here): closed by the listener.
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()


async def test_metrics_need_the_bearer_token_when_one_is_configured(
    exchange: RunningExchange, tmp_path: object
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    register_secret("scrape-me-0123456789")
    token = tmp_path / "metrics-token"
    token.write_text("scrape-me-0123456789\n")
    entry, environ, _, _ = env_key("bot", "read-only")
    config = make_config(exchange.url, [entry], admin={"metrics_token_file": str(token)})
    async with running_sidecar(config, environ) as sidecar, aiohttp.ClientSession() as http:
        url = sidecar.admin_url + "/metrics"
        async with http.get(url) as resp:
            assert resp.status == 401
            assert (await resp.json())["label"] == "SIDECAR_UNAUTHENTICATED"
        async with http.get(url, headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        auth = {"Authorization": "Bearer scrape-me-0123456789"}
        async with http.get(url, headers=auth) as resp:
            assert resp.status == 200 and "gate_sidecar_requests" in await resp.text()
        async with http.get(sidecar.admin_url + "/readyz") as resp:
            assert resp.status == 200  # probes stay open


# -- accept() errors -------------------------------------------------------------------------


async def test_accept_errors_are_logged_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.DEBUG)
    quiet_accept_errors(loop)
    error = OSError(24, "Too many open files")
    for _ in range(50):
        loop.call_exception_handler(
            {"message": "socket.accept() out of system resource", "exception": error}
        )
    lines = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(lines) == 1 and not lines[0].exc_info
    assert ACCEPT_BURST_S >= 10
