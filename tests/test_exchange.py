"""The verifying exchange: it must accept exactly what Gate accepts, independently of our signer."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import os
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import gate_api
import pytest
from multidict import CIMultiDictProxy
from yarl import URL

from sidecar.devtools.exchange import ExchangeState
from sidecar.devtools.exchange.auth import AuthError, expected_sign, string_to_sign, verify
from sidecar.devtools.exchange.responses import accepts_gzip
from tests.fixtures_exchange import RunningExchange, gate_sign
from tests.vectors import OFFICIAL_VECTORS

# ccxt is imported by the functions that use it, not here: importing it costs each pytest
# worker about 1.8 s at collection, for a handful of tests (marker `ccxt`; `make test-lowest`
# leaves ccxt out and deselects them).

OFFICIAL_TS = "1541993715"
EMPTY_SHA512 = (
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)


async def _send(
    exchange: RunningExchange,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    decompress: bool = True,
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    """One request with the target sent exactly as written (no re-encoding by yarl)."""
    async with (
        aiohttp.ClientSession(auto_decompress=decompress) as http,
        http.request(
            method, URL(exchange.url + target, encoded=True), headers=headers, data=body
        ) as resp,
    ):
        return resp.status, resp.headers, await resp.read()


async def _raw(exchange: RunningExchange, head: str) -> bytes:
    """Send a request head as written (no client library tidies it) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", exchange.port)
    try:
        writer.write(f"{head}Connection: close\r\n\r\n".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


async def _signed(
    exchange: RunningExchange,
    key: tuple[str, str],
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    **extra: str,
) -> tuple[int, Any]:
    headers = {**gate_sign(*key, method, path, query, body), **extra}
    target = f"{path}?{query}" if query else path
    status, _, raw = await _send(exchange, method, target, headers=headers, body=body or None)
    return status, json.loads(raw)


# -- the verification rules, pure ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "query", "body", "sign"), OFFICIAL_VECTORS)
def test_the_verifier_reproduces_and_accepts_gates_official_vectors(
    method: str, path: str, query: str, body: bytes, sign: str
) -> None:
    assert expected_sign("secret", method, path, query, body, OFFICIAL_TS) == sign
    headers = {"KEY": "key", "SIGN": sign, "Timestamp": OFFICIAL_TS}
    assert verify(headers, {"key": "secret"}, method, path, query, body, 1541993715.0, 60) == "key"


def test_the_string_to_sign_decodes_the_query_and_hashes_the_empty_body() -> None:
    text = string_to_sign("get", "/api/v4/wallet/x", "a=BTC%2CETH&b=x+y%20z", b"", "1")
    assert text == f"GET\n/api/v4/wallet/x\na=BTC,ETH&b=x y z\n{EMPTY_SHA512}\n1"


GOOD = {"KEY": "key", "SIGN": OFFICIAL_VECTORS[0][4], "Timestamp": OFFICIAL_TS}


@pytest.mark.parametrize(
    ("headers", "now", "label"),
    [
        ({"KEY": "key", "Timestamp": OFFICIAL_TS}, 1541993715.0, "MISSING_REQUIRED_HEADER"),
        (
            {"SIGN": OFFICIAL_VECTORS[0][4], "Timestamp": OFFICIAL_TS},
            1541993715.0,
            "MISSING_REQUIRED_HEADER",
        ),
        ({"KEY": "key", "SIGN": OFFICIAL_VECTORS[0][4]}, 1541993715.0, "MISSING_REQUIRED_HEADER"),
        ({**GOOD, "KEY": ""}, 1541993715.0, "MISSING_REQUIRED_HEADER"),
        ({**GOOD, "KEY": "nokey"}, 1541993715.0, "INVALID_KEY"),
        ({**GOOD, "SIGN": "00"}, 1541993715.0, "INVALID_SIGNATURE"),
        ({**GOOD, "SIGN": OFFICIAL_VECTORS[0][4].upper()}, 1541993715.0, "INVALID_SIGNATURE"),
        ({**GOOD, "SIGN": "é" * 128}, 1541993715.0, "INVALID_SIGNATURE"),
        (GOOD, 1541993715.0 + 61, "REQUEST_EXPIRED"),
        (GOOD, 1541993715.0 - 61, "REQUEST_EXPIRED"),
        ({**GOOD, "Timestamp": "nan"}, 1541993715.0, "INVALID_PARAM_VALUE"),
        ({**GOOD, "Timestamp": "inf"}, 1541993715.0, "INVALID_PARAM_VALUE"),
        ({**GOOD, "Timestamp": "soon"}, 1541993715.0, "INVALID_PARAM_VALUE"),
    ],
)
def test_the_verifier_refuses_with_gates_labels(
    headers: dict[str, str], now: float, label: str
) -> None:
    method, path, query, body, _ = OFFICIAL_VECTORS[0]
    with pytest.raises(AuthError) as err:
        verify(headers, {"key": "secret"}, method, path, query, body, now, 60)
    assert err.value.label == label


def test_the_verifier_reads_headers_in_any_letter_case_and_refuses_duplicates() -> None:
    method, path, query, body, sign = OFFICIAL_VECTORS[0]
    lower = {"key": "key", "sign": sign, "timestamp": OFFICIAL_TS}
    assert verify(lower, {"key": "secret"}, method, path, query, body, 1541993715.0, 60) == "key"
    doubled = [*GOOD.items(), ("sign", sign)]

    class Pairs(dict[str, str]):  # a mapping whose items() repeats a header, like a multidict
        def items(self) -> Any:
            return doubled

    with pytest.raises(AuthError) as err:
        verify(Pairs(GOOD), {"key": "secret"}, method, path, query, body, 1541993715.0, 60)
    assert err.value.label == "INVALID_SIGNATURE" and "2 times" in err.value.message


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
    ],
)
def test_gzip_is_used_only_when_the_client_accepts_it(header: str, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok


def test_no_secret_appears_in_the_states_repr() -> None:
    state = ExchangeState()
    state.add_key("k", "very-secret-value")
    assert "very-secret-value" not in repr(state.accounts)


# -- over HTTP: what reaches the exchange and what it answers -------------------------------------


@pytest.mark.parametrize(("method", "path", "query", "body", "sign"), OFFICIAL_VECTORS)
async def test_the_exchange_accepts_the_official_vectors_over_http(
    exchange: RunningExchange, method: str, path: str, query: str, body: bytes, sign: str
) -> None:
    exchange.state.add_key("key", "secret")
    exchange.state.clock_offset_s = int(OFFICIAL_TS) - time.time()  # its "now" is 2018-11-12
    headers = {"KEY": "key", "SIGN": sign, "Timestamp": OFFICIAL_TS}
    target = f"{path}?{query}" if query else path
    status, resp_headers, raw = await _send(exchange, method, target, headers=headers, body=body)
    assert status == 200 and resp_headers["X-Exchange-Echo"] == "1"
    assert json.loads(raw) == {"echo": {"method": method, "path": path, "query": query}}
    assert exchange.state.requests[-1].verdict == "ok"
    assert exchange.state.requests[-1].body == body


async def test_bad_requests_are_refused_with_gates_labels_and_recorded(
    exchange: RunningExchange,
) -> None:
    key = exchange.new_key()
    path = "/api/v4/spot/accounts"
    fresh = gate_sign(*key, "GET", path)
    old = gate_sign(*key, "GET", path, timestamp=str(int(time.time()) - 61))
    cases = [
        ({**fresh, "SIGN": "0" * 128}, "INVALID_SIGNATURE"),
        ({**fresh, "KEY": "someone-else"}, "INVALID_KEY"),
        (old, "REQUEST_EXPIRED"),
        ({"KEY": key[0], "Timestamp": fresh["Timestamp"]}, "MISSING_REQUIRED_HEADER"),
        (gate_sign(key[0], "wrong-secret", "GET", path), "INVALID_SIGNATURE"),
        (gate_sign(*key, "GET", "/api/v4/spot/accounts/"), "INVALID_SIGNATURE"),
    ]
    for headers, label in cases:
        status, _, raw = await _send(exchange, "GET", path, headers=headers)
        assert (status, json.loads(raw)["label"]) == (401, label), headers
        assert exchange.state.requests[-1].verdict == label
        assert exchange.state.requests[-1].api_key == headers.get("KEY")
    assert exchange.state.verified() == []


async def test_an_auth_header_sent_twice_is_refused(exchange: RunningExchange) -> None:
    """Catches a proxy that adds its SIGN next to the client's instead of replacing it."""
    key = exchange.new_key()
    signed = gate_sign(*key, "GET", "/api/v4/spot/accounts")
    lines = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    answer = await _raw(
        exchange, f"GET /api/v4/spot/accounts HTTP/1.1\r\nHost: x\r\n{lines}sign: 00\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 401") and b"INVALID_SIGNATURE" in answer
    assert exchange.state.requests[-1].headers.getall("SIGN") == [signed["SIGN"], "00"]


async def test_a_float_timestamp_like_the_python_sdk_sends_verifies(
    exchange: RunningExchange,
) -> None:
    key = exchange.new_key()
    headers = gate_sign(*key, "GET", "/api/v4/spot/accounts", timestamp=repr(time.time()))
    status, _, _ = await _send(exchange, "GET", "/api/v4/spot/accounts", headers=headers)
    assert status == 200


async def test_a_signed_query_with_commas_spaces_and_unicode_verifies(
    exchange: RunningExchange,
) -> None:
    key = exchange.new_key()
    query = "currencies=BTC%2CETH&text=a+b%20c&name=%E6%B5%8B%E8%AF%95&empty="
    status, doc = await _signed(exchange, key, "GET", "/api/v4/wallet/x", query)
    assert status == 200 and doc["echo"]["query"] == query
    assert exchange.state.requests[-1].raw_query == query


async def test_signing_the_encoded_query_is_refused_like_gate_refuses_it(
    exchange: RunningExchange,
) -> None:
    """The old ccxt bug: signing ``BTC%2CETH`` instead of ``BTC,ETH`` gets INVALID_SIGNATURE."""
    api_key, secret = exchange.new_key()
    query = "currencies=BTC%2CETH"
    ts = str(int(time.time()))
    text = f"GET\n/api/v4/wallet/x\n{query}\n{EMPTY_SHA512}\n{ts}"
    wrong = hmac.new(secret.encode(), text.encode(), hashlib.sha512).hexdigest()
    headers = {"KEY": api_key, "Timestamp": ts, "SIGN": wrong}
    status, _, raw = await _send(exchange, "GET", f"/api/v4/wallet/x?{query}", headers=headers)
    assert (status, json.loads(raw)["label"]) == (401, "INVALID_SIGNATURE")


@pytest.mark.parametrize(
    "raw_path",
    [
        "/api/v4/spot/../wallet",
        "/api/v4/spot/../wallet/%2e%2e",
        "/api/v4/spot/orders%2F1",
        "/api/v4//spot/./accounts",
        "/api/v4/spot/accounts/",
    ],
)
async def test_raw_paths_are_recorded_and_signed_without_normalisation(
    exchange: RunningExchange, raw_path: str
) -> None:
    key = exchange.new_key()
    status, doc = await _signed(exchange, key, "GET", raw_path)
    assert exchange.state.requests[-1].raw_path == raw_path
    assert status == 200 and doc["echo"]["path"] == raw_path  # verified as sent, then echoed


async def test_a_raw_socket_request_is_recorded_byte_for_byte(exchange: RunningExchange) -> None:
    answer = await _raw(exchange, "GET /api/v4/spot/../wallet HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 401")
    last = exchange.state.requests[-1]
    assert (last.raw_path, last.verdict) == ("/api/v4/spot/../wallet", "MISSING_REQUIRED_HEADER")


@pytest.mark.parametrize("target", ["/api/v3/spot/accounts", "/", "/api/v4x", "/metrics"])
async def test_paths_outside_api_v4_are_404_and_recorded(
    exchange: RunningExchange, target: str
) -> None:
    status, _, raw = await _send(exchange, "GET", target)
    assert (status, json.loads(raw)["label"]) == (404, "NOT_FOUND")
    assert exchange.state.requests[-1].raw_path == target


async def test_public_market_data_needs_no_signature(exchange: RunningExchange) -> None:
    for target in (
        "/api/v4/spot/currency_pairs",
        "/api/v4/spot/currency_pairs/BTC_USDT",
        "/api/v4/spot/currencies",
        "/api/v4/spot/tickers?currency_pair=ETH_USDT",
        "/api/v4/futures/usdt/contracts",
        "/api/v4/futures/usdt/contracts/ETH_USDT",
        "/api/v4/futures/btc/tickers",
    ):
        status, _, raw = await _send(exchange, "GET", target)
        assert status == 200 and json.loads(raw), target
        assert exchange.state.requests[-1].verdict == "public"


async def test_an_unknown_private_path_needs_a_signature_before_it_is_echoed(
    exchange: RunningExchange,
) -> None:
    status, _, raw = await _send(exchange, "GET", "/api/v4/earn/uni/lends")
    assert (status, json.loads(raw)["label"]) == (401, "MISSING_REQUIRED_HEADER")
    status, doc = await _signed(exchange, exchange.new_key(), "PUT", "/api/v4/earn/uni/lends")
    assert status == 200 and doc["echo"]["method"] == "PUT"


@pytest.mark.parametrize("body", [b"{not json", b'{"a": NaN}', b"\xff\xfe{}", b'{"a":1'])
async def test_a_malformed_json_body_is_400_invalid_param_value(
    exchange: RunningExchange, body: bytes
) -> None:
    status, doc = await _signed(
        exchange, exchange.new_key(), "POST", "/api/v4/spot/orders", body=body
    )
    assert (status, doc["label"]) == (400, "INVALID_PARAM_VALUE")
    assert exchange.state.requests[-1].body == body


async def test_every_answer_carries_gates_headers_and_a_date_from_the_exchange_clock(
    exchange: RunningExchange,
) -> None:
    exchange.state.clock_offset_s = 3600.0
    for target in ("/api/v4/spot/time", "/api/v4/spot/accounts", "/api/v3/nothing"):
        _, headers, _ = await _send(exchange, "GET", target)
        for name in (
            "X-Gate-RateLimit-Requests-Remain",
            "X-Gate-RateLimit-Limit",
            "X-Gate-RateLimit-Reset-Timestamp",
            "X-Gate-Trace-ID",
            "X-In-Time",
            "X-Out-Time",
        ):
            assert headers[name], (target, name)
        date = parsedate_to_datetime(headers["Date"]).timestamp()
        assert abs(date - (time.time() + 3600)) < 5
        assert int(headers["X-In-Time"]) <= int(headers["X-Out-Time"])
    _, _, raw = await _send(exchange, "GET", "/api/v4/spot/time")
    assert abs(json.loads(raw)["server_time"] / 1000 - (time.time() + 3600)) < 5


async def test_a_signature_from_the_local_clock_expires_when_the_exchange_runs_ahead(
    exchange: RunningExchange,
) -> None:
    key = exchange.new_key()
    exchange.state.clock_offset_s = 300
    status, doc = await _signed(exchange, key, "GET", "/api/v4/spot/accounts")
    assert (status, doc["label"]) == (401, "REQUEST_EXPIRED")
    ahead = str(int(time.time()) + 300)
    headers = gate_sign(*key, "GET", "/api/v4/spot/accounts", timestamp=ahead)
    assert (await _send(exchange, "GET", "/api/v4/spot/accounts", headers=headers))[0] == 200


async def test_the_rate_limit_headers_count_down_and_can_be_enforced(
    exchange: RunningExchange,
) -> None:
    key = exchange.new_key()
    exchange.state.rates.limit = 3
    remaining = []
    for _ in range(3):
        headers = gate_sign(*key, "GET", "/api/v4/spot/accounts")
        _, resp, _ = await _send(exchange, "GET", "/api/v4/spot/accounts", headers=headers)
        remaining.append(int(resp["X-Gate-RateLimit-Requests-Remain"]))
    assert remaining[0] > remaining[1] > remaining[2] >= 0
    exchange.state.rates.limit, exchange.state.enforce_rate_limit = 1, True
    status, doc = await _signed(exchange, key, "GET", "/api/v4/spot/accounts")
    assert (status, doc["label"]) == (429, "TOO_MANY_REQUESTS")


async def test_a_configured_delay_holds_the_answer(exchange: RunningExchange) -> None:
    exchange.state.delays["/api/v4/spot/time"] = 0.3
    started = time.monotonic()
    status, _, _ = await _send(exchange, "GET", "/api/v4/spot/time")
    assert status == 200 and time.monotonic() - started >= 0.3


async def test_large_answers_are_gzipped_when_the_client_accepts_it(
    exchange: RunningExchange,
) -> None:
    key = exchange.new_key()
    order = b'{"currency_pair":"BTC_USDT","side":"buy","amount":"1","price":"1"}'
    for _ in range(4):  # enough orders for a list over 1 KB
        assert (await _signed(exchange, key, "POST", "/api/v4/spot/orders", body=order))[0] == 201
    query = "currency_pair=BTC_USDT&status=open"
    for accept, compressed in (("gzip, deflate", True), ("identity", False)):
        headers = {
            **gate_sign(*key, "GET", "/api/v4/spot/orders", query),
            "Accept-Encoding": accept,
        }
        status, resp, raw = await _send(
            exchange, "GET", f"/api/v4/spot/orders?{query}", headers=headers, decompress=False
        )
        assert status == 200 and ("Content-Encoding" in resp) is compressed
        orders = json.loads(gzip.decompress(raw) if compressed else raw)
        assert len(orders) == 4 and len(json.dumps(orders)) > 1024
    _, resp, _ = await _send(
        exchange, "GET", "/api/v4/spot/time", headers={"Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in resp  # small answers stay plain


async def test_orders_belong_to_the_key_that_placed_them(exchange: RunningExchange) -> None:
    alice, bob = exchange.new_key(), exchange.new_key()
    body = b'{"currency_pair":"BTC_USDT","side":"buy","amount":"1","price":"100"}'
    status, order = await _signed(exchange, alice, "POST", "/api/v4/spot/orders", body=body)
    assert status == 201
    path, query = f"/api/v4/spot/orders/{order['id']}", "currency_pair=BTC_USDT"
    assert (await _signed(exchange, alice, "GET", path, query))[0] == 200
    status, doc = await _signed(exchange, bob, "GET", path, query)
    assert (status, doc["label"]) == (404, "ORDER_NOT_FOUND")
    exchange.state.remove_key(alice[0])
    status, doc = await _signed(exchange, alice, "GET", path, query)
    assert (status, doc["label"]) == (401, "INVALID_KEY")


async def test_open_orders_are_amended_and_cancelled_by_ids_over_rest(
    exchange: RunningExchange,
) -> None:
    key = exchange.new_key()
    body = b'{"currency_pair":"BTC_USDT","side":"buy","amount":"1","price":"100"}'
    _, spot = await _signed(exchange, key, "POST", "/api/v4/spot/orders", body=body)
    path = f"/api/v4/spot/orders/{spot['id']}"
    status, amended = await _signed(
        exchange, key, "PATCH", path, "currency_pair=BTC_USDT", b'{"price":"90","amount":"2"}'
    )
    assert (status, amended["price"], amended["amount"], amended["left"]) == (200, "90", "2", "2")
    ids = json.dumps([{"currency_pair": "BTC_USDT", "id": spot["id"]}]).encode()
    status, results = await _signed(
        exchange, key, "POST", "/api/v4/spot/cancel_batch_orders", body=ids
    )
    assert (status, results[0]["succeeded"]) == (200, True)
    status, doc = await _signed(
        exchange, key, "PATCH", path, "currency_pair=BTC_USDT", b'{"price":"1"}'
    )
    assert (status, doc["label"]) == (400, "ORDER_CLOSED")

    body = b'{"contract":"BTC_USDT","size":-3,"price":"50000"}'
    _, fut = await _signed(exchange, key, "POST", "/api/v4/futures/usdt/orders", body=body)
    path = f"/api/v4/futures/usdt/orders/{fut['id']}"
    status, doc = await _signed(exchange, key, "PUT", path, body=b'{"size":4}')
    assert (status, doc["label"]) == (400, "INVALID_PARAM_VALUE")  # a sell stays a sell
    status, amended = await _signed(exchange, key, "PUT", path, body=b'{"size":-5,"price":"51000"}')
    assert (status, amended["size"], amended["left"], amended["price"]) == (200, -5, -5, "51000")
    ids = json.dumps([str(fut["id"]), "42"]).encode()
    status, results = await _signed(
        exchange, key, "POST", "/api/v4/futures/usdt/batch_cancel_orders", body=ids
    )
    assert [(r["succeeded"], r["message"]) for r in results] == [
        (True, ""),
        (False, "ORDER_NOT_FOUND"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "status", "label"),
    [
        ("POST", "/api/v4/spot/orders", "", b"{}", 400, "MISSING_REQUIRED_PARAM"),
        ("POST", "/api/v4/spot/orders", "", b"[]", 400, "INVALID_PARAM_VALUE"),
        ("POST", "/api/v4/spot/orders", "", b"", 400, "INVALID_PARAM_VALUE"),
        (
            "POST",
            "/api/v4/spot/orders",
            "",
            b'{"currency_pair":"XYZ_USDT","side":"buy","amount":"1","price":"1"}',
            400,
            "INVALID_CURRENCY_PAIR",
        ),
        (
            "POST",
            "/api/v4/spot/orders",
            "",
            b'{"currency_pair":"BTC_USDT","side":"up","amount":"1","price":"1"}',
            400,
            "INVALID_PARAM_VALUE",
        ),
        (
            "GET",
            "/api/v4/spot/orders",
            "currency_pair=BTC_USDT",
            b"",
            400,
            "MISSING_REQUIRED_PARAM",
        ),
        ("GET", "/api/v4/spot/orders/1", "", b"", 400, "MISSING_REQUIRED_PARAM"),
        (
            "POST",
            "/api/v4/futures/usdt/orders",
            "",
            b'{"contract":"X","size":1}',
            400,
            "CONTRACT_NOT_FOUND",
        ),
        ("GET", "/api/v4/futures/eur/accounts", "", b"", 400, "INVALID_PARAM_VALUE"),
        (
            "POST",
            "/api/v4/futures/usdt/positions/BTC_USDT/leverage",
            "",
            b"",
            400,
            "MISSING_REQUIRED_PARAM",
        ),
        ("DELETE", "/api/v4/futures/usdt/orders/42", "", b"", 404, "ORDER_NOT_FOUND"),
    ],
)
async def test_bad_parameters_get_gate_style_errors(
    exchange: RunningExchange,
    method: str,
    path: str,
    query: str,
    body: bytes,
    status: int,
    label: str,
) -> None:
    got_status, doc = await _signed(exchange, exchange.new_key(), method, path, query, body)
    assert (got_status, doc["label"]) == (status, label)
    assert exchange.state.requests[-1].verdict == "ok"  # the signature was fine


async def test_futures_sizes_follow_the_size_decimal_header(exchange: RunningExchange) -> None:
    key = exchange.new_key()
    body = b'{"contract":"BTC_USDT","size":"2","price":"50000"}'
    _, classic = await _signed(exchange, key, "POST", "/api/v4/futures/usdt/orders", body=body)
    _, decimal = await _signed(
        exchange,
        key,
        "POST",
        "/api/v4/futures/usdt/orders",
        body=body,
        **{"X-Gate-Size-Decimal": "1"},
    )
    assert (classic["size"], decimal["size"]) == (2, "2")


async def test_money_moving_and_key_minting_requests_are_answered_and_recorded(
    exchange: RunningExchange,
) -> None:
    key = exchange.new_key()
    for path, body in (
        ("/api/v4/withdrawals", b'{"currency":"USDT","amount":"10","address":"x","chain":"TRX"}'),
        ("/api/v4/withdrawals/push", b'{"receive_uid":1,"currency":"USDT","amount":"1"}'),
        (
            "/api/v4/wallet/transfers",
            b'{"currency":"USDT","from":"spot","to":"futures","amount":"1"}',
        ),
        ("/api/v4/sub_accounts/123/keys", b'{"name":"k","perms":[{"name":"wallet"}]}'),
    ):
        status, _ = await _signed(exchange, key, "POST", path, body=body)
        assert status == 200, path
    assert [r.raw_path for r in exchange.state.verified(key[0])] == [
        "/api/v4/withdrawals",
        "/api/v4/withdrawals/push",
        "/api/v4/wallet/transfers",
        "/api/v4/sub_accounts/123/keys",
    ]


# -- real clients with real credentials, straight at the exchange ---------------------------------


def _sdk_session(exchange: RunningExchange, key: tuple[str, str]) -> None:
    client = gate_api.ApiClient(
        gate_api.Configuration(host=exchange.api_url, key=key[0], secret=key[1])
    )
    spot, futures = gate_api.SpotApi(client), gate_api.FuturesApi(client)
    account, wallet = gate_api.AccountApi(client), gate_api.WalletApi(client)

    assert spot.get_system_time().server_time > 0
    assert [p.id for p in spot.list_currency_pairs()] == ["BTC_USDT", "ETH_USDT"]
    assert spot.get_currency_pair("ETH_USDT").base == "ETH"
    assert {c.currency for c in spot.list_currencies()} >= {"BTC", "USDT"}
    assert spot.list_tickers(currency_pair="BTC_USDT")[0].last == "60000"
    assert [c.name for c in futures.list_futures_contracts("usdt")] == ["BTC_USDT", "ETH_USDT"]
    assert futures.get_futures_contract("usdt", "BTC_USDT").type == "direct"
    assert len(futures.list_futures_tickers("usdt")) == 2
    assert account.get_account_detail().user_id == 777
    assert account.get_account_main_keys().user_id == 777
    assert {a.currency for a in spot.list_spot_accounts()} >= {"USDT"}
    assert futures.list_futures_accounts("usdt").currency == "USDT"
    assert wallet.get_total_balance().total.currency == "USDT"

    order = spot.create_order(
        gate_api.Order(currency_pair="BTC_USDT", side="buy", amount="0.001", price="60000")
    )
    assert [o.id for o in spot.list_orders("BTC_USDT", "open")] == [order.id]
    assert spot.get_order(order.id, "BTC_USDT").status == "open"
    assert spot.list_all_open_orders()[0].total == 1
    assert spot.cancel_order(order.id, "BTC_USDT").status == "cancelled"
    assert [o.id for o in spot.list_orders("BTC_USDT", "finished")] == [order.id]
    batch = spot.create_batch_orders(
        [
            gate_api.Order(currency_pair="ETH_USDT", side="sell", amount="1", price="4000"),
            gate_api.Order(currency_pair="ETH_USDT", side="buy", amount="1", type="market"),
        ]
    )
    assert [b.succeeded for b in batch] == [True, True]
    assert [c.id for c in spot.cancel_orders(currency_pair="ETH_USDT")] == [batch[0].id]

    fo = futures.create_futures_order(
        "usdt", gate_api.FuturesOrder(contract="BTC_USDT", size=1, price="60000", text="t-mine")
    )
    assert [o.id for o in futures.list_futures_orders("usdt", "open")] == [fo.id]
    assert futures.get_futures_order("usdt", "t-mine").id == fo.id
    cancelled = futures.cancel_futures_order("usdt", str(fo.id))
    assert (cancelled.status, cancelled.finish_as) == ("finished", "cancelled")
    placed = futures.create_batch_futures_order(
        "usdt", [gate_api.FuturesOrder(contract="ETH_USDT", size=-2, price="3500")]
    )
    assert placed[0].succeeded and placed[0].size == "-2"
    assert [o.id for o in futures.cancel_futures_orders("usdt", contract="ETH_USDT")] == [
        placed[0].id
    ]
    position = futures.update_position_leverage("usdt", "BTC_USDT", "10", cross_leverage_limit="20")
    assert (position.leverage, position.cross_leverage_limit) == ("10", "20")
    assert futures.get_position("usdt", "BTC_USDT").leverage == "10"
    assert [p.contract for p in futures.list_positions("usdt")] == ["BTC_USDT"]

    record = gate_api.WithdrawalApi(client).withdraw(
        gate_api.LedgerRecord(currency="USDT", amount="5", address="addr", chain="TRX")
    )
    assert record.status == "REQUEST"
    transfer = gate_api.Transfer(currency="USDT", _from="spot", to="futures", amount="1")
    assert wallet.transfer(transfer).tx_id > 0
    minted = gate_api.SubAccountApi(client).create_sub_account_keys(
        123, gate_api.SubAccountKey(name="k")
    )
    assert minted.user_id == 123


async def test_the_official_sdk_with_real_credentials_works_against_the_exchange(
    exchange: RunningExchange,
) -> None:
    """The official signer (float timestamps, its own query encoding) is accepted: the exchange
    verifies the way Gate does, not the way our signer happens to sign."""
    key = exchange.new_key(uid=777)
    await asyncio.to_thread(_sdk_session, exchange, key)
    verdicts = {r.verdict for r in exchange.state.requests}
    assert verdicts == {"ok", "public"}, verdicts
    assert any("." in r.headers["Timestamp"] for r in exchange.state.verified())


@pytest.mark.ccxt
async def test_ccxt_with_real_credentials_works_against_the_exchange(
    exchange: RunningExchange,
) -> None:
    import ccxt.async_support as ccxt_async

    key = exchange.new_key()
    client = ccxt_async.gate({"apiKey": key[0], "secret": key[1]})
    for access in ("public", "private"):
        for group in client.urls["api"][access]:
            client.urls["api"][access][group] = exchange.api_url
    try:
        await client.load_markets()
        assert {"BTC/USDT", "BTC/USDT:USDT"} <= set(client.markets)
        assert (await client.fetch_balance())["total"]["USDT"] == 10000
        order = await client.create_order("BTC/USDT", "limit", "buy", 0.001, 50000)
        assert [o["id"] for o in await client.fetch_open_orders("BTC/USDT")] == [order["id"]]
        assert (await client.cancel_order(order["id"], "BTC/USDT"))["status"] == "canceled"
        await client.set_leverage(5, "BTC/USDT:USDT")
        swap = await client.create_order("BTC/USDT:USDT", "limit", "buy", 1, 50000)
        assert (await client.cancel_order(swap["id"], "BTC/USDT:USDT"))["status"] == "canceled"
    finally:
        await client.close()
    verdicts = {r.verdict for r in exchange.state.requests}
    assert verdicts == {"ok", "public"}, verdicts


# -- standalone ----------------------------------------------------------------------------------


async def test_python_m_sidecar_exchange_prints_its_url_and_verifies(tmp_path: Path) -> None:
    env = {**os.environ, "EX_SECRET": "s3cret"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar.devtools.exchange",
        "--port",
        "0",
        "--key",
        "k1",
        "--secret-env",
        "EX_SECRET",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode()
        url = line.split()[-1]
        assert url.startswith("http://127.0.0.1:")
        headers = gate_sign("k1", "s3cret", "GET", "/api/v4/spot/accounts")
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/api/v4/spot/accounts", headers=headers) as resp,
        ):
            assert resp.status == 200
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
