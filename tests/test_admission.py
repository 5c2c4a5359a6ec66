"""Who may use a key's listener, end to end: browsers, misdirected Hosts, client tokens, unix-socket
peers, JSON-only bodies, the header allow-list, and the small wire rules (issue 13, gaps 2-4, 6)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar
from tests.leaks import register_secret
from tests.rawhttp import raw_exchange

ORDER = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "1"}
JSON = {"Content-Type": "application/json"}


async def _start(
    exchange: RunningExchange, **extra: Any
) -> AsyncIterator[tuple[RunningSidecar, str]]:
    entry, environ, api_key, secret = env_key("bot", "full-trading", **extra)
    exchange.state.add_key(api_key, secret)
    async with running_sidecar(make_config(exchange.url, [entry]), environ) as sidecar:
        yield sidecar, api_key


@pytest.fixture
async def bot(exchange: RunningExchange) -> AsyncIterator[RunningSidecar]:
    async for sidecar, _ in _start(exchange, forward_headers=["X-Trace-Id"]):
        yield sidecar


async def _call(
    url: str,
    method: str = "GET",
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    unix: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connector = aiohttp.UnixConnector(path=unix) if unix else None
    async with (
        aiohttp.ClientSession(connector=connector, skip_auto_headers=["Content-Type"]) as http,
        http.request(method, URL(url, encoded=True), data=body, headers=headers or {}) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def _label(body: bytes) -> str:
    label: str = json.loads(body)["label"]
    return label


# -- browsers (gap 2) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("why", "headers"),
    [
        ("a cross-site simple POST", {"Origin": "https://evil.example"}),
        ("an Origin of null (sandboxed page)", {"Origin": "null"}),
        ("a same-origin Origin", {"Origin": "http://127.0.0.1"}),
        ("a cross-site fetch without Origin", {"Sec-Fetch-Site": "cross-site"}),
        ("a same-site fetch (another localhost port)", {"Sec-Fetch-Site": "same-site"}),
    ],
)
async def test_a_browser_request_is_refused_and_never_signed(
    bot: RunningSidecar, exchange: RunningExchange, why: str, headers: dict[str, str]
) -> None:
    before = len(exchange.state.requests)
    status, _, body = await _call(
        bot.url("bot") + "/api/v4/spot/orders",
        "POST",
        body=json.dumps(ORDER).encode(),
        headers={"Content-Type": "text/plain", **headers},
    )
    assert (status, _label(body)) == (403, "SIDECAR_FORBIDDEN_ORIGIN"), why
    assert len(exchange.state.requests) == before


async def test_a_typed_url_with_sec_fetch_site_none_is_served(bot: RunningSidecar) -> None:
    status, _, body = await _call(
        bot.url("bot") + "/api/v4/spot/accounts", headers={"Sec-Fetch-Site": "none"}
    )
    assert status == 200, body


@pytest.mark.parametrize(
    "host", ["rebind.evil.example:{port}", "evil.example", "127.0.0.1:1", "localhost:{port}0"]
)
async def test_a_dns_rebinding_host_is_misdirected(
    bot: RunningSidecar, exchange: RunningExchange, host: str
) -> None:
    port = URL(bot.url("bot")).port
    before = len(exchange.state.requests)
    status, _, body = await _call(
        bot.url("bot") + "/api/v4/spot/accounts", headers={"Host": host.format(port=port)}
    )
    assert (status, _label(body)) == (421, "SIDECAR_MISDIRECTED")
    assert len(exchange.state.requests) == before


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
async def test_the_listeners_own_address_forms_are_served(bot: RunningSidecar, host: str) -> None:
    port = URL(bot.url("bot")).port
    status, _, body = await _call(
        bot.url("bot") + "/api/v4/spot/accounts", headers={"Host": host.format(port=port)}
    )
    assert status == 200, body


async def test_a_name_in_allowed_hosts_is_served(exchange: RunningExchange) -> None:
    async for sidecar, _ in _start(exchange, allowed_hosts=["gate-sidecar.internal"]):
        port = URL(sidecar.url("bot")).port
        ok, _, _ = await _call(
            sidecar.url("bot") + "/api/v4/spot/accounts",
            headers={"Host": f"GATE-SIDECAR.internal:{port}"},
        )
        other, _, _ = await _call(
            sidecar.url("bot") + "/api/v4/spot/accounts",
            headers={"Host": f"other.internal:{port}"},
        )
        assert (ok, other) == (200, 421)


# -- JSON-only bodies (gap 3) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_body_that_is_not_json_is_415_and_not_forwarded(
    bot: RunningSidecar, exchange: RunningExchange, content_type: str | None
) -> None:
    before = len(exchange.state.requests)
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, _, body = await _call(
        bot.url("bot") + "/api/v4/spot/orders",
        "POST",
        body=json.dumps(ORDER).encode(),
        headers=headers,
    )
    assert (status, _label(body)) == (415, "SIDECAR_UNSUPPORTED_MEDIA_TYPE")
    assert len(exchange.state.requests) == before


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
async def test_a_json_body_is_forwarded(
    bot: RunningSidecar, exchange: RunningExchange, content_type: str
) -> None:
    status, _, body = await _call(
        bot.url("bot") + "/api/v4/spot/orders",
        "POST",
        body=json.dumps(ORDER).encode(),
        headers={"Content-Type": content_type},
    )
    assert status == 201, body


# -- the header allow-list (gap 4) -----------------------------------------------------------

NOT_FORWARDED = [
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Original-Method",
    "True-Client-IP",
    "CF-Connecting-IP",
    "Client-IP",
    "X-Client-IP",
    "X-Cluster-Client-IP",
    "Via",
    "Referer",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Dest",
    "X-Sidecar-Token",
    "X-Anything-Else",
]


async def test_only_the_headers_gate_uses_reach_it(
    bot: RunningSidecar, exchange: RunningExchange
) -> None:
    sent = {name: "v" for name in NOT_FORWARDED}
    sent |= {"X-Gate-Channel-Id": "broker", "X-Trace-Id": "t-1", "User-Agent": "bot/1"}
    status, _, body = await _call(bot.url("bot") + "/api/v4/spot/accounts", headers=sent)
    assert status == 200, body
    seen = exchange.state.requests[-1].headers
    assert [name for name in NOT_FORWARDED if name in seen] == []
    assert (seen["X-Gate-Channel-Id"], seen["X-Trace-Id"], seen["User-Agent"]) == (
        "broker",
        "t-1",
        "bot/1",
    )


# -- small ones (gap 6) ----------------------------------------------------------------------


@pytest.mark.parametrize("query", ["text=%ff", "text=%c0%ae", "text=%zz", "text=100%"])
async def test_a_query_escape_gate_would_decode_otherwise_is_400(
    bot: RunningSidecar, exchange: RunningExchange, query: str
) -> None:
    before = len(exchange.state.requests)
    status, _, body = await _call(bot.url("bot") + f"/api/v4/spot/orders?{query}", "DELETE")
    assert (status, _label(body)) == (400, "SIDECAR_BAD_REQUEST")
    assert len(exchange.state.requests) == before


async def test_a_header_value_outside_ascii_is_400_and_not_forwarded(
    bot: RunningSidecar, exchange: RunningExchange
) -> None:
    before = len(exchange.state.requests)
    port = URL(bot.url("bot")).port
    assert port is not None
    head = (
        f"GET /api/v4/spot/accounts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
        + b"X-Gate-Channel-Id: caf\xe9\r\nConnection: close\r\n\r\n"
    )
    status, body = await raw_exchange("127.0.0.1", port, head)
    assert (status, _label(body)) == (400, "SIDECAR_BAD_REQUEST")
    assert len(exchange.state.requests) == before


# -- the client token ------------------------------------------------------------------------


async def test_a_token_file_guards_the_listener_and_follows_rotation(
    exchange: RunningExchange, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    register_secret("first-token-0123456789", "second-token-9876543210")
    token_file = tmp_path / "token"
    token_file.write_text("first-token-0123456789\n")
    async for sidecar, _ in _start(exchange, client_auth={"token_file": str(token_file)}):
        url = sidecar.url("bot") + "/api/v4/spot/accounts"
        missing, _, missing_body = await _call(url)
        wrong, _, _ = await _call(url, headers={"X-Sidecar-Token": "nope"})
        right, _, _ = await _call(url, headers={"X-Sidecar-Token": "first-token-0123456789"})
        assert (missing, _label(missing_body), wrong, right) == (
            401,
            "SIDECAR_UNAUTHENTICATED",
            401,
            200,
        )
        assert "X-Sidecar-Token" not in exchange.state.requests[-1].headers
        # Rotated by replacing the file: the new token works at once, the old one no longer.
        (tmp_path / "token.new").write_text("second-token-9876543210")
        os.replace(tmp_path / "token.new", token_file)
        old, _, _ = await _call(url, headers={"X-Sidecar-Token": "first-token-0123456789"})
        new, _, _ = await _call(url, headers={"X-Sidecar-Token": "second-token-9876543210"})
        assert (old, new) == (401, 200)
    assert "first-token" not in caplog.text and "second-token" not in caplog.text


def test_a_non_loopback_listener_without_client_auth_is_refused_naming_the_field() -> None:
    from sidecar.config import parse_config
    from sidecar.errors import ConfigError

    entry, _, _, _ = env_key("bot", "read-only", listen="0.0.0.0:8081", allow_remote=True)
    with pytest.raises(ConfigError) as err:
        parse_config({"keys": [entry]}, environ={})
    assert err.value.problems == [
        "keys[0].client_auth: '0.0.0.0:8081' is reachable from other hosts; set "
        "client_auth.token_file, or client_auth.tls with a client_ca_file (mTLS)"
    ]


def test_peer_ids_on_a_tcp_listener_are_refused_naming_the_field() -> None:
    from sidecar.config import parse_config
    from sidecar.errors import ConfigError

    entry, _, _, _ = env_key(
        "bot", "read-only", listen="127.0.0.1:8081", client_auth={"peer_uids": [0]}
    )
    with pytest.raises(ConfigError) as err:
        parse_config({"keys": [entry]}, environ={})
    assert err.value.problems == [
        "keys[0].client_auth.peer_uids: only applies to a unix socket listen address"
    ]


# -- unix sockets: SO_PEERCRED and socket_group ----------------------------------------------


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        ({"peer_uids": [os.getuid()]}, 200),
        ({"peer_gids": [os.getgid()]}, 200),
        ({"peer_uids": [os.getuid() + 4242]}, 403),
        ({"peer_uids": [os.getuid() + 4242], "peer_gids": [os.getgid() + 4242]}, 403),
    ],
)
async def test_peer_uids_and_gids_decide_who_may_use_a_unix_socket(
    exchange: RunningExchange, tmp_path: Path, auth: dict[str, Any], status: int
) -> None:
    sock = str(tmp_path / "bot.sock")
    async for _, _ in _start(exchange, listen=f"unix:{sock}", client_auth=auth):
        got, _, body = await _call("http://localhost/api/v4/spot/accounts", unix=sock)
        assert got == status, body
        if status == 403:
            assert _label(body) == "SIDECAR_FORBIDDEN_PEER"


async def test_a_unix_socket_gets_its_socket_group(
    exchange: RunningExchange, tmp_path: Path
) -> None:
    import grp

    group = grp.getgrgid(os.getgid()).gr_name
    sock = tmp_path / "bot.sock"
    async for _, _ in _start(
        exchange, listen=f"unix:{sock}", socket_group=group, socket_mode="0660"
    ):
        st = sock.stat()
        assert (st.st_gid, st.st_mode & 0o777) == (os.getgid(), 0o660)
