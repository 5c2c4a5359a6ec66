"""The signing proxy end to end: a bot with no secret, the sidecar, the verifying exchange."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import gate_api
import pytest
from yarl import URL

from tests.fixtures_exchange import RunningExchange
from tests.fixtures_sidecar import RunningSidecar, env_key, make_config, running_sidecar


@dataclass
class Setup:
    exchange: RunningExchange
    sidecar: RunningSidecar
    keys: dict[str, tuple[str, str]]  # name -> (api_key, secret)

    def url(self, key: str, path: str) -> str:
        return self.sidecar.url(key) + path


async def _setup(
    exchange: RunningExchange, policies: dict[str, Any], **sections: Any
) -> AsyncIterator[Setup]:
    entries, environ, keys = [], {}, {}
    for name, policy in policies.items():
        entry, env, api_key, secret = env_key(name, policy)
        entries.append(entry)
        environ.update(env)
        keys[name] = (api_key, secret)
        exchange.state.add_key(api_key, secret)
    config = make_config(exchange.url, entries, **sections)
    async with running_sidecar(config, environ) as sidecar:
        yield Setup(exchange, sidecar, keys)


@pytest.fixture
async def setup(exchange: RunningExchange) -> AsyncIterator[Setup]:
    async for s in _setup(
        exchange,
        {"full": "full-trading", "futures": "futures-only", "reader": "read-only"},
        server={"max_body_bytes": 4096},
    ):
        yield s


async def _call(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=True) as http,
        http.request(method, URL(url, encoded=True), data=body, headers=headers or {}) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def test_an_unsigned_request_is_signed_with_the_real_key_and_verified(setup: Setup) -> None:
    status, _, body = await _call("GET", setup.url("futures", "/api/v4/futures/usdt/accounts"))
    assert status == 200, body
    last = setup.exchange.state.requests[-1]
    assert last.verdict == "ok" and last.api_key == setup.keys["futures"][0]


async def test_client_sent_key_and_sign_are_replaced(setup: Setup) -> None:
    junk = {
        "KEY": "junk",
        "sign": "deadbeef",
        "TIMESTAMP": "1",
        "Authorization": "Bearer x",
        "Cookie": "a=b",
        "X-Forwarded-For": "10.0.0.1",
    }
    status, _, body = await _call("GET", setup.url("full", "/api/v4/spot/accounts"), headers=junk)
    assert status == 200, body
    seen = setup.exchange.state.requests[-1].headers
    assert seen["KEY"] == setup.keys["full"][0]
    assert "junk" not in str(dict(seen)) and "deadbeef" not in str(dict(seen))
    for dropped in ("Authorization", "Cookie", "X-Forwarded-For"):
        assert dropped not in seen


async def test_gate_headers_from_the_bot_pass_through(setup: Setup) -> None:
    sent = {
        "X-Gate-Channel-Id": "my-broker",
        "X-Gate-Size-Decimal": "1",
        "x-gate-exptime": str(int(time.time() * 1000) + 60_000),  # Gate refuses a past one
        "Content-Type": "application/json",
    }
    body = json.dumps({"contract": "BTC_USDT", "size": 1, "price": "1"}).encode()
    status, _, _ = await _call(
        "POST", setup.url("futures", "/api/v4/futures/usdt/orders"), body=body, headers=sent
    )
    assert status == 201
    seen = setup.exchange.state.requests[-1].headers
    for name, value in sent.items():
        assert seen[name] == value


async def test_gates_status_body_and_useful_headers_come_back_unchanged(setup: Setup) -> None:
    status, headers, body = await _call("GET", setup.url("reader", "/api/v4/spot/accounts"))
    assert status == 200
    for name in ("X-Gate-RateLimit-Requests-Remain", "X-Gate-RateLimit-Limit", "X-Gate-Trace-ID"):
        assert name in headers
    assert isinstance(json.loads(body), list)


async def test_a_gate_error_is_relayed_as_is(setup: Setup) -> None:
    setup.exchange.state.remove_key(setup.keys["reader"][0])
    status, _, body = await _call("GET", setup.url("reader", "/api/v4/spot/accounts"))
    assert status == 401 and json.loads(body)["label"] == "INVALID_KEY"


async def test_a_query_with_commas_spaces_and_unicode_verifies(setup: Setup) -> None:
    query = "currencies=BTC%2CETH&text=a+b%20c&name=%E6%B5%8B%E8%AF%95"
    _, _, body = await _call("DELETE", setup.url("full", f"/api/v4/spot/orders?{query}"))
    assert setup.exchange.state.requests[-1].verdict == "ok", body
    assert setup.exchange.state.requests[-1].raw_query == query


async def test_a_post_with_a_query_verifies(setup: Setup) -> None:
    url = setup.url("futures", "/api/v4/futures/usdt/positions/BTC_USDT/leverage?leverage=10")
    status, _, body = await _call("POST", url)
    assert status == 200, body
    assert setup.exchange.state.requests[-1].raw_query == "leverage=10"


async def test_a_denied_request_never_reaches_the_exchange(setup: Setup) -> None:
    before = len(setup.exchange.state.requests)
    body = json.dumps({"currency_pair": "BTC_USDT", "side": "buy", "amount": "1"}).encode()
    status, _, resp = await _call("POST", setup.url("futures", "/api/v4/spot/orders"), body=body)
    assert status == 403
    doc = json.loads(resp)
    assert doc["label"] == "SIDECAR_POLICY_DENIED"
    assert doc["message"].startswith("futures may not POST /api/v4/spot/orders (")
    assert len(setup.exchange.state.requests) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v4/withdrawals", {"currency": "USDT", "amount": "1", "address": "x"}),
        ("POST", "/api/v4/withdrawals/push", {"receive_uid": 1, "currency": "USDT", "amount": "1"}),
        ("POST", "/api/v4/sub_accounts/123/keys", {"name": "k", "perms": []}),
        ("POST", "/api/v4/sub_accounts", {"login_name": "x"}),
    ],
)
async def test_withdrawals_and_sub_account_keys_are_refused_under_full_trading(
    setup: Setup, method: str, path: str, body: dict[str, Any]
) -> None:
    before = len(setup.exchange.state.requests)
    status, _, resp = await _call(method, setup.url("full", path), body=json.dumps(body).encode())
    assert status == 403 and json.loads(resp)["label"] == "SIDECAR_POLICY_DENIED"
    assert len(setup.exchange.state.requests) == before


PATH_TRICKS = [
    "/api/v4/spot/../withdrawals",
    "/api/v4/futures/../../api/v4/withdrawals",
    "/api/v4/spot/%2e%2e/withdrawals",
    "/api/v4/spot/%2E%2E/withdrawals",
    "/api/v4/spot/..%2fwithdrawals",
    "/api/v4/spot%2f..%2fwithdrawals",
    "/api/v4/futures/usdt/%2e%2e%2f%2e%2e%2fwithdrawals",
    "/api/v4//withdrawals",
    "/api/v4/./withdrawals",
    "/api/v4/spot/./accounts",
    "/api/v4/withdrawals;x=y",
    "/api/v4/spot;/../withdrawals",
    "/api/v4/spot\\..\\withdrawals",
    "/api/v4/spot/%5c..%5cwithdrawals",
    "/API/V4/withdrawals",
    "/Api/v4/spot/accounts",
    "/api/V4/spot/accounts",
    "/api/v4/spot/accounts/",
    "/api/v4/spot/%252e%252e/withdrawals",
    "/api/v4/spot/%c0%ae%c0%ae/withdrawals",
    "/api/v4/spot/accounts%00",
    "/api/v4/spot/accounts%0d%0aX:1",
    "/api/v4/spot/accounts%09",
    "/api/v4/%77ithdrawals",
    "/api/v4/spot/accounts#frag",
    "//api/v4/spot/accounts",
    "/api/v4/spot/..",
    "/api/v4/spot/.",
]


async def _raw_request(url: str, target: str) -> tuple[int, bytes]:
    """Send a request line byte for byte: no client library gets to normalise it."""
    u = URL(url)
    reader, writer = await asyncio.open_connection(u.host, u.port)
    host = f"{u.host}:{u.port}"
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize("target", PATH_TRICKS)
async def test_a_path_trick_is_refused_and_never_reaches_the_exchange(
    setup: Setup, target: str
) -> None:
    before = len(setup.exchange.state.requests)
    status, body = await _raw_request(setup.sidecar.url("full"), target)
    assert status in (400, 404), (target, status, body)
    if body:
        assert json.loads(body)["label"] in ("SIDECAR_BAD_REQUEST", "SIDECAR_NOT_FOUND")
    assert len(setup.exchange.state.requests) == before


async def test_a_path_outside_the_api_is_404_and_not_forwarded(setup: Setup) -> None:
    status, _, body = await _call("GET", setup.url("full", "/api/v3/spot/accounts"))
    assert status == 404 and json.loads(body)["label"] == "SIDECAR_NOT_FOUND"


async def test_a_body_over_the_cap_is_413_and_not_forwarded(setup: Setup) -> None:
    before = len(setup.exchange.state.requests)
    big = b'{"x":"' + b"a" * 5000 + b'"}'
    status, _, body = await _call("POST", setup.url("full", "/api/v4/spot/orders"), body=big)
    assert status == 413 and json.loads(body)["label"] == "SIDECAR_BODY_TOO_LARGE"
    assert len(setup.exchange.state.requests) == before


async def test_the_checked_path_is_the_path_forwarded(setup: Setup) -> None:
    await _call("GET", setup.url("full", "/api/v4/spot/orders/t-abc_1.2~x"))
    assert setup.exchange.state.requests[-1].raw_path == "/api/v4/spot/orders/t-abc_1.2~x"


async def test_an_unreachable_upstream_is_502(unused_tcp_port: int) -> None:
    entry, environ, _, _ = env_key("k", "read-only")
    config = make_config(f"http://127.0.0.1:{unused_tcp_port}", [entry])
    async with running_sidecar(config, environ) as sidecar:
        status, _, body = await _call("GET", sidecar.url("k") + "/api/v4/spot/accounts")
    assert status == 502 and json.loads(body)["label"] == "SIDECAR_UPSTREAM_UNAVAILABLE"


async def test_a_slow_upstream_is_504(exchange: RunningExchange) -> None:
    async for s in _setup(exchange, {"k": "read-only"}, upstream={"timeout_s": 0.5}):
        # Three times the timeout; the exchange's teardown waits for the delayed answer.
        exchange.state.delays["/api/v4/spot/accounts"] = 1.5
        status, _, body = await _call("GET", s.url("k", "/api/v4/spot/accounts"))
        assert status == 504 and json.loads(body)["label"] == "SIDECAR_UPSTREAM_TIMEOUT"


async def test_a_key_without_a_secret_answers_503(exchange: RunningExchange) -> None:
    entry, _, _, _ = env_key("k", "read-only")
    config = make_config(exchange.url, [entry])
    async with running_sidecar(config, {}) as sidecar:
        status, _, body = await _call("GET", sidecar.url("k") + "/api/v4/spot/accounts")
        assert status == 503 and json.loads(body)["label"] == "SIDECAR_KEY_UNAVAILABLE"
        async with aiohttp.ClientSession() as http, http.get(sidecar.admin_url + "/readyz") as r:
            assert r.status == 503 and (await r.json())["missing"] == ["k"]
    assert exchange.state.requests == []


async def test_no_secret_appears_in_any_log_line_or_response(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = []
    for key, method, path in [
        ("full", "GET", "/api/v4/spot/accounts"),
        ("futures", "POST", "/api/v4/spot/orders"),
        ("reader", "GET", "/api/v4/../x"),
        ("full", "POST", "/api/v4/withdrawals"),
    ]:
        responses.append(await _call(method, setup.url(key, path), body=b"{}"))
    text = caplog.text + "".join(f"{s}{h}{b!r}" for s, h, b in responses)
    assert "request" in caplog.text  # the audit lines were captured
    for _, secret in setup.keys.values():
        assert secret not in text


async def test_the_official_sdk_without_credentials_trades_through_the_sidecar(
    setup: Setup,
) -> None:
    def bot() -> tuple[str, list[str]]:
        client = gate_api.ApiClient(
            gate_api.Configuration(host=setup.sidecar.url("full") + "/api/v4")
        )
        spot = gate_api.SpotApi(client)
        order = spot.create_order(
            gate_api.Order(currency_pair="BTC_USDT", side="buy", amount="0.001", price="60000")
        )
        listed = [o.id for o in spot.list_orders("BTC_USDT", "open")]
        spot.cancel_order(order.id, "BTC_USDT")
        return order.id, listed

    order_id, listed = await asyncio.to_thread(bot)
    assert listed == [order_id]
    full_key = setup.keys["full"][0]
    signed = [r for r in setup.exchange.state.requests if r.api_key == full_key]
    assert len(signed) >= 3 and all(r.verdict == "ok" for r in signed)
