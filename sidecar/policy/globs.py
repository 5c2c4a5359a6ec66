"""The path-glob language of policy rules, and the HTTP methods Gate uses. Pure.

Globs match the canonical path (see :mod:`sidecar.gate.paths`): ``*`` is exactly one segment,
``**`` zero or more segments, and a ``*`` inside a segment (``sub_account_*``) any run of
characters within that segment.
"""

from __future__ import annotations

import re

# Every method the Gate API uses, in display order. Anything else is refused by the engine.
METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Gate's own permission model: GET reads, every other method writes. Locked endpoints name
# "every method but GET" rather than a list of write verbs, so an odd verb cannot slip past.
NON_GET = frozenset(METHODS) - {"GET"}

# The characters a canonical path segment may hold (sidecar.gate.paths), plus the wildcard.
_GLOB_SEGMENT = re.compile(r"[A-Za-z0-9_~:,+=@.*-]+")


def validate_glob(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable path glob, or None. For config validation."""
    if not pattern.startswith("/api/v4/"):
        return "must start with /api/v4/"
    for segment in pattern.split("/")[1:]:
        if segment == "":
            return "empty path segment (// or a trailing /)"
        if segment == "**":
            continue
        if "**" in segment:
            return "** must be a whole segment"
        if not _GLOB_SEGMENT.fullmatch(segment):
            return f"segment {segment!r} holds a character no canonical path contains"
        if segment.strip(".") == "":
            return "dot segments (. or ..) never match a canonical path"
    return None


def glob_regex(pattern: str, *, lenient: bool = False) -> re.Pattern[str]:
    """Compile a glob to an anchored regex (use ``fullmatch``).

    ``lenient`` is for rules that *refuse* (deny rules, locked endpoints): they then also catch
    letter-case variants and trailing dots (``/api/v4/Withdrawals.``), spellings that a lenient
    server could route to the same endpoint. Refusing more is safe; allowing more is not, so allow
    rules stay exact.
    """
    out = []
    for segment in pattern.split("/")[1:]:
        if segment == "**":
            out.append("(?:/[^/]+)*")
        elif segment == "*":
            out.append("/[^/]+")
        else:
            body = "[^/]*".join(re.escape(piece) for piece in segment.split("*"))
            out.append("/" + body + (r"\.*" if lenient and not segment.endswith("*") else ""))
    flags = re.ASCII | (re.IGNORECASE if lenient else 0)
    return re.compile("".join(out), flags)


def methods_text(methods: frozenset[str]) -> str:
    if "*" in methods:
        return "*"
    if methods == NON_GET:
        return "non-GET"
    return ",".join(m for m in METHODS if m in methods) or ",".join(sorted(methods))


def _segments_overlap(a: str, b: str) -> bool:
    """Whether two single-segment patterns can match the same segment (approximate: yes when
    both hold a wildcard, which errs towards reporting an endpoint as opened)."""
    if "*" not in a:
        return glob_regex("/" + b, lenient=True).fullmatch("/" + a) is not None
    if "*" not in b:
        return glob_regex("/" + a, lenient=True).fullmatch("/" + b) is not None
    return True


def _segments_lists_overlap(a: list[str], b: list[str]) -> bool:
    if not a or not b:
        rest = a or b
        return all(s == "**" for s in rest)
    if a[0] == "**":
        return _segments_lists_overlap(a[1:], b) or _segments_lists_overlap(a, b[1:])
    if b[0] == "**":
        return _segments_lists_overlap(a, b[1:]) or _segments_lists_overlap(a[1:], b)
    return _segments_overlap(a[0], b[0]) and _segments_lists_overlap(a[1:], b[1:])


def globs_overlap(a: str, b: str) -> bool:
    """Whether some path could match both globs: for check-config only, never the hot path."""
    return _segments_lists_overlap(a.split("/")[1:], b.split("/")[1:])
