"""The canonical-path rule: refuse anything that is not plain ``/api/v4/...``; never repair.

The path that is checked here is, byte for byte, the path that is signed and forwarded. Repairing
(decoding, resolving dot segments) would open a gap between what the policy saw and what Gate
routes, which is exactly what path tricks exploit; refusing closes it.
"""

from __future__ import annotations

import re

from sidecar.errors import BadRequest, NotFound

PREFIX = "/api/v4/"
# Unreserved characters plus the few sub-delimiters Gate identifiers use (client order ids
# `t-...`, contracts `BTC_USDT`, `:` and `,` in some ids). No `%`: Gate paths never need
# percent-encoding, so any escape is a trick. No `;`, `\`, `*`, quotes or brackets.
_SEGMENT = re.compile(r"[A-Za-z0-9._~:,+=@-]+")


def split_target(raw_target: str) -> tuple[str, str]:
    """Split a request target (``path?query``) into the raw path and the raw query."""
    if "#" in raw_target:
        raise BadRequest("fragments are not allowed in a request target")
    path, _, query = raw_target.partition("?")
    return path, query


def check_path(path: str) -> None:
    """Raise BadRequest for a non-canonical path, NotFound for one outside /api/v4/."""
    if not path.startswith("/"):
        raise BadRequest("the path must start with /")
    if not path.isascii() or not path.isprintable():
        raise BadRequest("the path must be printable ASCII")
    if not path.startswith(PREFIX):
        if path.lower().startswith(("/api/v4/", "/api/v4")) and path != "/api/v4":
            raise BadRequest("the path prefix must be exactly /api/v4/ (lower case)")
        raise NotFound(f"{path} is not under /api/v4/")
    for segment in path[len(PREFIX) :].split("/"):
        if segment == "":
            raise BadRequest("empty path segment (// or a trailing /)")
        if segment in (".", ".."):
            raise BadRequest("dot segments (. or ..) are not allowed")
        if "%" in segment:
            raise BadRequest("percent-encoded characters are not allowed in the path")
        if not _SEGMENT.fullmatch(segment):
            raise BadRequest("the path contains a character outside A-Z a-z 0-9 . _ ~ : , + = @ -")
