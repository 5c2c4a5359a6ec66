"""Which headers cross the sidecar, in each direction."""

from __future__ import annotations

import pytest

from sidecar.gate.head import upstream_headers
from sidecar.gate.headers import forwardable_extra, relay_headers

DROPPED_FROM_BOT = [
    "KEY",
    "key",
    "Key",
    "SIGN",
    "sign",
    "Timestamp",
    "TIMESTAMP",
    "timestamp",
    "Authorization",
    "Cookie",
    "X-Forwarded-For",
    "x-forwarded-host",
    "X-Forwarded-Proto",
    "Forwarded",
    "X-Real-IP",
    "Connection",
    "Keep-Alive",
    "Transfer-Encoding",
    "Upgrade",
    "TE",
    "Host",
    "Content-Length",
    "Proxy-Authorization",
    "Expect",
    # Not on the allow-list (issue 13, gap 4): overrides, client-IP claims, browser headers.
    "X-HTTP-Method-Override",
    "X-Original-URL",
    "X-Rewrite-URL",
    "True-Client-IP",
    "CF-Connecting-IP",
    "Client-IP",
    "Via",
    "Origin",
    "Referer",
    "Sec-Fetch-Site",
    "X-Sidecar-Token",
]
PASSED_FROM_BOT = [
    "X-Gate-Channel-Id",
    "X-Gate-Size-Decimal",
    "x-gate-exptime",
    "Content-Type",
    "Accept",
    "Accept-Encoding",
    "User-Agent",
    "X-Client-Request-Id",
]


@pytest.mark.parametrize("name", DROPPED_FROM_BOT)
def test_a_bot_header_that_must_not_reach_gate_is_dropped(name: str) -> None:
    assert upstream_headers([(name, "v")]) == []


@pytest.mark.parametrize("name", PASSED_FROM_BOT)
def test_a_harmless_bot_header_passes_through_unchanged(name: str) -> None:
    assert upstream_headers([(name, "v 1")]) == [(name, "v 1")]


def test_headers_named_in_connection_are_dropped_too() -> None:
    assert upstream_headers([("Connection", "close, X-Private"), ("X-Private", "1")]) == []


@pytest.mark.parametrize(
    "name",
    [
        "X-Gate-RateLimit-Requests-Remain",
        "X-Gate-RateLimit-Limit",
        "X-Gate-RateLimit-Reset-Timestamp",
        "X-Gate-Trace-ID",
        "X-In-Time",
        "X-Out-Time",
        "X-Pagination-Limit",
        "X-Pagination-Total",
        "Content-Type",
        "Content-Encoding",
        "Date",
    ],
)
def test_a_useful_gate_header_is_relayed(name: str) -> None:
    assert relay_headers([(name, "7")]) == [(name, "7")]


@pytest.mark.parametrize(
    "name", ["Set-Cookie", "Set-Cookie2", "Transfer-Encoding", "Connection", "Content-Length"]
)
def test_a_hop_by_hop_or_cookie_header_from_gate_is_not_relayed(name: str) -> None:
    assert relay_headers([(name, "x")]) == []


def test_a_keys_forward_headers_extra_passes() -> None:
    assert upstream_headers([("X-Trace-Id", "1")], frozenset({"x-trace-id"})) == [
        ("X-Trace-Id", "1")
    ]


@pytest.mark.parametrize("name", ["KEY", "Authorization", "X-Forwarded-For", "Host", "Connection"])
def test_a_credential_or_hop_by_hop_header_cannot_be_a_forward_headers_extra(name: str) -> None:
    assert forwardable_extra(name) is not None
    assert upstream_headers([(name, "v")], frozenset({name.lower()})) == []
