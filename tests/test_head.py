"""One pass over the headers: how each request header is classified, what the record keeps, what
the listener's head checks refuse, and Gate's answer headers kept as bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest

from sidecar.errors import (
    BadRequest,
    ForbiddenOrigin,
    MethodNotAllowed,
    SidecarError,
    Unauthenticated,
    UnsupportedMediaType,
)
from sidecar.gate.head import (
    DEFAULT_KINDS,
    RequestHead,
    Use,
    decode_lines,
    encode_lines,
    read_request_head,
    request_kinds,
    without_exptime,
)
from sidecar.proxy.admission import Admission
from sidecar.proxy.forwarder import UpstreamConfig, UpstreamRequest
from sidecar.proxy.lean_forwarder import LeanForwarder, request_head
from sidecar.proxy.lean_http import read_head
from sidecar.proxy.peer import Peer
from sidecar.proxy.pipeline import BotRequest, ReadyBody
from tests.raw_upstream import RawUpstream, Reply

Pairs = list[tuple[bytes, bytes]]

# -- the classifier: one lookup of the lower-case name --------------------------------------

CLASSES = [
    # (the name as a bot may spell it, the check that reads it, whether Gate gets it)
    ("Host", Use.HOST, False),
    ("x-SIDECAR-token", Use.TOKEN, False),
    ("Content-Encoding", Use.CODING, False),
    ("content-length", Use.LENGTH, False),
    ("Transfer-Encoding", Use.CHUNKED, False),
    ("Expect", Use.EXPECT, False),
    ("Upgrade", Use.UPGRADE, False),
    ("Connection", Use.CONNECTION, False),
    ("Origin", Use.ORIGIN, False),
    ("Sec-Fetch-Site", Use.FETCH_SITE, False),
    ("Content-Type", Use.CONTENT_TYPE, True),
    ("X-Gate-Exptime", Use.EXPTIME, True),
    ("Accept", Use.NONE, True),
    ("Accept-Encoding", Use.NONE, True),
    ("User-Agent", Use.NONE, True),
    ("X-Gate-Channel-Id", Use.NONE, True),
    ("X-Gate-Size-Decimal", Use.NONE, True),
    ("X-Client-Request-Id", Use.NONE, True),
    ("KEY", Use.NONE, False),
    ("SIGN", Use.NONE, False),
    ("Timestamp", Use.NONE, False),
    ("Authorization", Use.NONE, False),
    ("Cookie", Use.NONE, False),
    ("X-Forwarded-For", Use.NONE, False),
    ("Keep-Alive", Use.NONE, False),
    ("TE", Use.NONE, False),
    ("Proxy-Authorization", Use.NONE, False),
    ("X-HTTP-Method-Override", Use.NONE, False),
    ("Sec-WebSocket-Key", Use.NONE, False),
    ("Referer", Use.NONE, False),
]


@pytest.mark.parametrize(("name", "use", "forwarded"), CLASSES)
def test_each_request_header_is_classified_by_one_lookup_of_its_lower_case_name(
    name: str, use: Use, forwarded: bool
) -> None:
    assert DEFAULT_KINDS.get(name.lower().encode(), (Use.NONE, False)) == (use, forwarded)
    head = read_request_head([(name.encode(), b"v")], DEFAULT_KINDS)
    assert head.forwarded == (f"{name}: v\r\n".encode() if forwarded else b"")


@pytest.mark.parametrize(
    ("extra", "forwarded"),
    [
        ("x-trace-id", True),
        ("key", False),
        ("authorization", False),
        ("host", False),
        ("connection", False),
        ("content-length", False),
        ("content-encoding", False),
        ("x-sidecar-token", False),
    ],
)
def test_a_keys_forward_headers_extra_is_forwarded_unless_it_never_crosses(
    extra: str, forwarded: bool
) -> None:
    kinds = request_kinds({extra})
    head = read_request_head([(extra.title().encode(), b"1")], kinds)
    assert bool(head.forwarded) == forwarded


# -- what one pass keeps ---------------------------------------------------------------------


@dataclass
class Case:
    why: str
    pairs: Pairs
    forwarded: bytes = b""
    facts: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "forwarded headers go to Gate as the bytes received, in the bot's order and spelling",
        [
            (b"Accept", b"*/*"),
            (b"Host", b"127.0.0.1:8080"),
            (b"X-GATE-Channel-Id", b"x  "),
            (b"user-agent", b"bot/1"),
        ],
        b"Accept: */*\r\nX-GATE-Channel-Id: x  \r\nuser-agent: bot/1\r\n",
        {"host": "127.0.0.1:8080", "hosts": 1, "bad_value": False, "browser": None},
    ),
    Case(
        "a header named in Connection is never forwarded, even when Connection comes after it",
        [(b"Accept", b"a"), (b"User-Agent", b"u"), (b"Connection", b"close, ACCEPT")],
        b"User-Agent: u\r\n",
    ),
    Case(
        "an x-gate-exptime named in Connection is neither forwarded nor read",
        [(b"Connection", b"x-gate-exptime"), (b"x-gate-exptime", b"1")],
        b"",
        {"exptime": None},
    ),
    Case(
        "Connection: keep-alive changes nothing that is forwarded",
        [(b"Connection", b"keep-alive"), (b"Accept", b"a")],
        b"Accept: a\r\n",
    ),
    Case(
        "the first Content-Type is the one the body check reads, and every one is forwarded",
        [(b"Content-Type", b"application/json"), (b"content-type", b"text/plain")],
        b"Content-Type: application/json\r\ncontent-type: text/plain\r\n",
        {"content_type": "application/json"},
    ),
    Case(
        "an Origin makes it a browser's request whatever its value",
        [(b"Origin", b"null")],
        b"",
        {"browser": "requests carrying an Origin header (a web page's) are refused"},
    ),
    Case(
        "Sec-Fetch-Site none is a bot's request",
        [(b"Sec-Fetch-Site", b" None ")],
        b"",
        {"browser": None},
    ),
    Case(
        "any other Sec-Fetch-Site is a browser's request",
        [(b"Sec-Fetch-Site", b"cross-site")],
        b"",
        {"browser": "a browser's cross-origin request (Sec-Fetch-Site) is refused"},
    ),
    Case(
        "a value outside ASCII is flagged for admission, whatever the header",
        [(b"X-Unknown", b"caf\xe9")],
        b"",
        {"bad_value": True},
    ),
    Case(
        "the client token is kept for admission and counted, never forwarded",
        [(b"X-Sidecar-Token", b"t1"), (b"x-sidecar-token", b"t2")],
        b"",
        {"token": "t2", "tokens": 2},
    ),
    Case(
        "the framing is read and never forwarded",
        [(b"Content-Length", b" 12 "), (b"Expect", b"100-Continue"), (b"Transfer-Encoding", b"x")],
        b"",
        {"length": 12, "expect_continue": True, "chunked": True},
    ),
    Case(
        "a Content-Encoding is read stripped and lower case, and never forwarded",
        [(b"Content-Encoding", b" GZIP "), (b"Accept", b"a")],
        b"Accept: a\r\n",
        {"coding": "gzip", "codings": 1},
    ),
    Case(
        "an Upgrade is read lower case, and never forwarded",
        [(b"Upgrade", b"WebSocket")],
        b"",
        {"upgrade": "websocket"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_one_pass_keeps_what_the_checks_read(case: Case) -> None:
    head = read_request_head(case.pairs, DEFAULT_KINDS)
    assert head.forwarded == case.forwarded
    for name, value in case.facts.items():
        assert getattr(head, name) == value, name


def test_a_client_token_stays_out_of_the_records_repr() -> None:
    head = read_request_head([(b"X-Sidecar-Token", b"s3cret-token")], DEFAULT_KINDS)
    assert "s3cret" not in repr(head) and head.token == "s3cret-token"


def test_the_decoded_headers_are_every_header_but_a_content_encoding() -> None:
    head = read_request_head(
        [(b"Host", b"h"), (b"Content-Encoding", b"gzip"), (b"X-A", b"\xe9")], DEFAULT_KINDS
    )
    assert head.headers == [("Host", "h"), ("X-A", "\xe9")]


@pytest.mark.parametrize(
    "value", ["a\x00b", "a\rb", "a\nb", "a\x7fb", "a\x01b", "caf\u00e9", "\u20ac"]
)
def test_a_text_header_outside_printable_ascii_is_flagged_like_a_received_one(value: str) -> None:
    assert RequestHead.of([("X-A", value)]).bad_value


@pytest.mark.parametrize(
    "value", [b"a\x00b", b"a\rb", b"a\nb", b"a\x7fb", b"a\x01b", b"x\r\n folded"]
)
def test_llhttp_refuses_what_the_pass_leaves_unchecked_in_a_value(value: bytes) -> None:
    """The listener's pass checks a value with isascii() only: control characters, DEL and line
    breaks (and obsolete line folding) never reach it, llhttp refuses them."""
    parser = httptools.HttpRequestParser(object())
    with pytest.raises(httptools.HttpParserError):
        parser.feed_data(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: " + value + b"\r\n\r\n")


def test_a_reloaded_key_reads_the_same_headers_with_its_new_table() -> None:
    before = Admission()
    after = Admission(forward_headers=frozenset({"x-trace-id"}))
    head = read_request_head([(b"X-Trace-Id", b"1"), (b"X-A", b"\xe9")], before.kinds)
    request = BotRequest("GET", "/", head, ReadyBody(b""))
    assert request.head(before.kinds) is head and head.forwarded == b""
    again = request.head(after.kinds)
    assert again.forwarded == b"X-Trace-Id: 1\r\n" and again.bad_value


def test_header_lines_decode_back_to_the_pairs_they_encode() -> None:
    pairs = [("X-A", "1"), ("x-b", ""), ("X-C", "a: b"), ("X-D", "\xe9")]
    assert decode_lines(encode_lines(pairs)) == pairs
    lines = encode_lines([("Accept", "a"), ("X-Gate-Exptime", "1"), ("x-gate-exptime", "2")])
    assert without_exptime(lines) == b"Accept: a\r\n"


# -- the listener's refusals of a head ------------------------------------------------------

HOST = (b"Host", b"127.0.0.1")
REFUSED = [
    ("a second Host is refused", [HOST, HOST], BadRequest, "more than one host"),
    (
        "a second client token is refused",
        [HOST, (b"X-Sidecar-Token", b"a"), (b"X-Sidecar-Token", b"a")],
        BadRequest,
        "more than one x-sidecar-token",
    ),
    (
        "a second Content-Encoding is refused",
        [HOST, (b"Content-Encoding", b"gzip"), (b"Content-Encoding", b"gzip")],
        BadRequest,
        "more than one content-encoding",
    ),
    ("an HTTP/1.1 request without Host is refused", [], BadRequest, "needs a Host"),
    (
        "an encoding the sidecar does not decode is refused",
        [HOST, (b"Content-Encoding", b"br")],
        UnsupportedMediaType,
        "does not decode",
    ),
]


@pytest.mark.parametrize(
    ("pairs", "error", "match"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_the_listener_refuses_a_head_it_cannot_read_for_certain(
    pairs: Pairs, error: type[SidecarError], match: str
) -> None:
    with pytest.raises(error, match=match):
        read_head(b"POST", "1.1", pairs, DEFAULT_KINDS)


def test_connect_is_refused_before_its_headers_are_read() -> None:
    with pytest.raises(MethodNotAllowed):
        read_head(b"CONNECT", "1.1", [HOST], DEFAULT_KINDS)


@pytest.mark.parametrize(
    ("method", "version", "pairs", "facts"),
    [
        (b"GET", "1.0", [], {"hosts": 0}),
        (b"POST", "1.1", [HOST, (b"Content-Encoding", b"Identity")], {"coding": "", "codings": 1}),
        (b"GET", "1.1", [HOST, (b"Upgrade", b"websocket")], {"websocket": True}),
        (b"POST", "1.1", [HOST, (b"Upgrade", b"websocket")], {"websocket": False}),
    ],
    ids=[
        "an HTTP/1.0 request needs no Host",
        "an identity Content-Encoding is no encoding",
        "a GET asking for websocket is an upgrade",
        "a POST asking for websocket is not",
    ],
)
def test_the_listener_serves_a_head_it_can_read(
    method: bytes, version: str, pairs: Pairs, facts: dict[str, Any]
) -> None:
    head = read_head(method, version, pairs, DEFAULT_KINDS)
    for name, value in facts.items():
        assert getattr(head, name) == value, name


# -- admission reads the same record ----------------------------------------------------------

PEER = Peer(local_host="127.0.0.1", local_port=8080)


@pytest.mark.parametrize(
    ("pairs", "error"),
    [
        ([(b"Host", b"127.0.0.1:8080"), (b"X-A", b"\xe9")], BadRequest),
        ([(b"Host", b"127.0.0.1:8080"), (b"Origin", b"https://evil")], ForbiddenOrigin),
        ([(b"Host", b"127.0.0.1:8080")], None),
    ],
    ids=[
        "admission refuses a value outside ASCII",
        "admission refuses a browser's request",
        "admission lets a bot's request through",
    ],
)
def test_admission_refuses_from_the_one_pass(pairs: Pairs, error: type[Exception] | None) -> None:
    head = read_request_head(pairs, Admission().kinds)
    if error is None:
        Admission().check(head, PEER)
    else:
        with pytest.raises(error):
            Admission().check(head, PEER)


def test_admission_asks_for_the_token_the_pass_kept(tmp_path: Any) -> None:
    from sidecar.proxy.admission import TokenFile

    path = tmp_path / "token"
    path.write_text("s3cret\n")
    admission = Admission(token=TokenFile(path))
    host = (b"Host", b"127.0.0.1:8080")
    admission.check(read_request_head([host, (b"X-Sidecar-Token", b"s3cret")], DEFAULT_KINDS), PEER)
    with pytest.raises(Unauthenticated):
        admission.check(read_request_head([host, (b"X-Sidecar-Token", b"no")], DEFAULT_KINDS), PEER)


# -- the upstream head, and Gate's answer kept as bytes ---------------------------------------


def test_the_upstream_head_is_request_line_host_the_bots_lines_then_the_signed_headers() -> None:
    request = UpstreamRequest(
        "GET", "/api/v4/x", "", [("KEY", "k")], b"", b"Accept: */*\r\nX-A: \xe9\r\n"
    )
    assert request_head(request, "gate") == (
        b"GET /api/v4/x HTTP/1.1\r\nHost: gate\r\nAccept: */*\r\nX-A: \xe9\r\nKEY: k\r\n\r\n"
    )
    assert request.all_headers() == [("Accept", "*/*"), ("X-A", "\xe9"), ("KEY", "k")]


@pytest.mark.parametrize("lines", [b"X-A: a\rb\r\n", b"X-A: a\nb\r\n", b"X-A: a"])
def test_a_stray_line_break_in_the_bots_lines_is_never_sent(lines: bytes) -> None:
    from sidecar.errors import UpstreamUnavailable

    with pytest.raises(UpstreamUnavailable, match="line break"):
        request_head(UpstreamRequest("GET", "/api/v4/x", "", [], b"", lines), "gate")


async def _answer(headers: list[tuple[str, str]]) -> Any:
    upstream = RawUpstream(script=lambda seen, before: Reply(headers=headers))
    await upstream.start()
    forwarder = LeanForwarder(UpstreamConfig(base_url=upstream.url, timeout_s=5))
    try:
        return await forwarder.send(UpstreamRequest("GET", "/api/v4/x", "", [], b""))
    finally:
        await forwarder.close()
        await upstream.stop()


async def test_gates_answer_headers_are_relayed_as_received_without_hop_by_hop_ones() -> None:
    answer = await _answer(
        [
            ("Date", "Mon, 07 Dec 2026 18:00:00 GMT"),
            ("Set-Cookie", "a=1"),
            ("Keep-Alive", "timeout=5"),
            ("X-Gate-RateLimit-Requests-Remain", "9"),
            ("x-note", "caf\xe9"),
        ]
    )
    assert answer.relayed() == (
        b"Date: Mon, 07 Dec 2026 18:00:00 GMT\r\nX-Gate-RateLimit-Requests-Remain: 9\r\n"
        b"x-note: caf\xe9\r\n"
    )
    assert answer.header("date") == "Mon, 07 Dec 2026 18:00:00 GMT"
    assert answer.header("X-Note") == "caf\xe9"  # not one the forwarder reads: decoded on demand
    assert ("x-gate-ratelimit-requests-remain", "9") in answer.read()  # for the rate budget
    assert [name for name, _ in answer.headers] == [
        "Date",
        "Set-Cookie",
        "Keep-Alive",
        "X-Gate-RateLimit-Requests-Remain",
        "x-note",
        "Content-Length",
    ]


async def test_a_header_gate_names_in_connection_is_not_relayed() -> None:
    answer = await _answer([("Connection", "X-Private"), ("X-Private", "1"), ("X-Up", "2")])
    assert answer.relayed() == b"X-Up: 2\r\n"


async def test_connection_keep_alive_alone_drops_nothing_gate_sent_but_itself() -> None:
    answer = await _answer([("Connection", "keep-alive"), ("X-Up", "2")])
    assert answer.relayed() == b"X-Up: 2\r\n"


async def test_a_header_named_after_close_in_connection_is_not_relayed() -> None:
    answer = await _answer([("Connection", "close, X-Private"), ("X-Private", "1"), ("X-Up", "2")])
    assert answer.relayed() == b"X-Up: 2\r\n"
