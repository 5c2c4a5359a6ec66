"""The pure rules behind admission: browser signs, Host forms, JSON bodies, query escapes,
header values (sidecar.gate.browser, sidecar.gate.wire)."""

from __future__ import annotations

import pytest

from sidecar.gate.browser import host_forms, host_refusal
from sidecar.gate.head import browser_refusal
from sidecar.gate.wire import body_refusal, header_value_refusal, query_refusal

FORMS = host_forms("127.0.0.1", 8081, ["bots.internal"], tls=False)


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8081", True),
        ("localhost:8081", True),
        ("LOCALHOST:8081", True),
        ("[::1]:8081", True),
        ("bots.internal:8081", True),
        ("bots.internal.:8081", False),  # a trailing dot before the port is not a listed form
        (None, True),
        ("127.0.0.1", False),
        ("127.0.0.1:80", False),
        ("rebind.evil.example:8081", False),
        ("127.0.0.1.evil.example:8081", False),
        ("localhost:8081@evil", False),
    ],
)
def test_a_host_is_served_only_in_the_listeners_own_forms(host: str | None, ok: bool) -> None:
    assert (host_refusal(host, FORMS) is None) == ok


def test_the_default_port_may_be_left_out() -> None:
    assert host_refusal("localhost", host_forms("127.0.0.1", 80, [], tls=False)) is None
    assert host_refusal("localhost", host_forms("127.0.0.1", 443, [], tls=True)) is None
    assert host_refusal("localhost", host_forms("127.0.0.1", 443, [], tls=False)) is not None


@pytest.mark.parametrize(
    ("headers", "browser"),
    [
        ([("Origin", "https://evil.example")], True),
        ([("origin", "null")], True),
        ([("Sec-Fetch-Site", "cross-site")], True),
        ([("Sec-Fetch-Site", "same-site")], True),
        ([("Sec-Fetch-Site", "same-origin")], True),
        ([("Sec-Fetch-Site", "none")], False),
        ([("User-Agent", "Mozilla/5.0"), ("Accept", "*/*")], False),
    ],
)
def test_a_browser_request_is_told_apart(headers: list[tuple[str, str]], browser: bool) -> None:
    assert (browser_refusal(headers) is not None) == browser


@pytest.mark.parametrize(
    ("body", "content_type", "ok"),
    [
        (b"", None, True),
        (b"{}", "application/json", True),
        (b"{}", "Application/JSON; charset=UTF-8", True),
        (b"{}", "application/vnd.api+json", True),
        (b"{}", None, False),
        (b"{}", "text/plain", False),
        (b"{}", "application/x-www-form-urlencoded", False),
        (b"{}", "application/jsonp", False),
        (b"{}", "text/json", False),
    ],
)
def test_only_json_bodies_are_forwarded(body: bytes, content_type: str | None, ok: bool) -> None:
    assert (body_refusal(body, content_type) is None) == ok


@pytest.mark.parametrize(
    ("query", "ok"),
    [
        ("", True),
        ("a=1&b=2", True),
        ("currencies=BTC%2CETH&text=a+b%20c", True),
        ("name=%E6%B5%8B%E8%AF%95", True),
        ("text=%ff", False),
        ("text=%c0%ae", False),
        ("text=%e6%b5", False),
        ("text=%zz", False),
        ("text=50%", False),
        ("text=%4", False),
    ],
)
def test_a_query_gate_would_decode_differently_is_refused(query: str, ok: bool) -> None:
    assert (query_refusal(query) is None) == ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("gate-api/7.2 (python)", True),
        ("a\tb", True),
        ("caf\xe9", False),
        ("caf\udce9", False),  # a raw 0xE9 byte as aiohttp decodes it
        ("\u6d4b", False),
        ("a\x00b", False),
        ("a\x7fb", False),
    ],
)
def test_a_header_value_outside_printable_ascii_is_refused(value: str, ok: bool) -> None:
    assert (header_value_refusal([("X-Any", value)]) is None) == ok
