"""HTTP/1.1 pieces of the lean key listener that need no connection: response bytes, body
decoding. Pure functions over bytes (zlib only)."""

from __future__ import annotations

import zlib
from http import HTTPStatus

from sidecar.errors import BadRequest, BodyTooLarge

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

    ``head``: the answer to HEAD carries no body bytes. An HTTP/1.0 client is told explicitly
    that the connection stays open, an HTTP/1.1 one that it closes.
    """
    parts = [f"{name}: {value}\r\n" for name, value in headers]
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


# Content-Encoding values the lean listener decodes itself (zlib); "br" and "zstd" requests are
# handed to aiohttp's listener, which decodes them when their libraries are installed.
DECODED_HERE = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}


def decode_body(coding: str, body: bytes, limit: int) -> bytes:
    """``body`` decoded from ``coding`` (a key of DECODED_HERE), at most ``limit`` bytes out."""
    wbits = DECODED_HERE[coding]
    try:
        out, whole = _inflate(body, wbits, limit)
    except zlib.error:
        if coding != "deflate":
            raise BadRequest("the request body cannot be read (bad Content-Encoding)") from None
        try:  # "deflate" is often sent without its zlib wrapper
            out, whole = _inflate(body, -zlib.MAX_WBITS, limit)
        except zlib.error:
            raise BadRequest("the request body cannot be read (bad Content-Encoding)") from None
    if len(out) > limit:
        raise BodyTooLarge(f"request body exceeds {limit} bytes")
    if not whole:
        raise BadRequest("the request body cannot be read (truncated Content-Encoding)")
    return out


def _inflate(body: bytes, wbits: int, limit: int) -> tuple[bytes, bool]:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)  # bounded: a small bomb never grows past limit
    return out, inflater.eof or len(out) > limit
