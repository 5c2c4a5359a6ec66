"""Request shapes Gate would read differently from the sidecar, refused up front. Pure.

- A body that is not JSON: Gate's v4 API takes JSON bodies, and the policy's field checks read
  JSON only; a ``text/plain`` or form body is also what a browser can send without a preflight.
- A query with an escape that does not decode to UTF-8 (``%ff``): the sidecar signs
  ``unquote_plus(query)``, which turns it into U+FFFD, while Gate decodes the bytes its own way.
- A header value outside printable ASCII: HTTP clients encode such values differently (Latin-1,
  UTF-8, dropped), so what is checked is not certainly what Gate receives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_VISIBLE = re.compile(r"[\t\x20-\x7e]*")
NOT_PRINTABLE = "a header value is outside printable ASCII"


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` (any parameters, any letter case) or a ``+json`` type."""
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def body_refusal(body: bytes, content_type: str | None) -> str | None:
    """Why a request body cannot go to Gate as it is (None for an empty or a JSON one)."""
    if not body or is_json_media_type(content_type):
        return None
    # The client's value is not quoted: nothing a client sent is echoed back (or logged).
    shown = "no Content-Type" if content_type is None else "another Content-Type"
    return f"a request body must be JSON (Content-Type: application/json), got {shown}"


def query_refusal(raw_query: str) -> str | None:
    """Why the raw query cannot be signed as Gate would read it (None when it can)."""
    if not raw_query:  # most requests: nothing to read
        return None
    if _ESCAPE.search(raw_query):
        return "the query has a '%' that is not a %XX escape"
    for part in raw_query.split("&"):
        try:
            unquote_to_bytes(part.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError:
            return "the query has an escape that is not UTF-8 (e.g. %ff)"
    return None


def header_value_refusal(headers: Iterable[tuple[str, str]]) -> str | None:
    """Why a header value cannot be forwarded exactly (None when every one can)."""
    for _, value in headers:
        # isascii() and isprintable(): the common case, without a regex; a tab needs the regex.
        if not (value.isascii() and value.isprintable()) and not _VISIBLE.fullmatch(value):
            return NOT_PRINTABLE  # neither name nor value echoed
    return None
