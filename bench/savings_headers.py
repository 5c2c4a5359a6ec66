"""The header work of one request, the old way and the new (a part of bench/savings.py).

Old: each request header decoded to text by the listener, walked by ``read_head``, by the
admission checks (values, browser, Host and token), for ``Content-Type``, by ``upstream_headers``
(the ``Connection`` list, a ``lower()`` per header) and by ``request_head`` (an f-string per
header, the encode back to latin-1); Gate's answer headers decoded, filtered by
``relay_headers`` and encoded again by ``response_bytes``. Written out below as they were.
New: the one pass of :mod:`sidecar.gate.head` and the forwarder's answer kept as bytes.

Two heads: wrk's (``Host`` only, what ``make bench`` sends) and an SDK's (seven headers, what
the official Python SDK sends with a JSON body). The answer is nginx's to the bench (seven
headers).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sidecar.gate.browser import host_forms
from sidecar.gate.headers import (
    GATE_REQUEST_HEADERS,
    HOP_BY_HOP,
    NEVER_FORWARDED,
    header_value,
)
from sidecar.proxy.admission import Admission
from sidecar.proxy.forwarder import UpstreamRequest
from sidecar.proxy.lean_forwarder import _Connection, request_head
from sidecar.proxy.lean_http import read_head, response_bytes
from sidecar.proxy.peer import Peer

PEER = Peer(local_host="127.0.0.1", local_port=8080)
WRK = [(b"Host", b"127.0.0.1:8080")]
SDK = [
    *WRK,
    (b"Accept", b"application/json"),
    (b"Content-Type", b"application/json"),
    (b"User-Agent", b"gate-api/7.2 python"),
    (b"Accept-Encoding", b"gzip, deflate"),
    (b"Connection", b"keep-alive"),
    (b"X-Gate-Channel-Id", b"bench"),
]
SIGNED = [("KEY", "bench-key"), ("Timestamp", "1700000000"), ("SIGN", "0" * 128)]
TARGET = "/api/v4/futures/usdt/accounts"
ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 18:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
    b"X-Gate-Trace-Id: 0af1\r\nX-Gate-RateLimit-Requests-Remain: 199\r\n\r\n{}"
)

# -- the old way, as it was -----------------------------------------------------------------

_ONCE = ("host", "x-sidecar-token", "content-encoding")
_VISIBLE = re.compile(r"[\t\x20-\x7e]*")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def old_read_head(method: bytes, version: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    assert version in ("1.1", "1.0") and method != b"CONNECT"
    head: dict[str, Any] = {"coding": "", "length": -1, "expect": False, "chunked": False}
    seen = dict.fromkeys(_ONCE, 0)
    upgrade = ""
    for name, value in headers:
        lower = name.lower()
        if lower in seen:
            seen[lower] += 1
            if lower == "content-encoding":
                head["coding"] = value.strip().lower()
        elif lower == "content-length" and value.strip().isdigit():
            head["length"] = int(value)
        elif lower == "expect" and value.strip().lower() == "100-continue":
            head["expect"] = True
        elif lower == "upgrade":
            upgrade = value.strip().lower()
        elif lower == "transfer-encoding":
            head["chunked"] = True
    for lower, count in seen.items():
        assert count <= 1, lower
    assert version != "1.1" or seen["host"]
    head["websocket"] = method == b"GET" and upgrade == "websocket"
    return head


def old_check(headers: list[tuple[str, str]], forms: frozenset[str]) -> None:
    for _, value in headers:
        if not (value.isascii() and value.isprintable()) and not _VISIBLE.fullmatch(value):
            raise ValueError("value")
    for name, value in headers:
        lower = name.lower()
        if lower == "origin" or (lower == "sec-fetch-site" and value.strip().lower() != "none"):
            raise ValueError("browser")
    host = offered = None
    for name, value in headers:
        lower = name.lower()
        if lower == "host":
            host = value
        elif lower == "x-sidecar-token":
            offered = value
    assert host is None or host.strip().lower().removesuffix(".") in forms
    del offered


def _listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    listed: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            listed.update(token.strip().lower() for token in value.split(","))
    return listed


def old_upstream_headers(
    incoming: Iterable[tuple[str, str]], extra: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    items = list(incoming)
    listed = _listed(items)
    out = []
    for name, value in items:
        lower = name.lower()
        if (
            (lower not in GATE_REQUEST_HEADERS and lower not in extra)
            or lower in NEVER_FORWARDED
            or lower in HOP_BY_HOP
            or lower in listed
            or lower == "content-encoding"
        ):
            continue
        out.append((name, value))
    return out


@dataclass(frozen=True, slots=True)
class OldUpstreamRequest:
    method: str
    path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes


def old_request_head(request: OldUpstreamRequest, host: str) -> bytes:
    target = request.path + ("?" + request.raw_query if request.raw_query else "")
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    if request.body or request.method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(request.body)}")
    lines.append("\r\n")
    text = "\r\n".join(lines)
    assert text.count("\n") == len(lines) and text.count("\r") == len(lines)
    return text.encode("latin-1")


def old_request(pairs: list[tuple[bytes, bytes]], forms: frozenset[str]) -> bytes:
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs]  # on_header
    old_read_head(b"GET", "1.1", headers)
    old_check(headers, forms)
    header_value(headers, "content-type")
    sent = old_upstream_headers(headers) + SIGNED
    return old_request_head(OldUpstreamRequest("GET", TARGET, "", sent, b""), "127.0.0.1:9")


def new_request(pairs: list[tuple[bytes, bytes]], admission: Admission) -> bytes:
    received = []
    for pair in pairs:  # on_header
        received.append(pair)
    head = read_head(b"GET", "1.1", received, admission.kinds)
    admission.check(head, PEER)
    _ = head.content_type
    request = UpstreamRequest("GET", TARGET, "", list(SIGNED), b"", head.forwarded)
    return request_head(request, "127.0.0.1:9")


@dataclass(frozen=True, slots=True)
class OldUpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class OldConnection(_Connection):
    """The forwarder's connection with its old header callbacks (the exchange is the same)."""

    def _new_head(self) -> None:
        self.old_headers: list[tuple[str, str]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.old_headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        for name, value in self.old_headers:
            if name.lower() == "content-length" and value.isdigit() and int(value) > self._limit:
                raise ValueError("too large")

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive() and not self.closed
        body = b"".join(self._body)
        self._finish(OldUpstreamResponse(self.status, self.old_headers, body))  # type: ignore[arg-type]


def old_relay(answer: OldUpstreamResponse) -> bytes:
    """What the pipeline and the listener did with an answer's headers."""
    items = list(answer.headers)
    listed = _listed(items)
    relayed = [
        (n, v)
        for n, v in items
        if (lower := n.lower()) not in HOP_BY_HOP
        and lower not in ("set-cookie", "set-cookie2")
        and lower not in listed
    ]
    header_value(answer.headers, "Date")
    return response_bytes(answer.status, relayed, answer.body, keep_alive=True)


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def interleaved(old: Callable[[], object], new: Callable[[], object], n: int) -> dict[str, float]:
    """µs per call, old and new: the best of 25 rounds each, the two alternated round by round
    (on a busy machine the best round is the least disturbed one; alternating gives both ways
    the same chances)."""
    best = {"old_us": float("inf"), "new_us": float("inf")}
    calls = max(1, n // 10)
    for turn in range(25):
        pairs = [("old_us", old), ("new_us", new)]
        for name, fn in pairs if turn % 2 else pairs[::-1]:
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls * 1e6)
    return {name: round(us, 2) for name, us in best.items()}


def headers(n: int) -> dict[str, Any]:
    admission = Admission()
    forms = host_forms("127.0.0.1", 8080, (), tls=False)

    async def answers() -> dict[str, float]:
        old, conn = OldConnection(), _Connection()
        old.connection_made(_Transport())  # type: ignore[arg-type]
        conn.connection_made(_Transport())  # type: ignore[arg-type]

        def old_answer() -> bytes:
            waiter = old.exchange(b"", 1 << 26, False)
            old.data_received(ANSWER)
            return old_relay(waiter.result())  # type: ignore[arg-type]

        def new_answer() -> bytes:
            waiter = conn.exchange(b"", 1 << 26, False)
            conn.data_received(ANSWER)
            answer = waiter.result()
            answer.header("Date")
            return response_bytes(200, [], answer.body, keep_alive=True, lines=answer.relayed())

        return interleaved(old_answer, new_answer, n)

    return {
        "request_wrk_head": interleaved(
            lambda: old_request(WRK, forms), lambda: new_request(WRK, admission), n
        ),
        "request_sdk_head": interleaved(
            lambda: old_request(SDK, forms), lambda: new_request(SDK, admission), n
        ),
        "answer": asyncio.run(answers()),
    }
