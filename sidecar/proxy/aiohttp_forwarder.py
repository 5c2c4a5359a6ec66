"""The forwarder built on aiohttp's client: one keep-alive ``ClientSession`` for the process."""

from __future__ import annotations

import aiohttp
from yarl import URL

from sidecar.errors import UpstreamTimeout, UpstreamUnavailable
from sidecar.proxy.forwarder import UpstreamConfig, UpstreamRequest, UpstreamResponse
from sidecar.tls import client_tls_context

# Errors that mean "the keep-alive connection died before Gate saw the request".
_STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class AiohttpForwarder:
    """``upstream.transport: aiohttp``; see :class:`~sidecar.proxy.forwarder.Forwarder`."""

    def __init__(self, cfg: UpstreamConfig) -> None:
        self._base = cfg.base_url
        connector = aiohttp.TCPConnector(
            limit=cfg.max_connections, ssl=client_tls_context(cfg.ca_file), ttl_dns_cache=300
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
        # a GET would be resent on top of the retry below. There is no public switch, so this
        # one private flag is set (aiohttp/client.py, ClientSession._request); the forwarder
        # contract suite fails if a new aiohttp version stops honouring it.
        self._session._retry_connection = False

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._session.closed:
            raise UpstreamUnavailable("the forwarder is closed")
        target = self._base + request.path + (f"?{request.raw_query}" if request.raw_query else "")
        # encoded=True: yarl must not re-quote or resolve dot segments in what we checked.
        url = URL(target, encoded=True)
        attempts = 2 if request.method == "GET" else 1  # never retry a non-GET request
        for attempt in range(1, attempts + 1):
            try:
                async with self._session.request(
                    request.method,
                    url,
                    headers=request.headers,
                    data=request.body if request.body else None,
                    allow_redirects=False,
                ) as resp:
                    body = await resp.read()
                    return UpstreamResponse(resp.status, list(resp.headers.items()), body)
            except _STALE_CONNECTION as exc:
                if attempt < attempts:
                    continue
                raise UpstreamUnavailable(f"Gate connection failed: {type(exc).__name__}") from None
            except TimeoutError:
                raise UpstreamTimeout("Gate did not answer in time") from None
            except aiohttp.ClientError as exc:
                raise UpstreamUnavailable(f"cannot reach Gate: {type(exc).__name__}") from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._session.close()
