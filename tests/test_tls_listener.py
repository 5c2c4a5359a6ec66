"""TLS and mTLS on a key's listener (``client_auth.tls``), with a CA the test makes itself."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.config import parse_config
from sidecar.proxy.peer import CN_MAX_CHARS, common_name
from tests.certs import CertAuthority
from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.fixtures_ws import recv_json, ws_upstream
from tests.sync import eventually


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
        def dropped(running: RunningSidecar = sidecar) -> bool:
            return running.sidecar.keys["bot"].listener.open_connections <= 1

        await eventually(dropped, 5, "failed handshakes dropped")


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


# A private channel subscription: the sidecar signs it (the auth given is replaced).
SUBSCRIBE = {
    "time": 1,
    "id": 7,
    "channel": "spot.orders",
    "event": "subscribe",
    "payload": ["BTC_USDT"],
    "auth": {"method": "api_key", "KEY": "junk", "SIGN": "junk"},
}


def _audits(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.audit for r in caplog.records if r.name == "sidecar.audit"]  # type: ignore[attr-defined]


async def test_under_mtls_the_audit_line_names_the_client_certificates_cn_and_no_more(
    exchange: RunningExchange, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.audit")
    ca = CertAuthority(tmp_path)
    server, bot = ca.issue("sidecar", server=True), ca.issue("bot-1", server=False)
    tls = {"cert_file": str(server.cert), "key_file": str(server.key)}
    tls["client_ca_file"] = str(ca.ca.cert)
    entry, environ, api_key, secret = env_key("bot", "read-only", client_auth={"tls": tls})
    exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, [entry], upstream={"ws": ws_upstream(exchange)})
    ctx = _client_context(ca.ca.cert, (bot.cert, bot.key))
    async with running_sidecar(config, environ) as sidecar, aiohttp.ClientSession() as http:
        base = sidecar.url("bot")
        async with http.get(base + "/api/v4/spot/accounts", ssl=ctx) as resp:
            assert resp.status == 200
        async with http.post(base + "/api/v4/withdrawals", json={}, ssl=ctx) as resp:
            assert resp.status == 403  # refusals name the certificate too
        wss = base.replace("https://", "wss://") + "/ws/v4/"
        async with http.ws_connect(wss, ssl=ctx) as ws:
            await ws.send_json(SUBSCRIBE)
            assert (await recv_json(ws))["id"] == 7
    audits = _audits(caplog)
    assert [(a.get("path") or a.get("channel"), a["client_cert"]) for a in audits] == [
        ("/api/v4/spot/accounts", "bot-1"),
        ("/api/v4/withdrawals", "bot-1"),
        ("spot.orders", "bot-1"),
    ]
    assert "BEGIN CERTIFICATE" not in caplog.text and "sidecar test CA" not in caplog.text


async def test_without_a_client_certificate_the_audit_line_has_no_client_cert(
    exchange: RunningExchange, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.audit")
    ca = CertAuthority(tmp_path)
    server = ca.issue("sidecar", server=True)
    tls = {"cert_file": str(server.cert), "key_file": str(server.key)}
    async for sidecar in _tls_sidecar(exchange, tls):
        url = sidecar.url("bot") + "/api/v4/spot/accounts"
        assert await _get(url, _client_context(ca.ca.cert)) == 200
    assert [a["client_cert"] for a in _audits(caplog)] == [None]


@pytest.mark.parametrize(
    ("cert", "expected"),
    [
        ({"subject": ((("organizationName", "Quant"),), (("commonName", "bot-1"),))}, "bot-1"),
        ({"subject": ((("commonName", "bot\n-1\x1b[31m"),),)}, "bot?-1?[31m"),
        ({"subject": ((("commonName", "b" * 200),),)}, "b" * CN_MAX_CHARS),
        ({"subject": ((("organizationName", "Quant"),),)}, None),
        ({}, None),
        (None, None),
    ],
    ids=["cn-among-others", "control-characters", "too-long", "no-cn", "no-subject", "no-cert"],
)
def test_the_client_certificate_cn_is_made_safe_for_a_log_line(
    cert: dict[str, Any] | None, expected: str | None
) -> None:
    assert common_name(cert) == expected
