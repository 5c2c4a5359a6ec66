"""Signature verification the way Gate does it, written independently of the sidecar's signer.

Deliberately no import from ``sidecar``: if the sidecar's signer and this verifier shared code, a
bug in that code would sign and verify wrongly in agreement and every test would still pass.
Rules: Gate API v4 docs, "Authentication"; gate-api (Python) and gateapi-go signers.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus

AUTH_HEADERS = ("KEY", "SIGN", "Timestamp")


class AuthError(Exception):
    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label
        self.message = message


def string_to_sign(method: str, path: str, raw_query: str, body: bytes, timestamp: str) -> str:
    """METHOD, path, decoded query, hex SHA-512 of the body bytes, Timestamp; joined by newlines.

    The query is decoded with unquote_plus, as the Python SDK signs ``unquote_plus(urlencode(..))``
    and the Go SDK ``url.QueryUnescape(rawQuery)``: ``BTC%2CETH`` is signed as ``BTC,ETH``.
    """
    payload_hash = hashlib.sha512(body).hexdigest()
    return f"{method.upper()}\n{path}\n{unquote_plus(raw_query)}\n{payload_hash}\n{timestamp}"


def expected_sign(
    secret: str, method: str, path: str, raw_query: str, body: bytes, timestamp: str
) -> str:
    text = string_to_sign(method, path, raw_query, body, timestamp)
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha512).hexdigest()


def header_values(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> list[str]:
    """Every value of ``name`` in any letter case, duplicates kept (multidict items() has them)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    folded = name.casefold()
    return [value for key, value in items if key.casefold() == folded]


def has_auth_headers(headers: Mapping[str, str]) -> bool:
    return any(header_values(headers, name) for name in AUTH_HEADERS)


def _single(headers: Mapping[str, str], name: str) -> str:
    values = header_values(headers, name)
    if not values or not values[0]:
        raise AuthError("MISSING_REQUIRED_HEADER", "KEY, SIGN and Timestamp are required")
    if len(values) > 1:
        # Stricter than Gate on purpose: two copies mean a client's own auth header leaked past
        # the sidecar next to its replacement, which is exactly what tests must catch.
        raise AuthError("INVALID_SIGNATURE", f"{name} header sent {len(values)} times")
    return values[0]


def parse_timestamp(value: str) -> float:
    """Unix seconds; floats are accepted because the Python SDK sends ``str(time.time())``."""
    try:
        ts = float(value)
    except ValueError:
        ts = math.nan
    if not math.isfinite(ts):  # float() also accepts "nan" and "inf", which would pass any window
        raise AuthError("INVALID_PARAM_VALUE", "Timestamp must be Unix seconds")
    return ts


def verify(
    headers: Mapping[str, str],
    secrets: Mapping[str, str],
    method: str,
    path: str,
    raw_query: str,
    body: bytes,
    now: float,
    window_s: float,
) -> str:
    """Return the verified API key, or raise AuthError with Gate's label."""
    key, sign, ts = (_single(headers, name) for name in AUTH_HEADERS)
    if abs(now - parse_timestamp(ts)) > window_s:
        raise AuthError(
            "REQUEST_EXPIRED", f"gap between request Timestamp and server time exceeds {window_s:g}"
        )
    secret = secrets.get(key)
    if secret is None:
        raise AuthError("INVALID_KEY", "Invalid key provided")
    # The string signed is the Timestamp exactly as sent ("1700000000.123456" stays as is).
    expected = expected_sign(secret, method, path, raw_query, body, ts)
    if not hmac.compare_digest(expected.encode(), sign.encode("utf-8", "replace")):
        raise AuthError("INVALID_SIGNATURE", "Signature mismatch")
    return key
