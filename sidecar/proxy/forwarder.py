"""The forwarding step: one upstream request out, one buffered response back.

This is the only module that knows how bytes reach Gate. The handler builds an
:class:`UpstreamRequest` and gets an :class:`UpstreamResponse`; a leaner transport can replace
:class:`AiohttpForwarder` by implementing :class:`Forwarder` and nothing else changes.
"""

from __future__ import annotations

import gzip
import json
import ssl
import zlib
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

from sidecar.config.models import UpstreamConfig
from sidecar.errors import UpstreamTimeout, UpstreamUnavailable


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    path: str  # canonical, already checked: sent byte for byte
    raw_query: str  # as the bot sent it: never re-encoded or re-ordered
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes  # exactly as Gate sent it (still compressed if Gate compressed it)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)

    def gate_label(self) -> str | None:
        """Gate's error ``label`` (for audit and the canary), or None."""
        if self.status < 400 or not self.body:
            return None
        body = self.body
        try:
            encoding = (self.header("Content-Encoding") or "").lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            doc = json.loads(body)
        except (ValueError, OSError, zlib.error):
            return None
        label = doc.get("label") if isinstance(doc, dict) else None
        return label if isinstance(label, str) else None


class Forwarder(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def close(self) -> None: ...


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """System trust plus an optional extra CA bundle; verification is never switched off."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


# Errors that mean "the keep-alive connection died before Gate saw the request".
_STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class AiohttpForwarder:
    """One keep-alive ClientSession for the whole process."""

    def __init__(self, cfg: UpstreamConfig) -> None:
        self._base = cfg.base_url
        connector = aiohttp.TCPConnector(
            limit=cfg.max_connections,
            ssl=tls_context(str(cfg.ca_file) if cfg.ca_file else None),
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=cfg.timeout_s, sock_connect=cfg.connect_timeout_s),
            # Relay bytes unchanged: no decompression, and no headers the bot did not send.
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
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
