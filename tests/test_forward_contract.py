"""The forwarder contract (sidecar.proxy.forwarder.Forwarder), run against every implementation.

Each implementation gets a harness: a forwarder pointed at a scriptable upstream that records what
reached it. A new forwarder adds one harness to ``HARNESSES`` and must pass every test here.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from sidecar.config import parse_config
from sidecar.errors import UpstreamTimeout, UpstreamUnavailable
from sidecar.proxy.aiohttp_forwarder import AiohttpForwarder
from sidecar.proxy.forwarder import Forwarder, UpstreamConfig, UpstreamRequest, UpstreamResponse
from sidecar.runtime.app import SIDECAR, create_app
from tests.doubles import Dropped, MemoryForwarder

TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Seen:
    """A request as the upstream received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]  # in order, as sent
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b'{"ok":true}'


class Fault:
    DROP = "drop"  # close the connection before any byte of an answer
    HANG = "hang"  # answer long after the forwarder's timeout


Script = Callable[[Seen, int], Reply | str]  # (request, how many came before) -> reply or fault


def answer_ok(seen: Seen, before: int) -> Reply | str:
    return Reply()


class Harness:
    """A forwarder and the upstream it talks to."""

    forwarder: Forwarder
    seen: list[Seen]
    script: Script

    async def stop_upstream(self) -> None:
        raise NotImplementedError


@dataclass
class AiohttpHarness(Harness):
    """A real HTTP upstream (aiohttp's server) in front of the given network forwarder."""

    make: Callable[[UpstreamConfig], Forwarder]
    seen: list[Seen] = field(default_factory=list)
    script: Script = field(default=answer_ok)
    server: TestServer | None = None
    forwarder: Forwarder = field(init=False)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        seen = Seen(request.method, request.raw_path, headers, await request.read())
        before = len(self.seen)
        self.seen.append(seen)
        reply = self.script(seen, before)
        if reply == Fault.DROP:
            assert request.transport is not None
            request.transport.close()
            raise web.HTTPInternalServerError()  # never written: the connection is gone
        if reply == Fault.HANG:
            await asyncio.sleep(TIMEOUT_S * 6)
            reply = Reply()
        assert isinstance(reply, Reply)
        return web.Response(
            status=reply.status, body=reply.body, headers=CIMultiDict(reply.headers)
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        cfg = UpstreamConfig(base_url=f"http://127.0.0.1:{self.server.port}", timeout_s=TIMEOUT_S)
        self.forwarder = self.make(cfg)

    async def stop_upstream(self) -> None:
        if self.server is not None:
            await self.server.close()


@dataclass
class MemoryHarness(Harness):
    """The in-memory double, with the script as its upstream."""

    seen: list[Seen] = field(default_factory=list)
    script: Script = field(default=answer_ok)
    down: bool = False
    forwarder: Forwarder = field(init=False)

    def __post_init__(self) -> None:
        self.forwarder = MemoryForwarder(self.upstream)

    async def upstream(self, request: UpstreamRequest) -> UpstreamResponse:
        if self.down:
            raise UpstreamUnavailable("cannot reach Gate: ClientConnectorError")
        target = request.path + (f"?{request.raw_query}" if request.raw_query else "")
        seen = Seen(request.method, target, list(request.headers), request.body)
        before = len(self.seen)
        self.seen.append(seen)
        reply = self.script(seen, before)
        if reply == Fault.DROP:
            raise Dropped()
        if reply == Fault.HANG:
            raise UpstreamTimeout("Gate did not answer in time")
        assert isinstance(reply, Reply)
        return UpstreamResponse(reply.status, list(reply.headers), reply.body)

    async def stop_upstream(self) -> None:
        self.down = True


async def _aiohttp() -> Harness:
    harness = AiohttpHarness(AiohttpForwarder)
    await harness.start()
    return harness


async def _memory() -> Harness:
    return MemoryHarness()


HARNESSES: dict[str, Callable[[], Awaitable[Harness]]] = {
    "aiohttp": _aiohttp,
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


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_a_request_other_than_get_reaches_the_upstream_at_most_once(
    harness: Harness, method: str
) -> None:
    harness.script = lambda seen, before: Fault.DROP
    with pytest.raises(UpstreamUnavailable):
        await harness.forwarder.send(_req(method, body=b"{}" if method != "HEAD" else b""))
    assert len(harness.seen) == 1


async def test_a_get_is_sent_again_once_after_its_connection_failed(harness: Harness) -> None:
    harness.script = lambda seen, before: Fault.DROP if before == 0 else Reply()
    resp = await harness.forwarder.send(_req("GET"))
    assert resp.status == 200 and len(harness.seen) == 2


async def test_a_get_is_never_sent_a_third_time(harness: Harness) -> None:
    harness.script = lambda seen, before: Fault.DROP
    with pytest.raises(UpstreamUnavailable):
        await harness.forwarder.send(_req("GET"))
    assert len(harness.seen) == 2


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


async def test_an_error_names_no_header_or_body(harness: Harness) -> None:
    harness.script = lambda seen, before: Fault.DROP
    with pytest.raises(UpstreamUnavailable) as info:
        await harness.forwarder.send(_req("POST", headers=[("SIGN", "s1gn4ture")], body=b"b0dy"))
    assert "s1gn4ture" not in str(info.value) and "b0dy" not in str(info.value)


# -- injection --------------------------------------------------------------------------------


async def test_the_sidecar_runs_on_an_injected_forwarder_and_closes_it() -> None:
    async def upstream(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, [("Content-Type", "application/json")], b'{"from":"double"}')

    double = MemoryForwarder(upstream)
    config = parse_config(
        {
            "upstream": {"base_url": "http://127.0.0.1:9"},  # never dialled: the double answers
            "admin": {"listen": "127.0.0.1:0"},
            "clock": {"sync": False},
            "keys": [
                {
                    "name": "bot",
                    "listen": "127.0.0.1:0",
                    "source": {"env": {}},
                    "policy": "read-only",
                    "canary": {"enabled": False},
                }
            ],
        },
        environ={},
    )
    app = create_app(config, environ={"GATE_KEY": "k", "GATE_SECRET": "s"}, forwarder=double)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        sidecar = app[SIDECAR]
        await asyncio.wait_for(sidecar.keys["bot"].source.loaded.wait(), 5)
        async with (
            aiohttp.ClientSession() as http,
            http.get(sidecar.keys["bot"].url + "/api/v4/spot/accounts") as resp,
        ):
            assert (resp.status, await resp.read()) == (200, b'{"from":"double"}')
        (sent,) = double.sent
        assert sent.path == "/api/v4/spot/accounts" and ("KEY", "k") in sent.headers
    finally:
        await runner.cleanup()
    assert double.closed
