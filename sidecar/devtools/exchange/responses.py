"""Gate-like response headers and compression: what every answer carries."""

from __future__ import annotations

import gzip
import json
import secrets
import time
from email.utils import formatdate

from multidict import CIMultiDict

GZIP_MIN_BYTES = 1024  # Gate compresses larger answers when the client accepts gzip


def accepts_gzip(accept_encoding: str) -> bool:
    """True unless gzip is absent or refused with q=0 (RFC 9110 12.5.3)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def gate_headers(
    exchange_now: float, received: float, remaining: int, limit: int, reset_at: float
) -> CIMultiDict[str]:
    return CIMultiDict(
        {
            "Content-Type": "application/json",
            "X-Gate-RateLimit-Requests-Remain": str(max(remaining, 0)),
            "X-Gate-RateLimit-Limit": str(limit),
            "X-Gate-RateLimit-Reset-Timestamp": str(int(reset_at * 1000)),
            "X-Gate-Trace-ID": secrets.token_hex(16),
            "X-In-Time": str(int(received * 1e6)),  # microseconds, as Gate sends them
            "X-Out-Time": str(int(time.time() * 1e6)),
            # The exchange's clock, not the local one: clock-skew detection reads it.
            "Date": formatdate(exchange_now, usegmt=True),
        }
    )


def encode_body(doc: object, accept_encoding: str, headers: CIMultiDict[str]) -> bytes:
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > GZIP_MIN_BYTES and accepts_gzip(accept_encoding):
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
        return gzip.compress(body)
    return body
