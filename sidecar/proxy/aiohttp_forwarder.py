"""The forwarder built on aiohttp's client: one keep-alive ``ClientSession`` for the process."""

from __future__ import annotations

import asyncio
import functools
from contextvars import ContextVar
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from sidecar.errors import StaleConnection, UpstreamTimeout, UpstreamTooLarge, UpstreamUnavailable
from sidecar.proxy.forwarder import UpstreamConfig, UpstreamRequest, UpstreamResponse
from sidecar.tls import client_tls_context

# Errors that mean "the connection failed under the request" (as opposed to cannot connect).
_CONNECTION_FAILED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class _TrackedConnection(ResponseHandler):
    """aiohttp's protocol for one upstream connection, counting what the forwarder needs to know
    when it fails: how many requests it has carried, and how many bytes of the current answer
    arrived. aiohttp calls ``set_response_params`` once per request, in the request's task."""

    uses = 0
    answer_bytes = 0

    def set_response_params(self, **kwargs: Any) -> None:
        self.uses += 1
        self.answer_bytes = 0
        _CURRENT.set(self)
        super().set_response_params(**kwargs)

    def data_received(self, data: bytes) -> None:
        self.answer_bytes += len(data)
        super().data_received(data)


_CURRENT: ContextVar[_TrackedConnection | None] = ContextVar("aiohttp_upstream_conn", default=None)


class AiohttpForwarder:
    """``upstream.transport: aiohttp``; see :class:`~sidecar.proxy.forwarder.Forwarder`."""

    def __init__(self, cfg: UpstreamConfig) -> None:
        self._base = cfg.base_url
        self._max_body = cfg.max_response_bytes
        connector = aiohttp.TCPConnector(
            limit=cfg.max_connections, ssl=client_tls_context(cfg.ca_file), ttl_dns_cache=300
        )
        # There is no public hook to learn, when a request fails, whether its connection was a
        # reused one and whether any byte of an answer had arrived (the resend rule needs both),
        # so the connector builds the counting protocol above. The contract suite fails if a new
        # aiohttp stops using it.
        connector._factory = functools.partial(  # type: ignore[assignment]
            _TrackedConnection, loop=asyncio.get_running_loop()
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=cfg.timeout_s, sock_connect=cfg.connect_timeout_s),
            # Relay bytes unchanged: no decompression, and no headers the bot did not send.
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # aiohttp resends an "idempotent" request (PUT, DELETE, HEAD, OPTIONS, GET) by itself when
        # a kept-alive connection fails; for Gate a PUT amends and a DELETE cancels an order, and
        # a GET is resent by sidecar.proxy.forwarder.deliver, freshly signed. There is no public
        # switch, so this one private flag is set (aiohttp/client.py, ClientSession._request);
        # the forwarder contract suite fails if a new aiohttp version stops honouring it.
        self._session._retry_connection = False

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._session.closed:
            raise UpstreamUnavailable("the forwarder is closed")
        target = self._base + request.path + (f"?{request.raw_query}" if request.raw_query else "")
        # encoded=True: yarl must not re-quote or resolve dot segments in what we checked.
        url = URL(target, encoded=True)
        _CURRENT.set(None)
        try:
            async with self._session.request(
                request.method,
                url,
                headers=request.headers,
                data=request.body if request.body else None,
                allow_redirects=False,
            ) as resp:
                body = await self._read(resp)
                return UpstreamResponse(resp.status, list(resp.headers.items()), body)
        except _CONNECTION_FAILED as exc:
            conn = _CURRENT.get()
            if conn is not None and conn.uses > 1 and conn.answer_bytes == 0:
                raise StaleConnection("Gate closed a kept-alive connection") from None
            raise UpstreamUnavailable(f"Gate connection failed: {type(exc).__name__}") from None
        except TimeoutError:
            raise UpstreamTimeout("Gate did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"cannot reach Gate: {type(exc).__name__}") from None

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The whole body, refused as soon as it passes ``max_response_bytes``."""
        limit = self._max_body
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()  # the rest is never read: the connection is not reused
            raise UpstreamTooLarge(f"Gate's answer is over {limit} bytes")
        body = bytearray()
        async for chunk in resp.content.iter_any():
            body += chunk
            if len(body) > limit:
                resp.close()
                raise UpstreamTooLarge(f"Gate's answer is over {limit} bytes")
        return bytes(body)

    async def close(self) -> None:
        await self._session.close()
