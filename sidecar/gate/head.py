"""One pass over a request's headers: what each one is for, and the head Gate gets, as bytes. Pure.

The key listener hands every header as llhttp read it (``name``, ``value`` bytes) to
:func:`read_request_head`, which lowers each name once and classifies it with one dict lookup in
a :data:`Kinds` table (:func:`request_kinds`, built once per key from the allow-list of
:mod:`sidecar.gate.headers` and the key's ``forward_headers``): forwarded to Gate (appended to
the upstream head as the bytes received, ``Name: value\\r\\n``), read by a check (``Host``, the
client token, the body's framing and encoding, ``Connection``, ``Upgrade``, ``Expect``,
``Origin``, ``Sec-Fetch-Site``, ``Content-Type``, ``x-gate-exptime``) or dropped unread. What the
checks need is kept in a :class:`RequestHead`; nothing else is decoded, unless a rarely used
consumer (the WebSocket handshake) asks for :attr:`RequestHead.headers`.

Fail closed: only allow-listed names are forwarded, never a credential, hop-by-hop or
``Content-Encoding`` header (not even when a key's ``forward_headers`` names it), never one named
in ``Connection`` (which may come after it: then the forwarded lines are rebuilt). Values outside
printable ASCII are flagged for admission to refuse: llhttp itself refuses control characters
and DEL in values (tests/test_head.py checks it does), so a byte string from it needs only
``isascii()``; a text list (:meth:`RequestHead.of`) gets the full check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from sidecar.gate.browser import CROSS_SITE, FROM_A_PAGE
from sidecar.gate.headers import (
    GATE_REQUEST_HEADERS,
    HOP_BY_HOP,
    NEVER_FORWARDED,
    REQUEST_ENCODING,
    relay_headers,
)
from sidecar.gate.wire import header_value_refusal


class Use(Enum):
    """Which check reads a request header (NONE: none does)."""

    NONE = "none"
    HOST = "host"
    TOKEN = "x-sidecar-token"  # noqa: S105  (a header name, not a secret)
    CODING = "content-encoding"
    LENGTH = "content-length"
    CHUNKED = "transfer-encoding"
    EXPECT = "expect"
    UPGRADE = "upgrade"
    CONNECTION = "connection"
    ORIGIN = "origin"
    FETCH_SITE = "sec-fetch-site"
    CONTENT_TYPE = "content-type"
    EXPTIME = "x-gate-exptime"


#: A request header's lower-case name -> (the check that reads it, whether Gate gets it).
Kinds = Mapping[bytes, tuple[Use, bool]]
_UNREAD = (Use.NONE, False)
_NONE, _HOST, _CONTENT_TYPE, _CONNECTION = Use.NONE, Use.HOST, Use.CONTENT_TYPE, Use.CONNECTION


def forwarded_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The lower-case names Gate may get: the allow-list plus a key's ``extra``, minus what
    never crosses (credentials, hop-by-hop, a request ``Content-Encoding``)."""
    return frozenset(
        name
        for name in (*GATE_REQUEST_HEADERS, *extra)
        if name not in NEVER_FORWARDED and name not in HOP_BY_HOP and name != REQUEST_ENCODING
    )


def request_kinds(extra: Iterable[str] = ()) -> dict[bytes, tuple[Use, bool]]:
    """The classification table for a key whose ``forward_headers`` are ``extra`` (lower case)."""
    kinds: dict[bytes, tuple[Use, bool]] = {}
    for name in forwarded_names(extra):
        if name.isascii():  # llhttp passes only token characters in a name
            kinds[name.encode("ascii")] = (Use.NONE, True)
    for use in Use:
        if use is not Use.NONE:
            read = use.value.encode("ascii")
            kinds[read] = (use, kinds.get(read, _UNREAD)[1])
    return kinds


DEFAULT_KINDS = request_kinds()


