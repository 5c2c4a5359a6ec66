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

# The bot's own credentials (junk or real) must never reach Gate next to ours, and nothing that
# identifies the bot's network position should either.
DROP_FROM_BOT = frozenset(
    {"key", "sign", "timestamp", "authorization", "cookie", "forwarded", "x-real-ip"}
)

DROP_FROM_GATE = frozenset({"set-cookie"})

# Request body encodings the listener (aiohttp's HTTP parser) decodes before the handler reads the
# body. The sidecar signs and forwards the *decoded* bytes, so their Content-Encoding label must
# go too: Gate would otherwise try to gunzip plain JSON. Any other coding reaches the handler
# raw and keeps its label.
DECODED_BY_LISTENER = frozenset({"gzip", "deflate", "br", "zstd"})


def _connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    listed: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            listed.update(token.strip().lower() for token in value.split(","))
    return listed


def upstream_headers(incoming: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The bot's headers minus credentials, hop-by-hop and forwarding headers, and the
    Content-Encoding of a request body the listener already decoded."""
    items = list(incoming)
    listed = _connection_listed(items)
    out = []
    for name, value in items:
        lower = name.lower()
        if (
            lower in HOP_BY_HOP
            or lower in DROP_FROM_BOT
            or lower in listed
            or lower.startswith("x-forwarded-")
            or (lower == "content-encoding" and value.strip().lower() in DECODED_BY_LISTENER)
        ):
            continue
        out.append((name, value))
    return out


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
