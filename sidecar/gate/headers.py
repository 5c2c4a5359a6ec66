"""Which headers cross the sidecar, in each direction. Pure."""

from __future__ import annotations

from collections.abc import Iterable

# RFC 9110 §7.6.1 hop-by-hop headers, plus those aiohttp recomputes for the new connection.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)

# The headers a bot's request may carry to Gate: an allow-list, not a deny-list, so a header
# nobody thought of (method or URL overrides such as X-HTTP-Method-Override / X-Original-URL,
# client-IP claims such as True-Client-IP / CF-Connecting-IP, a browser's Origin, Referer and
# Sec-Fetch-*) never reaches Gate. What Gate reads (Gate API v4 docs, "Headers worth knowing"; the
# official SDKs and ccxt): the body's Content-Type (a request Content-Encoding never crosses: the
# listener decodes the body or refuses it), what the answer may be (Accept, Accept-Encoding), who
# the client is (User-Agent), and
# Gate's own request options: broker attribution X-Gate-Channel-Id, order expiry x-gate-exptime,
# X-Gate-Size-Decimal (the Python SDK, futures) and X-Client-Request-Id. A key adds more with
# `forward_headers`; the credential headers below can never be added that way.
GATE_REQUEST_HEADERS = frozenset(
    {
        "content-type",
        "accept",
        "accept-encoding",
        "user-agent",
        "x-gate-channel-id",
        "x-gate-exptime",
        "x-gate-size-decimal",
        "x-client-request-id",
    }
)

# Never forwarded, even when a key's `forward_headers` names them: Gate's credential headers
# (the sidecar adds its own), other credentials, and the sidecar's own client token.
NEVER_FORWARDED = frozenset(
    {
        "key",
        "sign",
        "timestamp",
        "authorization",
        "cookie",
        "x-sidecar-token",
        "forwarded",
        "x-real-ip",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    }
)

DROP_FROM_GATE = frozenset({"set-cookie", "set-cookie2"})

# A request's Content-Encoding never crosses: the listener decodes the body (gzip, x-gzip,
# deflate) or refuses it (415), and the sidecar signs and forwards the decoded bytes, so the label
# would make Gate try to gunzip plain JSON. Not even a key's forward_headers may name it.
REQUEST_ENCODING = "content-encoding"


def header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` in any letter case, or None."""
    lower = name.lower()
    return next((v for k, v in headers if k.lower() == lower), None)


def _connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    listed: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            listed.update(token.strip().lower() for token in value.split(","))
    return listed


def forwardable_extra(name: str) -> str | None:
    """Why ``name`` cannot be a key's ``forward_headers`` extra (None when it can)."""
    lower = name.lower()
    if lower in NEVER_FORWARDED or lower.startswith("x-forwarded-"):
        return f"{name!r} is a credential or forwarding header and is never forwarded"
    if lower in HOP_BY_HOP:
        return f"{name!r} is a hop-by-hop header; the sidecar sets it for its own connection"
    if lower == REQUEST_ENCODING:
        return f"{name!r}: request bodies reach Gate decoded, without their encoding"
    return None


def relay_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Gate's response headers as the bot should see them (rate limits, trace id, pagination,
    content type and encoding), minus hop-by-hop ones and cookies."""
    items = list(upstream)
    listed = _connection_listed(items)
    return [
        (name, value)
        for name, value in items
        if (lower := name.lower()) not in HOP_BY_HOP
        and lower not in DROP_FROM_GATE
        and lower not in listed
    ]
