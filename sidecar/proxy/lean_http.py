"""HTTP/1.1 pieces of the key listener that need no connection: the one answer writer, what a
request head may carry, body decoding. Pure functions over bytes and header lists (zlib only)."""

from __future__ import annotations

import zlib
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
from sidecar.gate.head import Kinds, RequestHead, read_request_head
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
    lines: bytes = b"",
) -> bytes:
    """A whole response: status line, ``lines`` (header lines as bytes, each ending in CRLF:
    Gate's, as the forwarder kept them), ``headers`` (already without hop-by-hop ones), framing.
    The one place the sidecar writes an HTTP answer on a key listener (and the admin listener's
    connection cap).

    ``head``: the answer to HEAD carries no body bytes. An HTTP/1.0 client is told explicitly
    that the connection stays open, an HTTP/1.1 one that it closes. A 1xx answer (``101``
    Switching Protocols) carries no framing at all: its headers are the caller's.
    """
    if not headers and keep_alive and not http10 and status >= 200:
        # Most answers (Gate's relayed, kept alive by an HTTP/1.1 bot): one formatting in C.
        return b"%s%sContent-Length: %d\r\n\r\n%s" % (
            status_line(status),
            lines,
            len(body),
            b"" if head else body,
        )
    parts = [f"{name}: {value}\r\n" for name, value in headers] if headers else []
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
    return b"".join((status_line(status), lines, head_bytes, b"" if head else body))


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


def read_head(
    method: bytes, version: str, pairs: list[tuple[bytes, bytes]], kinds: Kinds
) -> RequestHead:
    """The facts of a head (:func:`~sidecar.gate.head.read_request_head`, the one pass over its
    headers), or the SidecarError that refuses it. Messages quote nothing the client sent (only
    header names the sidecar itself knows)."""
    if version not in ("1.1", "1.0"):
        raise VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are served")
    if method == b"CONNECT":
        raise MethodNotAllowed("CONNECT is not served: the sidecar is no tunnel")
    head = read_request_head(pairs, kinds)
    # Headers a request may carry at most once: a second one would leave it ambiguous which
    # counts.
    if head.hosts > 1 or head.tokens > 1 or head.codings > 1:  # the common case asks no more
        once = (
            ("host", head.hosts),
            (TOKEN_HEADER, head.tokens),
            ("content-encoding", head.codings),
        )
        raise BadRequest(f"more than one {next(name for name, n in once if n > 1)} header")
    if version == "1.1" and not head.hosts:
        raise BadRequest("an HTTP/1.1 request needs a Host header")
    if head.coding == "identity":
        head.coding = ""
    elif head.coding and head.coding not in DECODED_HERE:
        raise UnsupportedMediaType(
            "a request Content-Encoding the sidecar does not decode (gzip, x-gzip or deflate)"
        )
    head.websocket = method == b"GET" and head.upgrade == "websocket"
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
