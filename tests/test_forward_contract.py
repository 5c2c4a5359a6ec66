"""The forwarder contract (sidecar.proxy.forwarder.Forwarder), run against every implementation.

Each implementation gets a harness: a forwarder pointed at a scriptable upstream that records what
reached it. A new forwarder adds one harness to ``HARNESSES`` and must pass every test here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from sidecar.errors import (
    StaleConnection,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from sidecar.proxy.forwarder import (
    Forwarder,
    UpstreamConfig,
    UpstreamRequest,
    UpstreamResponse,
    deliver,
)
from sidecar.proxy.lean_forwarder import LeanForwarder
from sidecar.runtime.app import running
from tests.doubles import MemoryForwarder
from tests.fixtures_sidecar import make_config
from tests.raw_upstream import Fault, RawUpstream, Reply, Script, Seen, answer_ok
from tests.sync import eventually

TIMEOUT_S = 0.5
MAX_RESPONSE = 4096  # upstream.max_response_bytes in every harness


class Harness:
    """A forwarder and the upstream it talks to."""

    forwarder: Forwarder
    seen: list[Seen]
    script: Script

    async def stop_upstream(self) -> None:
        raise NotImplementedError


@dataclass
class NetworkHarness(Harness):
    """A real HTTP/1.1 upstream (tests/raw_upstream.py) in front of a network forwarder."""

    make: Callable[[UpstreamConfig], Forwarder]
    script: Script = field(default=answer_ok)
    upstream: RawUpstream = field(init=False)
    seen: list[Seen] = field(init=False)
    forwarder: Forwarder = field(init=False)

    def __post_init__(self) -> None:
        self.upstream = RawUpstream(script=lambda seen, before: self.script(seen, before))
        self.seen = self.upstream.seen  # appended to in place, never rebound

    async def start(self) -> None:
        await self.upstream.start()
        cfg = UpstreamConfig(
            base_url=self.upstream.url, timeout_s=TIMEOUT_S, max_response_bytes=MAX_RESPONSE
        )
        self.forwarder = self.make(cfg)

    async def stop_upstream(self) -> None:
        await self.upstream.stop()


@dataclass
class MemoryHarness(Harness):
    """The in-memory double, with the script as its upstream over one simulated keep-alive
    connection (a failure closes it; the next request opens a fresh one)."""

    seen: list[Seen] = field(default_factory=list)
    script: Script = field(default=answer_ok)
    down: bool = False
    conn_seq: int = 0
    forwarder: Forwarder = field(init=False)

    def __post_init__(self) -> None:
        self.forwarder = MemoryForwarder(self.upstream)

    async def upstream(self, request: UpstreamRequest) -> UpstreamResponse:
        if self.down:
            raise UpstreamUnavailable("cannot reach Gate: ClientConnectorError")
        target = request.path + (f"?{request.raw_query}" if request.raw_query else "")
        seen = Seen(request.method, target, request.all_headers(), request.body, self.conn_seq)
        before = len(self.seen)
        self.seen.append(seen)
        reply = self.script(seen, before)
        if isinstance(reply, Reply):
            self.conn_seq = 0 if reply.close else self.conn_seq + 1
            if len(reply.body) > MAX_RESPONSE:
                self.conn_seq = 0
                raise UpstreamTooLarge("Gate's answer is over the limit")
            return UpstreamResponse(reply.status, list(reply.headers), reply.body)
        reused, self.conn_seq = self.conn_seq > 0, 0
        if _whole_answer_to(request.method, reply):
            return UpstreamResponse(200, [], b"")
        if reply == Fault.HANG:
            raise UpstreamTimeout("Gate did not answer in time")
        if reused and reply in (Fault.DROP, Fault.RESET):
            raise StaleConnection("Gate closed a kept-alive connection")
        raise UpstreamUnavailable("Gate connection failed")

    async def stop_upstream(self) -> None:
        self.down = True


def _network(make: Callable[[UpstreamConfig], Forwarder]) -> Callable[[], Awaitable[Harness]]:
    async def start() -> Harness:
        harness = NetworkHarness(make)
        await harness.start()
        return harness

    return start


async def _memory() -> Harness:
    return MemoryHarness()


HARNESSES: dict[str, Callable[[], Awaitable[Harness]]] = {
    "lean": _network(LeanForwarder),
    "memory": _memory,
}


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    made = await HARNESSES[request.param]()
    try:
        yield made
    finally:
        await made.forwarder.close()
        await made.stop_upstream()


def _req(
    method: str = "GET",
    path: str = "/api/v4/x",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> UpstreamRequest:
    return UpstreamRequest(method, path, query, headers or [("KEY", "k")], body)


FRAMING = {"host", "content-length"}  # what a network forwarder adds (the contract allows it)


async def test_the_method_target_and_body_reach_the_upstream_byte_for_byte(
    harness: Harness,
) -> None:
    body = b'{"text":"caf\xc3\xa9 \\u00e9","n":1.50}\n'
    await harness.forwarder.send(_req("PATCH", "/api/v4/x", "b=2&a=BTC%2CETH&c=a+b", body=body))
    seen = harness.seen[-1]
    assert (seen.method, seen.target, seen.body) == (
        "PATCH",
        "/api/v4/x?b=2&a=BTC%2CETH&c=a+b",
        body,
    )


async def test_exactly_the_given_headers_are_sent_plus_host_and_framing(harness: Harness) -> None:
    given = [("KEY", "k"), ("X-Gate-Channel-Id", "c"), ("x-b", "2"), ("X-A", "1"), ("X-A", "3")]
    await harness.forwarder.send(_req("POST", headers=given, body=b"{}"))
    sent = [(k, v) for k, v in harness.seen[-1].headers if k.lower() not in FRAMING]
    assert sent == given  # no Accept, User-Agent, Accept-Encoding, Content-Type; order kept


async def test_the_answer_comes_back_unchanged(harness: Harness) -> None:
    packed = gzip.compress(b'{"big": true}')
    headers = [("Content-Encoding", "gzip"), ("X-Pagination-Total", "7"), ("X-Dup", "a")]
    harness.script = lambda seen, before: Reply(207, [*headers, ("X-Dup", "b")], packed)
    resp = await harness.forwarder.send(_req())
    assert resp.status == 207 and resp.body == packed  # never decompressed
    assert [v for k, v in resp.headers if k == "X-Dup"] == ["a", "b"]
    assert resp.header("x-pagination-total") == "7"


async def test_a_redirect_is_returned_and_never_followed(harness: Harness) -> None:
    harness.script = lambda seen, before: Reply(302, [("Location", "https://elsewhere/")], b"")
    resp = await harness.forwarder.send(_req())
    assert resp.status == 302 and resp.header("Location") == "https://elsewhere/"
    assert len(harness.seen) == 1


async def test_cookies_are_neither_stored_nor_replayed(harness: Harness) -> None:
    harness.script = lambda seen, before: Reply(200, [("Set-Cookie", "s=1; Path=/")])
    await harness.forwarder.send(_req())
    await harness.forwarder.send(_req())
    assert all(k.lower() != "cookie" for k, _ in harness.seen[-1].headers)


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _body_for(method: str) -> bytes:
    return b"" if method in ("GET", "HEAD", "OPTIONS", "DELETE") else b"{}"


def _whole_answer_to(method: str, fault: str) -> bool:
    """A head with no body is a whole answer to HEAD."""
    return method == "HEAD" and fault == Fault.HEAD_ONLY


async def _send_expecting_failure(
    method: str, fault: str, sending: Awaitable[UpstreamResponse]
) -> None:
    if _whole_answer_to(method, fault):
        assert (await sending).status == 200
        return
    if method == "HEAD" and fault == Fault.PARTIAL_BODY:
        # A whole answer to HEAD followed by junk: answering or failing are both right; only the
        # number of copies sent (asserted by the caller) matters.
        with contextlib.suppress(UpstreamUnavailable):
            await sending
        return
    with pytest.raises(UpstreamUnavailable):
        await sending


@pytest.mark.parametrize("fault", Fault.ALL_CLOSING)
@pytest.mark.parametrize("method", METHODS)
async def test_send_puts_a_request_on_the_wire_once_whatever_the_failure(
    harness: Harness, method: str, fault: str
) -> None:
    harness.script = lambda seen, before: fault if before >= 1 else Reply()
    await harness.forwarder.send(_req("GET"))  # leaves a kept-alive connection to reuse
    await _send_expecting_failure(
        method, fault, harness.forwarder.send(_req(method, body=_body_for(method)))
    )
    assert len(harness.seen) == 2


async def _kept_alive(harness: Harness, script: Script) -> None:
    """One answered request, so the next one goes out on a reused keep-alive connection."""
    await harness.forwarder.send(_req("GET"))
    harness.script = script


@pytest.mark.parametrize("fault", [Fault.DROP, Fault.RESET])
async def test_a_reused_connection_failing_before_any_answer_byte_is_a_stale_connection(
    harness: Harness, fault: str
) -> None:
    await _kept_alive(harness, lambda seen, before: fault)
    with pytest.raises(StaleConnection):
        await harness.forwarder.send(_req("POST", body=b"{}"))
    assert harness.seen[-1].conn_seq == 1


@pytest.mark.parametrize("fault", [Fault.PARTIAL_HEAD, Fault.HEAD_ONLY, Fault.PARTIAL_BODY])
async def test_a_connection_failing_after_part_of_an_answer_is_not_a_stale_connection(
    harness: Harness, fault: str
) -> None:
    await _kept_alive(harness, lambda seen, before: fault)
    with pytest.raises(UpstreamUnavailable) as info:
        await harness.forwarder.send(_req("GET"))
    assert not isinstance(info.value, StaleConnection)


@pytest.mark.parametrize("fault", [Fault.DROP, Fault.RESET])
async def test_a_fresh_connection_failing_is_not_a_stale_connection(
    harness: Harness, fault: str
) -> None:
    harness.script = lambda seen, before: fault
    with pytest.raises(UpstreamUnavailable) as info:
        await harness.forwarder.send(_req("GET"))
    assert not isinstance(info.value, StaleConnection)
    assert harness.seen[-1].conn_seq == 0


async def test_an_idle_connection_the_upstream_closed_is_not_used_again(harness: Harness) -> None:
    harness.script = lambda seen, before: Reply(close=True)
    await harness.forwarder.send(_req("GET"))
    forwarder = harness.forwarder
    if isinstance(forwarder, LeanForwarder):  # the close reaches it while the connection is idle
        await eventually(lambda: forwarder.idle_open() == 0, 5, "the close to reach the forwarder")
    harness.script = answer_ok
    resp = await harness.forwarder.send(_req("POST", body=b"{}"))
    assert resp.status == 200 and len(harness.seen) == 2 and harness.seen[-1].conn_seq == 0


# -- the resend rule (deliver), counted at the upstream ----------------------------------------


def _stamped(method: str) -> tuple[UpstreamRequest, Callable[[], Awaitable[UpstreamRequest]]]:
    """A first copy and a builder that stamps each further copy anew, as the pipeline re-signs."""
    copies = 0

    async def build() -> UpstreamRequest:
        nonlocal copies
        copies += 1
        return _req(method, headers=[("Timestamp", str(copies))], body=_body_for(method))

    first = _req(method, headers=[("Timestamp", "0")], body=_body_for(method))
    return first, build


async def test_a_get_on_a_stale_connection_is_resent_once_with_a_fresh_signature(
    harness: Harness,
) -> None:
    await _kept_alive(harness, lambda seen, before: Fault.DROP if seen.conn_seq else Reply())
    first, build = _stamped("GET")
    resp = await deliver(harness.forwarder, first, build)
    assert resp.status == 200
    copies = harness.seen[1:]
    assert [c.header("Timestamp") for c in copies] == ["0", "1"]
    assert copies[1].conn_seq == 0  # the resend went out on a new connection


@pytest.mark.parametrize("method", [m for m in METHODS if m != "GET"])
@pytest.mark.parametrize("fault", Fault.ALL_CLOSING)
async def test_a_request_other_than_get_reaches_the_upstream_at_most_once(
    harness: Harness, method: str, fault: str
) -> None:
    await _kept_alive(harness, lambda seen, before: fault)
    first, build = _stamped(method)
    await _send_expecting_failure(method, fault, deliver(harness.forwarder, first, build))
    assert len(harness.seen) == 2  # the warm-up GET and one copy


@pytest.mark.parametrize("fault", [Fault.PARTIAL_HEAD, Fault.HEAD_ONLY, Fault.PARTIAL_BODY])
async def test_a_get_that_got_part_of_an_answer_is_not_resent(harness: Harness, fault: str) -> None:
    await _kept_alive(harness, lambda seen, before: fault)
    first, build = _stamped("GET")
    with pytest.raises(UpstreamUnavailable):
        await deliver(harness.forwarder, first, build)
    assert len(harness.seen) == 2


@pytest.mark.parametrize("fault", [Fault.DROP, Fault.RESET])
async def test_a_get_failing_on_a_fresh_connection_is_not_resent(
    harness: Harness, fault: str
) -> None:
    harness.script = lambda seen, before: fault
    first, build = _stamped("GET")
    with pytest.raises(UpstreamUnavailable):
        await deliver(harness.forwarder, first, build)
    assert len(harness.seen) == 1


async def test_a_get_is_never_sent_a_third_time(harness: Harness) -> None:
    # Two kept-alive connections, both of which the upstream then drops on their next request.
    harness.script = lambda seen, before: Reply(delay_s=0.05)
    await asyncio.gather(harness.forwarder.send(_req()), harness.forwarder.send(_req()))
    harness.script = lambda seen, before: Fault.DROP
    first, build = _stamped("GET")
    with pytest.raises(UpstreamUnavailable):
        await deliver(harness.forwarder, first, build)
    assert len(harness.seen) == 4  # two warm-ups, the GET and its one resend


async def test_a_timeout_is_not_resent(harness: Harness) -> None:
    await _kept_alive(harness, lambda seen, before: Fault.HANG)
    first, build = _stamped("GET")
    with pytest.raises(UpstreamTimeout):
        await deliver(harness.forwarder, first, build)
    assert len(harness.seen) == 2


# -- the answer's size ---------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_answer_over_max_response_bytes_is_upstream_too_large(
    harness: Harness, chunked: bool
) -> None:
    harness.script = lambda seen, before: Reply(body=b"x" * (MAX_RESPONSE + 1), chunked=chunked)
    with pytest.raises(UpstreamTooLarge) as info:
        await harness.forwarder.send(_req())
    assert info.value.status == 502 and info.value.label == "SIDECAR_UPSTREAM_TOO_LARGE"
    harness.script = answer_ok
    assert (await harness.forwarder.send(_req())).status == 200  # the next request is fine


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_answer_of_exactly_max_response_bytes_comes_back(
    harness: Harness, chunked: bool
) -> None:
    body = b"y" * MAX_RESPONSE
    harness.script = lambda seen, before: Reply(body=body, chunked=chunked)
    assert (await harness.forwarder.send(_req())).body == body


async def test_no_answer_within_the_timeout_raises_upstream_timeout(harness: Harness) -> None:
    harness.script = lambda seen, before: Fault.HANG
    with pytest.raises(UpstreamTimeout):
        await harness.forwarder.send(_req("POST", body=b"{}"))


async def test_an_unreachable_upstream_raises_upstream_unavailable(harness: Harness) -> None:
    await harness.stop_upstream()
    with pytest.raises(UpstreamUnavailable):
        await harness.forwarder.send(_req("POST", body=b"{}"))


async def test_nothing_is_sent_after_close(harness: Harness) -> None:
    await harness.forwarder.close()
    with pytest.raises(UpstreamUnavailable):
        await harness.forwarder.send(_req())
    assert harness.seen == []


@pytest.mark.parametrize("fault", [*Fault.ALL_CLOSING, Fault.HANG])
async def test_an_error_names_no_header_or_body(harness: Harness, fault: str) -> None:
    harness.script = lambda seen, before: fault
    with pytest.raises((UpstreamUnavailable, UpstreamTimeout)) as info:
        await harness.forwarder.send(_req("POST", headers=[("SIGN", "s1gn4ture")], body=b"b0dy"))
    assert "s1gn4ture" not in str(info.value) and "b0dy" not in str(info.value)


# -- injection --------------------------------------------------------------------------------


async def test_the_sidecar_runs_on_an_injected_forwarder_and_closes_it() -> None:
    async def upstream(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, [("Content-Type", "application/json")], b'{"from":"double"}')

    double = MemoryForwarder(upstream)
    key = {"name": "bot", "source": {"env": {}}, "policy": "read-only"}
    # The upstream is never dialled: the double answers.
    config = make_config("http://127.0.0.1:9", [{**key, "canary": {"enabled": False}}])
    environ = {"GATE_KEY": "k", "GATE_SECRET": "s"}
    async with running(config, environ=environ, forwarder=double) as sidecar:
        await asyncio.wait_for(sidecar.keys["bot"].source.loaded.wait(), 5)
        async with (
            aiohttp.ClientSession() as http,
            http.get(sidecar.keys["bot"].url + "/api/v4/spot/accounts") as resp,
        ):
            assert (resp.status, await resp.read()) == (200, b'{"from":"double"}')
        (sent,) = double.sent
        assert sent.path == "/api/v4/spot/accounts" and ("KEY", "k") in sent.headers
    assert double.closed
