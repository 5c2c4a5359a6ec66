"""TLS and mTLS on a key's listener (``client_auth.tls``), with a CA the test makes itself."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.config import parse_config
from tests.certs import CertAuthority
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar


async def _tls_sidecar(
    exchange: RunningExchange, tls: dict[str, Any]
) -> AsyncIterator[RunningSidecar]:
    entry, environ, api_key, secret = env_key("bot", "read-only", client_auth={"tls": tls})
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], server={"header_timeout_s": 0.5})
    async with running_sidecar(config, environ) as sidecar:
        yield sidecar


def _client_context(ca: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


async def _get(url: str, ctx: ssl.SSLContext | None) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, ssl=ctx or True) as resp:
        return resp.status


async def test_a_tls_listener_serves_https_and_not_plain_http(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    ca = CertAuthority(tmp_path)
    server = ca.issue("sidecar", server=True)
    tls = {"cert_file": str(server.cert), "key_file": str(server.key)}
    async for sidecar in _tls_sidecar(exchange, tls):
        url = sidecar.url("bot") + "/api/v4/spot/accounts"
        assert url.startswith("https://127.0.0.1:")
        assert await _get(url, _client_context(ca.ca.cert)) == 200
        with pytest.raises(aiohttp.ClientError):
            await _get(url.replace("https://", "http://"), None)


async def test_mtls_needs_a_client_certificate_from_the_configured_ca(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "other").mkdir()
    ca, other = CertAuthority(tmp_path / "ok"), CertAuthority(tmp_path / "other")
    server = ca.issue("sidecar", server=True)
    good = ca.issue("bot-1", server=False)
    stranger = other.issue("bot-x", server=False)
    tls = {
        "cert_file": str(server.cert),
        "key_file": str(server.key),
        "client_ca_file": str(ca.ca.cert),
    }
    async for sidecar in _tls_sidecar(exchange, tls):
        url = sidecar.url("bot") + "/api/v4/spot/accounts"
        assert await _get(url, _client_context(ca.ca.cert, (good.cert, good.key))) == 200
        for ctx in (
            _client_context(ca.ca.cert),
            _client_context(ca.ca.cert, (stranger.cert, stranger.key)),
        ):
            with pytest.raises(aiohttp.ClientError):
                await _get(url, ctx)
        # The listener keeps serving after failed handshakes; once their handshake deadline has
        # passed they no longer count against max_connections.
        await asyncio.sleep(1.6)
        assert sidecar.sidecar.keys["bot"].listener.open_connections <= 1


def test_a_remote_listener_with_mtls_is_accepted() -> None:
    entry, _, _, _ = env_key(
        "bot",
        "read-only",
        listen="0.0.0.0:8443",
        allow_remote=True,
        client_auth={
            "tls": {"cert_file": "/c.crt", "key_file": "/c.key", "client_ca_file": "/ca.crt"}
        },
    )
    assert parse_config({"keys": [entry]}, environ={}).keys[0].client_auth.authenticates


def test_a_remote_listener_with_tls_but_no_client_ca_is_refused() -> None:
    from sidecar.errors import ConfigError

    entry, _, _, _ = env_key(
        "bot",
        "read-only",
        listen="0.0.0.0:8443",
        allow_remote=True,
        client_auth={"tls": {"cert_file": "/c.crt", "key_file": "/c.key"}},
    )
    with pytest.raises(ConfigError, match=r"keys\[0\]\.client_auth: "):
        parse_config({"keys": [entry]}, environ={})
