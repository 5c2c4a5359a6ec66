"""Reading Gate's error ``label`` out of an answer. Pure.

Gate answers errors as ``{"label": "...", "message": "..."}`` (see Gate's API v4 docs, "Error
handling"); the sidecar relays the bytes unchanged but reads the label for audit lines, metrics,
the canary and clock sync.
"""

from __future__ import annotations

import gzip
import json
import zlib


def json_answer(content_encoding: str | None, body: bytes) -> object:
    """Gate's JSON answer (maybe gzip or deflate compressed), or None if it is not JSON."""
    try:
        encoding = (content_encoding or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        doc: object = json.loads(body)
    except (ValueError, OSError, zlib.error):
        return None
    return doc


def error_label(status: int, content_encoding: str | None, body: bytes) -> str | None:
    """Gate's error ``label`` of an answer (HTTP >= 400, JSON, maybe compressed), or None."""
    if status < 400 or not body:
        return None
    doc = json_answer(content_encoding, body)
    label = doc.get("label") if isinstance(doc, dict) else None
    return label if isinstance(label, str) else None
