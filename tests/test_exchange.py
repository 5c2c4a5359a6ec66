"""The verifying exchange: it must accept exactly what Gate accepts, independently of our signer."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import time

import aiohttp
import gate_api
import pytest
from yarl import URL

from sidecar.exchange.auth import AuthError, expected_sign, verify
from tests.fixtures_exchange import RunningExchange

VECTORS = [
    (
        "GET",
        "/api/v4/futures/orders",
        "contract=BTC_USD&status=finished&limit=50",
        b"",
        "55f84ea195d6fe57ce62464daaa7c3c02fa9d1dde954e4c898289c9a2407a3d6"
        "fb3faf24deff16790d726b66ac9f74526668b13bd01029199cc4fcc522418b8a",
    ),
    (
        "POST",
        "/api/v4/futures/orders",
        "",
        b'{"contract":"BTC_USD","type":"limit","size":100,"price":6800,"time_in_force":"gtc"}',
        "eae42da914a590ddf727473aff25fc87d50b64783941061f47a3fdb92742541f"
        "c4c2c14017581b4199a1418d54471c269c03a38d788d802e2c306c37636389f0",
    ),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "sign"), VECTORS)
def test_the_verifier_accepts_gates_official_vectors(
    method: str, path: str, query: str, body: bytes, sign: str
) -> None:
    assert expected_sign("secret", method, path, query, body, "1541993715") == sign
    headers = {"KEY": "key", "SIGN": sign, "Timestamp": "1541993715"}
    assert verify(headers, {"key": "secret"}, method, path, query, body, 1541993715.0, 60) == "key"


@pytest.mark.parametrize(
    ("headers", "now", "label"),
    [
        ({"KEY": "key", "Timestamp": "1541993715"}, 1541993715.0, "MISSING_REQUIRED_HEADER"),
        ({"KEY": "nokey", "SIGN": "x", "Timestamp": "1541993715"}, 1541993715.0, "INVALID_KEY"),
        (
            {"KEY": "key", "SIGN": "00", "Timestamp": "1541993715"},
            1541993715.0,
            "INVALID_SIGNATURE",
        ),
        (
            {"KEY": "key", "SIGN": VECTORS[0][4], "Timestamp": "1541993715"},
            1541993776.0,
            "REQUEST_EXPIRED",
        ),
    ],
)
def test_the_verifier_refuses_with_gates_labels(
    headers: dict[str, str], now: float, label: str
) -> None:
    method, path, query, body, _ = VECTORS[0]
    with pytest.raises(AuthError) as err:
        verify(headers, {"key": "secret"}, method, path, query, body, now, 60)
    assert err.value.label == label


def _signed(
    secret: str, key: str, method: str, path: str, query: str, body: bytes, ts: str
) -> dict[str, str]:
    digest = hashlib.sha512(body).hexdigest()
    from urllib.parse import unquote_plus

    text = f"{method}\n{path}\n{unquote_plus(query)}\n{digest}\n{ts}".encode()
    return {
        "KEY": key,
        "Timestamp": ts,
        "SIGN": hmac.new(secret.encode(), text, hashlib.sha512).hexdigest(),
    }


async def test_a_signed_query_with_commas_spaces_and_unicode_verifies(
    exchange: RunningExchange,
) -> None:
    key, secret = exchange.new_key()
    query = "currencies=BTC%2CETH&text=a+b%20c&name=%E6%B5%8B"
    headers = _signed(secret, key, "GET", "/api/v4/wallet/x", query, b"", str(int(time.time())))
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            URL(f"{exchange.url}/api/v4/wallet/x?{query}", encoded=True), headers=headers
        ) as resp,
    ):
        assert resp.status == 200 and resp.headers["X-Exchange-Echo"] == "1"
    assert exchange.state.requests[-1].verdict == "ok"


async def test_raw_paths_are_recorded_without_normalisation(exchange: RunningExchange) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", URL(exchange.url).port)
    writer.write(
        b"GET /api/v4/spot/../wallet/%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    await reader.read()
    writer.close()
    assert exchange.state.requests[-1].raw_path == "/api/v4/spot/../wallet/%2e%2e"


async def test_the_exchange_clock_can_run_ahead(exchange: RunningExchange) -> None:
    key, secret = exchange.new_key()
    exchange.state.clock_offset_s = 300
    headers = _signed(secret, key, "GET", "/api/v4/spot/accounts", "", b"", str(int(time.time())))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{exchange.url}/api/v4/spot/accounts", headers=headers) as resp:
            assert resp.status == 401 and (await resp.json())["label"] == "REQUEST_EXPIRED"
        async with http.get(f"{exchange.url}/api/v4/spot/time") as resp:
            server_ms = (await resp.json())["server_time"]
            assert abs(server_ms / 1000 - time.time() - 300) < 5
            assert resp.headers["Date"]


async def test_large_answers_are_gzipped_when_the_client_accepts_it(
    exchange: RunningExchange,
) -> None:
    key, secret = exchange.new_key()
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for _ in range(12):  # enough orders for a > 1 KB list
            body = b'{"currency_pair":"BTC_USDT","side":"buy","amount":"1","price":"1"}'
            h = _signed(secret, key, "POST", "/api/v4/spot/orders", "", body, str(int(time.time())))
            async with http.post(f"{exchange.url}/api/v4/spot/orders", data=body, headers=h):
                pass
        h = _signed(
            secret,
            key,
            "GET",
            "/api/v4/spot/orders",
            "currency_pair=BTC_USDT",
            b"",
            str(int(time.time())),
        )
        async with http.get(
            f"{exchange.url}/api/v4/spot/orders?currency_pair=BTC_USDT",
            headers={**h, "Accept-Encoding": "gzip"},
        ) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await resp.read()).startswith(b"[")


def _sdk(exchange: RunningExchange, key: str, secret: str) -> gate_api.ApiClient:
    return gate_api.ApiClient(
        gate_api.Configuration(host=f"{exchange.url}/api/v4", key=key, secret=secret)
    )


async def test_the_official_sdk_with_real_credentials_trades_against_the_exchange(
    exchange: RunningExchange,
) -> None:
    """The official signer (float timestamps, its own encoding) is accepted: the exchange verifies
    the way Gate does, not the way our signer happens to sign."""
    key, secret = exchange.new_key()

    def bot() -> None:
        client = _sdk(exchange, key, secret)
        spot, futures = gate_api.SpotApi(client), gate_api.FuturesApi(client)
        assert [p.id for p in spot.list_currency_pairs()] == ["BTC_USDT", "ETH_USDT"]
        assert futures.list_futures_accounts("usdt").currency == "USDT"
        order = spot.create_order(
            gate_api.Order(currency_pair="BTC_USDT", side="buy", amount="0.001", price="60000")
        )
        assert [o.id for o in spot.list_orders("BTC_USDT", "open")] == [order.id]
        assert spot.cancel_order(order.id, "BTC_USDT").status == "cancelled"
        fo = futures.create_futures_order(
            "usdt", gate_api.FuturesOrder(contract="BTC_USDT", size=1, price="60000")
        )
        assert futures.cancel_futures_order("usdt", str(fo.id)).finish_as == "cancelled"
        assert futures.update_position_leverage("usdt", "BTC_USDT", "10").leverage == "10"

    await asyncio.to_thread(bot)
    verdicts = {r.verdict for r in exchange.state.requests}
    assert verdicts <= {"ok", "public"}, verdicts
