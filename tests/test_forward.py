"""The forwarder against a purpose-built upstream: redirects, retries, bytes unchanged."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.errors import UpstreamTimeout, UpstreamUnavailable
from sidecar.proxy.aiohttp_forwarder import AiohttpForwarder
from sidecar.proxy.forwarder import UpstreamConfig, UpstreamRequest


class Upstream:
    def __init__(self) -> None:
        self.hits: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.drop_next = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.hits.append((request.method, request.raw_path, body, dict(request.headers)))
        if self.drop_next:
            self.drop_next -= 1
            assert request.transport is not None
            request.transport.close()  # the connection dies before an answer
            raise web.HTTPInternalServerError()
        if request.path == "/api/v4/redirect":
            return web.Response(status=302, headers={"Location": "https://elsewhere/"})
        if request.path == "/api/v4/gzip":
            payload = gzip.compress(b'{"big": true}')
            return web.Response(
                body=payload, headers={"Content-Encoding": "gzip", "X-Pagination-Total": "7"}
            )
        if request.path == "/api/v4/slow":
            import asyncio

            await asyncio.sleep(2)
        return web.json_response({"ok": True}, headers={"Set-Cookie": "s=1"})


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, AiohttpForwarder]]:
    up = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", up.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fwd = AiohttpForwarder(UpstreamConfig(base_url=f"http://127.0.0.1:{server.port}", timeout_s=1))
    yield up, fwd
    await fwd.close()
    await server.close()


def _req(method: str, path: str, query: str = "", body: bytes = b"") -> UpstreamRequest:
    return UpstreamRequest(method, path, query, [("Accept", "*/*")], body)


async def test_a_redirect_is_relayed_and_never_followed(
    upstream: tuple[Upstream, AiohttpForwarder],
) -> None:
    up, fwd = upstream
    resp = await fwd.send(_req("GET", "/api/v4/redirect"))
    assert resp.status == 302 and resp.header("Location") == "https://elsewhere/"
    assert len(up.hits) == 1


async def test_a_compressed_body_is_relayed_byte_for_byte(
    upstream: tuple[Upstream, AiohttpForwarder],
) -> None:
    _, fwd = upstream
    resp = await fwd.send(_req("GET", "/api/v4/gzip"))
    assert gzip.decompress(resp.body) == b'{"big": true}'
    assert resp.header("X-Pagination-Total") == "7"


async def test_the_raw_query_is_forwarded_unchanged(
    upstream: tuple[Upstream, AiohttpForwarder],
) -> None:
    up, fwd = upstream
    await fwd.send(_req("GET", "/api/v4/x", "b=2&a=BTC%2CETH&c=a+b"))
    assert up.hits[-1][1] == "/api/v4/x?b=2&a=BTC%2CETH&c=a+b"


async def test_no_headers_are_added_that_the_bot_did_not_send(
    upstream: tuple[Upstream, AiohttpForwarder],
) -> None:
    up, fwd = upstream
    await fwd.send(_req("POST", "/api/v4/x", body=b"{}"))
    headers = {k.lower() for k in up.hits[-1][3]}
    assert "content-type" not in headers and "accept-encoding" not in headers
    assert "user-agent" not in headers


async def test_a_post_is_never_retried(upstream: tuple[Upstream, AiohttpForwarder]) -> None:
    up, fwd = upstream
    up.drop_next = 1
    with pytest.raises(UpstreamUnavailable):
        await fwd.send(_req("POST", "/api/v4/x", body=b"{}"))
    assert len(up.hits) == 1


async def test_a_get_is_retried_once_when_the_connection_drops(
    upstream: tuple[Upstream, AiohttpForwarder],
) -> None:
    up, fwd = upstream
    up.drop_next = 1
    resp = await fwd.send(_req("GET", "/api/v4/x"))
    assert resp.status == 200 and len(up.hits) == 2


async def test_a_slow_upstream_raises_a_timeout(
    upstream: tuple[Upstream, AiohttpForwarder],
) -> None:
    _, fwd = upstream
    with pytest.raises(UpstreamTimeout):
        await fwd.send(_req("GET", "/api/v4/slow"))


async def test_gate_error_labels_are_read_even_when_compressed() -> None:
    from sidecar.proxy.forwarder import UpstreamResponse

    body = gzip.compress(b'{"label": "INVALID_KEY", "message": "x"}')
    resp = UpstreamResponse(401, [("Content-Encoding", "gzip")], body)
    assert resp.gate_label() == "INVALID_KEY"
    assert UpstreamResponse(200, [], b"{}").gate_label() is None
    assert UpstreamResponse(500, [], b"not json").gate_label() is None
