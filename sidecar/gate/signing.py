"""Gate.io API v4 request signing: pure functions, no I/O.

The rules (see Gate's API v4 docs, "Authentication"): the string to sign is
``METHOD\\npath\\nquery\\nhex(sha512(body))\\ntimestamp``, where ``query`` is the query string as it
appears in the URL but *without* URL encoding (the official Python SDK signs
``unquote_plus(urlencode(params))``; the Go SDK ``url.QueryUnescape``), and
``SIGN = hex(HMAC-SHA512(secret, string_to_sign))``.

A :class:`Signer` turns the string to sign into ``SIGN``. :class:`HmacSigner` holds the secret in
this process; a Vault transit signer computes the same HMAC inside Vault. Both are async so the two
are interchangeable behind one protocol.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol
from urllib.parse import unquote_plus

EMPTY_BODY_SHA512 = hashlib.sha512(b"").hexdigest()  # most requests (every GET) have no body


def string_to_sign(method: str, path: str, raw_query: str, body: bytes, timestamp: str) -> bytes:
    """The exact bytes Gate expects to be HMAC'd for this request."""
    body_hash = hashlib.sha512(body).hexdigest() if body else EMPTY_BODY_SHA512
    # unquote_plus, not unquote: the SDKs form-encode spaces as '+', and Gate compares against the
    # decoded form; signing the encoded form is the classic INVALID_SIGNATURE on `BTC%2CETH`.
    # A query with neither '%' nor '+' decodes to itself: skip the call.
    query = unquote_plus(raw_query) if "%" in raw_query or "+" in raw_query else raw_query
    return "\n".join((method.upper(), path, query, body_hash, timestamp)).encode()


def hmac_sha512_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha512).hexdigest()


_BLOCK = 128  # SHA-512's block size (RFC 2104's B)
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class HmacSha512:
    """HMAC-SHA512 (RFC 2104) with the key's inner and outer states computed once.

    ``hmac.new(secret, message, sha512)`` hashes the two padded keys again on every call (two
    SHA-512 blocks of 128 bytes) and builds a Python ``HMAC`` object; copying the two prepared
    ``hashlib`` states instead halves the cost of a signature (about 3.7 -> 1.8 µs). Same
    result, checked against Gate's official vectors and ``hmac`` in tests/test_signing.py.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha512(secret).digest() if len(secret) > _BLOCK else secret
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha512(key.translate(_IPAD))
        self._outer = hashlib.sha512(key.translate(_OPAD))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return "HmacSha512(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("HmacSha512 holds key material and cannot be pickled")


def sign_headers(
    method: str, path: str, raw_query: str, body: bytes, timestamp: int, key: str, secret: str
) -> dict[str, str]:
    """The three auth headers for one request, computed with a locally held secret."""
    ts = str(timestamp)
    message = string_to_sign(method, path, raw_query, body, ts)
    return {"KEY": key, "Timestamp": ts, "SIGN": hmac_sha512_hex(secret.encode(), message)}


class Signer(Protocol):
    """Computes Gate's ``SIGN`` (lowercase hex HMAC-SHA512) for a string to sign."""

    async def sign(self, message: bytes) -> str: ...


async def signed_headers(
    signer: Signer,
    api_key: str,
    method: str,
    path: str,
    raw_query: str,
    body: bytes,
    timestamp: int,
) -> dict[str, str]:
    """The auth headers for one request, with any :class:`Signer` (local HMAC or Vault transit)."""
    ts = str(timestamp)
    sign = await signer.sign(string_to_sign(method, path, raw_query, body, ts))
    return {"KEY": api_key, "Timestamp": ts, "SIGN": sign}


class HmacSigner:
    """Signs with a secret held in this process. The secret is never shown by repr or str."""

    __slots__ = ("_mac",)

    def __init__(self, secret: str) -> None:
        self._mac = HmacSha512(secret.encode())

    async def sign(self, message: bytes) -> str:
        return self._mac.hexdigest(message)

    def __repr__(self) -> str:
        return "HmacSigner(secret=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("HmacSigner holds a secret and cannot be pickled")
