"""Signature verification the way Gate does it, written independently of the sidecar's signer.

Deliberately no import from ``sidecar``: if the sidecar's signer and this verifier shared code, a
bug in that code would sign and verify wrongly in agreement and every test would still pass.
Rules: Gate API v4 docs, "Authentication".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import unquote_plus


class AuthError(Exception):
    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label
        self.message = message


def expected_sign(
    secret: str, method: str, path: str, raw_query: str, body: bytes, timestamp: str
) -> str:
    payload_hash = hashlib.sha512(body).hexdigest()
    text = f"{method.upper()}\n{path}\n{unquote_plus(raw_query)}\n{payload_hash}\n{timestamp}"
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha512).hexdigest()


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
    key, sign, ts = headers.get("KEY"), headers.get("SIGN"), headers.get("Timestamp")
    if not key or not sign or not ts:
        raise AuthError("MISSING_REQUIRED_HEADER", "KEY, SIGN and Timestamp are required")
    try:
        ts_value = float(ts)
    except ValueError:
        raise AuthError("INVALID_PARAM_VALUE", "Timestamp is not a number") from None
    if abs(now - ts_value) > window_s:
        raise AuthError(
            "REQUEST_EXPIRED", f"gap between request Timestamp and server time exceeds {window_s:g}"
        )
    secret = secrets.get(key)
    if secret is None:
        raise AuthError("INVALID_KEY", "Invalid key provided")
    if not hmac.compare_digest(expected_sign(secret, method, path, raw_query, body, ts), sign):
        raise AuthError("INVALID_SIGNATURE", "Signature mismatch")
    return key
