"""Pieces of the per-request path made cheaper, checked against what they must still refuse."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import random
from urllib.parse import unquote_plus

import pytest

from sidecar.errors import UpstreamUnavailable
from sidecar.gate.signing import HmacSha512, hmac_sha512_hex, string_to_sign
from sidecar.policy.engine import DECISION_CACHE_SIZE
from sidecar.proxy.forwarder import UpstreamConfig, UpstreamRequest
from sidecar.proxy.lean_forwarder import LeanForwarder, request_head
from tests.raw_upstream import RawUpstream, Reply
from tests.test_policy import ORDER, decide, policy_for, rule


def _request(headers: list[tuple[str, str]], body: bytes = b"") -> UpstreamRequest:
    return UpstreamRequest("POST", "/api/v4/spot/orders", "a=1", headers, body)


def test_the_upstream_head_is_the_headers_in_order_with_host_and_length() -> None:
    head = request_head(_request([("KEY", "k"), ("X-Gate-Channel-Id", "é")], b"{}"), "gate:443")
    assert head == (
        b"POST /api/v4/spot/orders?a=1 HTTP/1.1\r\nHost: gate:443\r\nKEY: k\r\n"
        b"X-Gate-Channel-Id: \xe9\r\nContent-Length: 2\r\n\r\n"
    )


@pytest.mark.parametrize(
    "header",
    [
        ("X-A", "v\r\nX-Injected: 1"),
        ("X-A", "v\nX-Injected: 1"),
        ("X-A", "v\r"),
        ("X-A\r\nX-B", "v"),
        ("X-A\n", "v"),
    ],
)
def test_a_line_break_in_any_header_is_never_sent(header: tuple[str, str]) -> None:
    with pytest.raises(UpstreamUnavailable, match="line break"):
        request_head(_request([("KEY", "k"), header]), "gate")


def test_a_decision_is_remembered_only_when_neither_body_nor_query_took_part() -> None:
    """Decisions are cached per (method, path) when no condition was read: the same request
    again gets the very same decision; a conditioned one is decided afresh every time."""
    policy = policy_for("spot-only")
    first = decide(policy, "GET /api/v4/spot/accounts", b"")
    assert decide(policy, "GET /api/v4/spot/accounts", b"") is first
    locked = decide(policy, "POST /api/v4/withdrawals", b"{}")
    assert decide(policy, "POST /api/v4/withdrawals", b"{}") is locked and not locked.allowed
    for _ in range(2):  # the same method and path, bodies the condition judges differently
        assert decide(policy, "POST /api/v4/spot/orders", ORDER).allowed
        margin = decide(policy, "POST /api/v4/spot/orders", {**ORDER, "account": "margin"})
        assert not margin.allowed and "margin" in margin.reason
    widened = policy_for({"presets": ["spot-only"], "allow": [rule("POST", "/api/v4/spot/orders")]})
    for body in ({**ORDER, "account": "margin"}, ORDER, {**ORDER, "account": "margin"}):
        # The preset's conditioned rule is read first: which rule decides depends on the body.
        expected = "allow[0]" if body.get("account") == "margin" else "preset spot-only"
        assert decide(widened, "POST /api/v4/spot/orders", body).rule.startswith(expected)


def test_the_decision_cache_is_bounded() -> None:
    policy = policy_for("full-trading")
    for i in range(DECISION_CACHE_SIZE + 10):  # ids in paths: every one a new entry
        assert decide(policy, f"GET /api/v4/spot/orders/{i}", b"").allowed
    assert len(vars(policy)["_cache"]) <= DECISION_CACHE_SIZE


@pytest.mark.parametrize("key_len", [0, 1, 32, 64, 127, 128, 129, 300])
def test_the_prepared_hmac_state_signs_as_hmac_does(key_len: int) -> None:
    """HmacSha512 precomputes the key's padded states (RFC 2104): any key length (a key longer
    than SHA-512's block is hashed first), any message, the same prepared key used many times."""
    rng = random.Random(key_len)
    secret = bytes(rng.randrange(256) for _ in range(key_len))
    mac = HmacSha512(secret)
    for size in (0, 1, 111, 112, 128, 1000):
        message = bytes(rng.randrange(256) for _ in range(size))
        assert mac.hexdigest(message) == hmac_sha512_hex(secret, message)
    assert repr(mac) == "HmacSha512(<redacted>)"
    with pytest.raises(TypeError):
        pickle.dumps(mac)


@pytest.mark.parametrize(
    "query", ["", "settle=usdt", "currency_pair=BTC%5FUSDT", "a=b+c", "x=%2C&y=1"]
)
def test_the_string_to_sign_decodes_a_query_only_when_it_needs_decoding(query: str) -> None:
    expected = "\n".join(
        ("GET", "/p", unquote_plus(query), hashlib.sha512(b"").hexdigest(), "1")
    ).encode()
    assert string_to_sign("get", "/p", query, b"", "1") == expected


async def test_the_forwarder_holds_max_connections_without_a_semaphore() -> None:
    """The slot count: never more connections than upstream.max_connections, the other
    requests wait their turn and all are answered; a request cancelled while it waits takes no
    slot with it."""
    upstream = RawUpstream(script=lambda seen, before: Reply(delay_s=0.05))
    await upstream.start()
    forwarder = LeanForwarder(UpstreamConfig(base_url=upstream.url, max_connections=2, timeout_s=5))

    async def one() -> int:
        response = await forwarder.send(UpstreamRequest("GET", "/api/v4/x", "", [], b""))
        return response.status

    try:
        first = [asyncio.create_task(one()) for _ in range(2)]
        await asyncio.sleep(0)  # hold: one loop turn, the two tasks take both slots
        waiting = asyncio.create_task(one())  # finds both slots taken: queued
        rest = [asyncio.create_task(one()) for _ in range(4)]
        await asyncio.sleep(0)  # hold: one loop turn, the others queue
        waiting.cancel()
        assert await asyncio.gather(*first, *rest) == [200] * 6
        assert upstream.connections == 2  # the cap, and kept-alive connections reused
        assert len(upstream.seen) == 6  # the cancelled one never went out
        assert await one() == 200  # every slot came back
    finally:
        await forwarder.close()
        await upstream.stop()