def _latin1(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # outside latin-1: not ASCII either, so refused by admission
        return text.encode("utf-8", "surrogateescape")


def encode_lines(headers: Iterable[tuple[str, str]]) -> bytes:
    """``Name: value\\r\\n`` for each header, as latin-1 bytes (what llhttp gave, given back)."""
    return b"".join(_latin1(f"{name}: {value}\r\n") for name, value in headers)


def decode_lines(lines: bytes) -> list[tuple[str, str]]:
    """The headers of ``Name: value\\r\\n`` lines (a name never holds ``": "``)."""
    out = []
    for line in lines.split(b"\r\n")[:-1]:
        name, _, value = line.partition(b": ")
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    return out


@dataclass(slots=True)
class RequestHead:
    """What the sidecar reads from a request's headers, from one pass over them."""

    # Every header as received, in order; like ``token``, out of the repr (a client token).
    pairs: list[tuple[bytes, bytes]] = field(repr=False)
    kinds: Kinds = field(repr=False)  # the table it was read with (a reload may bring another)
    forwarded: bytes = b""  # the lines Gate gets, in order: "Name: value\r\n" each
    host: str | None = None  # the last Host (more than one is refused by the listener)
    hosts: int = 0
    token: str | None = field(default=None, repr=False)  # the client token (X-Sidecar-Token)
    tokens: int = 0
    coding: str = ""  # Content-Encoding, stripped and lower case ("" when none)
    codings: int = 0
    length: int = -1  # Content-Length, -1 when absent
    chunked: bool = False  # a Transfer-Encoding came (llhttp checks it is chunked, last)
    expect_continue: bool = False
    upgrade: str = ""  # the last Upgrade, stripped and lower case
    content_type: str | None = None  # the first Content-Type
    exptime: str | None = None  # the first x-gate-exptime Gate would get
    browser: str | None = None  # why it looks like a browser's request (None: it does not)
    bad_value: bool = False  # a value outside printable ASCII (refused by admission)
    websocket: bool = False  # a WebSocket upgrade (set by the listener, which knows the method)
    _headers: list[tuple[str, str]] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, headers: Iterable[tuple[str, str]], kinds: Kinds = DEFAULT_KINDS) -> RequestHead:
        """The head of a request given as text pairs (tests, callers other than the listener)."""
        items = list(headers)
        head = read_request_head([(_latin1(n), _latin1(v)) for n, v in items], kinds)
        head.bad_value = header_value_refusal(items) is not None  # CR, LF, NUL...: not llhttp's
        return head

    def again(self, kinds: Kinds) -> RequestHead:
        """The same headers read with another table (the key's config was reloaded)."""
        head = read_request_head(self.pairs, kinds)
        head.bad_value, head.websocket = self.bad_value, self.websocket
        return head

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header decoded (latin-1), but a Content-Encoding (the body goes on decoded)."""
        if self._headers is None:
            self._headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in self.pairs
                if name.lower() != b"content-encoding"
            ]
        return self._headers


def read_request_head(pairs: list[tuple[bytes, bytes]], kinds: Kinds) -> RequestHead:
    """The one pass: classify each header, build the forwarded lines, keep what checks read."""
    head = RequestHead(pairs, kinds)
    out: list[bytes] = []
    put = out.append
    listed: set[bytes] | None = None
    for name, value in pairs:
        use, forward = kinds.get(name.lower(), _UNREAD)
        if not value.isascii():
            head.bad_value = True
        if forward:
            put(name)
            put(b": ")
            put(value)
            put(b"\r\n")
        if use is _NONE:
            continue
        if use is _HOST:
            head.host = value.decode("latin-1")
            head.hosts += 1
        elif use is _CONTENT_TYPE:
            if head.content_type is None:
                head.content_type = value.decode("latin-1")
        elif use is _CONNECTION:
            listed = listed or set()
            listed.update(token.strip().lower() for token in value.split(b","))
        else:
            _read(head, use, value)
    if listed and any(kinds.get(token, _UNREAD)[1] for token in listed):
        # A header named in Connection is for this hop only, whatever comes after it.
        return _without(head, listed)
    head.forwarded = b"".join(out)
    return head


def _read(head: RequestHead, use: Use, value: bytes) -> None:
    """The rarer headers a check reads."""
    if use is Use.TOKEN:
        head.token = value.decode("latin-1")
        head.tokens += 1
    elif use is Use.CODING:
        head.coding = value.strip().lower().decode("latin-1")
        head.codings += 1
    elif use is Use.LENGTH:
        if value.strip().isdigit():
            head.length = int(value)
    elif use is Use.CHUNKED:
        head.chunked = True
    elif use is Use.EXPECT:
        if value.strip().lower() == b"100-continue":
            head.expect_continue = True
    elif use is Use.UPGRADE:
        head.upgrade = value.strip().lower().decode("latin-1")
    elif use is Use.ORIGIN:
        if head.browser is None:
            head.browser = FROM_A_PAGE
    elif use is Use.FETCH_SITE:
        if head.browser is None and value.strip().lower() != b"none":
            head.browser = CROSS_SITE
    elif use is Use.EXPTIME and head.exptime is None:
        head.exptime = value.decode("latin-1")


def _without(head: RequestHead, listed: set[bytes]) -> RequestHead:
    """``head`` forwarding none of the ``listed`` headers (nor reading an x-gate-exptime)."""
    out = bytearray()
    for name, value in head.pairs:
        lower = name.lower()
        if head.kinds.get(lower, _UNREAD)[1] and lower not in listed:
            out += name + b": " + value + b"\r\n"
    head.forwarded = bytes(out)
    if b"x-gate-exptime" in listed:
        head.exptime = None
    return head


def upstream_headers(
    headers: Iterable[tuple[str, str]], extra: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The headers of a text list Gate would get (``extra``: a key's ``forward_headers``)."""
    return decode_lines(RequestHead.of(headers, request_kinds(extra)).forwarded)


