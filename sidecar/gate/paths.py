"""The canonical-path rule: refuse anything that is not plain ``/api/v4/...``; never repair.

The path checked here is, byte for byte, the path the policy matches, the signer signs and the
forwarder sends. Repairing it (decoding escapes, resolving dot segments, folding case) would
open a gap between what the policy saw and what Gate routes, and that gap is exactly what path
tricks exploit. Refusing closes it, at no cost: Gate's paths are plain ASCII identifiers
(``/api/v4/futures/usdt/positions/BTC_USDT/leverage``) and never need an escape.

Accepted segment characters: ``A-Z a-z 0-9 _ - . ~ : , + = @``. That is RFC 3986's unreserved
set plus a few sub-delimiters that may appear in ids and change no segment boundary. Everything
else is refused, notably ``%`` (any escape), ``\\``, ``;`` (path parameters), ``*``, ``?``,
``#``, quotes, brackets, braces, ``|``, ``^``, the backtick, whitespace, control and non-ASCII
characters.
"""

from __future__ import annotations

import re

from sidecar.errors import BadRequest, NotFound
from sidecar.memo import Memo

PREFIX = "/api/v4/"
SEGMENT_CHARS = "A-Za-z0-9_~:,+=@.-"
_SEGMENT = re.compile(f"[{SEGMENT_CHARS}]+")
# The whole rule in one expression for the hot path. Segments made only of dots are refused:
# "." and ".." are dot segments, and "..." is one on servers that trim trailing dots.
_CANONICAL = re.compile(rf"/api/v4(?:/(?!\.+(?:/|$))[{SEGMENT_CHARS}]+)+")
_FORBIDDEN = {
    "%": "percent-encoding in the path (Gate paths never need it)",
    "\\": "backslash in the path",
    ";": "';' parameters in the path",
}


def split_target(raw_target: str) -> tuple[str, str]:
    """Split a raw request target (aiohttp's ``request.raw_path``) into (path, raw query)."""
    if "#" in raw_target:
        raise BadRequest("'#' (a fragment) in the request target")
    path, _, query = raw_target.partition("?")
    return path, query


# Paths found canonical, remembered: a bot asks for the same few paths again and again, and a
# lookup costs a fraction of the match.
_CANONICAL_SEEN: Memo[str, bool] = Memo()


def check_path(path: str) -> None:
    """Raise BadRequest for a non-canonical path, NotFound for a canonical one outside /api/v4/."""
    if path in _CANONICAL_SEEN:
        return
    if _CANONICAL.fullmatch(path):
        _CANONICAL_SEEN.keep(path, True, path)
        return
    _diagnose(path)


def _diagnose(path: str) -> None:
    # Slow path: say precisely what is wrong. Malformed beats out-of-scope, so a trick aimed at
    # a path outside /api/v4/ still gets a 400, never a 404 that hides the refusal's reason.
    if not path.startswith("/"):
        if "://" in path:
            # A client configured with HTTP_PROXY sends absolute-form targets.
            raise BadRequest("absolute-form target: this is not an HTTP proxy, set a base URL")
        raise BadRequest("the path must start with /")
    if not path.isascii():
        raise BadRequest("non-ASCII character in the path")
    for char in path:
        if char in _FORBIDDEN:
            raise BadRequest(_FORBIDDEN[char])
        if not char.isprintable():
            raise BadRequest("control character in the path")
        if char.isspace():
            raise BadRequest("whitespace in the path")
    if path == "/":
        raise NotFound("only /api/v4/... paths are served")
    for segment in path[1:].split("/"):
        if segment == "":
            raise BadRequest("empty path segment (// or a trailing /)")
        if segment.strip(".") == "":
            raise BadRequest("dot segment (. or ..) in the path")
        if not _SEGMENT.fullmatch(segment):
            bad = next(c for c in segment if not _SEGMENT.fullmatch(c))
            raise BadRequest(f"character {bad!r} is not allowed in the path")
    lowered = path.lower()
    if lowered.startswith(PREFIX) or lowered == "/api/v4":
        if path.startswith(PREFIX) or path == "/api/v4":
            # Only the bare prefix is left: well-formed, just not an endpoint.
            raise NotFound("only /api/v4/... paths are served")
        raise BadRequest("the /api/v4/ prefix must be lower case")
    raise NotFound("only /api/v4/... paths are served")
