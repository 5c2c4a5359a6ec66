"""HTTP/1.1 pieces of the key listener that need no connection: the one answer writer, what a
request head may carry, body decoding. Pure functions over bytes and header lists (zlib only)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from http import HTTPStatus

from sidecar.errors import (
    BadRequest,
    BodyTooLarge,
    MethodNotAllowed,
    SidecarError,
    UnsupportedMediaType,
    VersionNotSupported,
    error_body,
)
from sidecar.proxy.admission import TOKEN_HEADER

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n".encode()
        _STATUS_LINES[status] = line
    return line


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def response_bytes(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    keep_alive: bool,
    http10: bool = False,
    head: bool = False,
) -> bytes:
    """A whole response: status line, ``headers`` (already without hop-by-hop ones), framing.
    The one place the sidecar writes an HTTP answer on a key listener (and the admin listener's
    connection cap).

    ``head``: the answer to HEAD carries no body bytes. An HTTP/1.0 client is told explicitly
    that the connection stays open, an HTTP/1.1 one that it closes. A 1xx answer (``101``
    Switching Protocols) carries no framing at all: its headers are the caller's.
    """
    parts = [f"{name}: {value}\r\n" for name, value in headers]
    if status >= 200:
        parts.append(f"Content-Length: {len(body)}\r\n")
        if not keep_alive:
            parts.append("Connection: close\r\n")
        elif http10:
            parts.append("Connection: keep-alive\r\n")
    parts.append("\r\n")
    text = "".join(parts)
    try:
        head_bytes = text.encode("latin-1")
    except UnicodeEncodeError:
        head_bytes = text.encode("utf-8", "surrogateescape")
    return status_line(status) + head_bytes + (b"" if head else body)


def error_bytes(exc: SidecarError) -> bytes:
    """The JSON answer for a refusal made outside any request (``Connection: close``)."""
    return response_bytes(
        exc.status, [("Content-Type", "application/json")], error_body(exc), keep_alive=False
    )


# Content-Encoding values the listener decodes (zlib). Any other is refused (415): a body the
# sidecar cannot read is never forwarded. "identity" means no encoding.
DECODED_HERE = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
# Headers a request may carry at most once: a second one would leave it ambiguous which counts.
_ONCE = ("host", TOKEN_HEADER, "content-encoding")


@dataclass(slots=True)
class Head:
    """What the listener reads from a request head before its body."""

    coding: str = ""  # a key of DECODED_HERE, or "" (none)
    labelled: bool = False  # a Content-Encoding header came (dropped: the body goes on decoded)
    length: int = -1  # Content-Length, -1 when absent
    expect_continue: bool = False
    chunked: bool = False  # a Transfer-Encoding came (llhttp checks it is chunked, last)
    websocket: bool = False  # a WebSocket upgrade (GET, Upgrade: websocket)


def read_head(method: bytes, version: str, headers: list[tuple[str, str]]) -> Head:
    """The facts of a head, or the SidecarError that refuses it. Messages quote nothing the
    client sent (only header names the sidecar itself knows)."""
    if version not in ("1.1", "1.0"):
        raise VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served")
    if method == b"CONNECT":
        raise MethodNotAllowed("CONNECT is not served: the sidecar is no tunnel")
    head = Head()
    seen = dict.fromkeys(_ONCE, 0)
    upgrade = ""
    for name, value in headers:
        lower = name.lower()
        if lower in seen:
            seen[lower] += 1
            if lower == "content-encoding":
                head.coding = value.strip().lower()
        elif lower == "content-length" and value.strip().isdigit():
            head.length = int(value)
        elif lower == "expect" and value.strip().lower() == "100-continue":
            head.expect_continue = True
        elif lower == "upgrade":
            upgrade = value.strip().lower()
        elif lower == "transfer-encoding":
            head.chunked = True
    for lower, count in seen.items():
        if count > 1:
            raise BadRequest(f"more than one {lower} header")
    head.labelled = seen["content-encoding"] > 0
    if version == "1.1" and not seen["host"]:
        raise BadRequest("an HTTP/1.1 request needs a Host header")
    if head.coding == "identity":
        head.coding = ""
    elif head.coding and head.coding not in DECODED_HERE:
        raise UnsupportedMediaType(
            "a request Content-Encoding the sidecar does not decode (gzip, x-gzip or deflate)"
        )
    head.websocket = method == b"GET" and upgrade == "websocket"
    return head


def decode_body(coding: str, body: bytes, limit: int) -> bytes:
    """``body`` decoded from ``coding`` (a key of DECODED_HERE), at most ``limit`` bytes out.
    Bytes after the end of the compressed stream are refused: they would be dropped unread."""
    wbits = DECODED_HERE[coding]
    try:
        out, rest = _inflate(body, wbits, limit)
    except zlib.error:
        if coding != "deflate":
            raise BadRequest("the request body cannot be read (bad Content-Encoding)") from None
        try:  # "deflate" is often sent without its zlib wrapper
            out, rest = _inflate(body, -zlib.MAX_WBITS, limit)
        except zlib.error:
            raise BadRequest("the request body cannot be read (bad Content-Encoding)") from None
    if len(out) > limit:
        raise BodyTooLarge(f"request body exceeds {limit} bytes")
    if rest is None:
        raise BadRequest("the request body cannot be read (truncated Content-Encoding)")
    if rest:
        raise BadRequest("the request body has bytes after the end of its Content-Encoding")
    return out


def _inflate(body: bytes, wbits: int, limit: int) -> tuple[bytes, bytes | None]:
    """What ``body`` inflates to (bounded: a small bomb never grows past ``limit``) and the bytes
    after the compressed stream (None: the stream did not end)."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        return out, b""
    return out, inflater.unused_data if inflater.eof else None