def browser_refusal(headers: Iterable[tuple[str, str]]) -> str | None:
    """Why a request with these headers looks like a browser's (None when it does not)."""
    return RequestHead.of(headers).browser


def without_exptime(lines: bytes) -> bytes:
    """Forwarded ``lines`` without any x-gate-exptime line (the sidecar sets its own)."""
    return b"".join(
        line + b"\r\n"
        for line in lines.split(b"\r\n")[:-1]
        if line.partition(b":")[0].lower() != b"x-gate-exptime"
    )


# -- the answer side --------------------------------------------------------------------------

#: Gate's answer headers that never reach the bot (hop-by-hop ones and cookies), lower case.
DROPPED_ANSWER = frozenset(
    name.encode("ascii") for name in HOP_BY_HOP | {"set-cookie", "set-cookie2"}
)
#: Gate's answer headers the sidecar itself reads (clock drift, error labels, rate budgets,
#: the answer's size), kept decoded by the forwarder.
READ_FROM_ANSWER = frozenset(
    {
        b"date",
        b"content-encoding",
        b"content-length",
        b"x-gate-ratelimit-requests-remain",
        b"x-gate-ratelimit-reset-timestamp",
    }
)


#: Gate's answer headers the forwarder does more with than relay: lower-case name -> (whether
#: the bot gets it, whether the sidecar reads it). Any other header is relayed, unread.
ANSWER_KINDS = {
    name: (name not in DROPPED_ANSWER, name in READ_FROM_ANSWER)
    for name in DROPPED_ANSWER | READ_FROM_ANSWER
}


def relayed_lines(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Gate's header lines the bot gets, when a ``Connection`` header named more than
    hop-by-hop ones (rare: then :func:`~sidecar.gate.headers.relay_headers` decides)."""
    decoded = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs]
    return encode_lines(relay_headers(decoded))
