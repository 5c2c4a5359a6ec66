"""What tells a browser's request from a bot's, and which ``Host`` a listener answers to. Pure.

A web page open on the bot's machine can make the browser send requests to a key's listener: a
"simple" cross-site POST needs no preflight, and a DNS-rebinding page (``Host:
rebind.evil.example:PORT``) can even read the answers. Bots never send ``Origin`` and never send
``Sec-Fetch-Site`` other than ``none``; a browser always sends ``Host`` as the name the page used.
So: any ``Origin``, or a ``Sec-Fetch-Site`` other than ``none``, is a browser; any ``Host`` that is
not one of the listener's own address forms (or a name the key lists) is misdirected.
"""

from __future__ import annotations

from collections.abc import Iterable

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Why a request is a browser's (sidecar.gate.head reads Origin and Sec-Fetch-Site in its pass).
FROM_A_PAGE = "requests carrying an Origin header (a web page's) are refused"
CROSS_SITE = "a browser's cross-origin request (Sec-Fetch-Site) is refused"


def host_forms(
    local_host: str | None, port: int, allowed_hosts: Iterable[str], *, tls: bool
) -> frozenset[str]:
    """Every ``Host`` value a TCP listener bound to ``local_host:port`` accepts, lower case.

    The loopback names, the address the connection arrived on, and the key's ``allowed_hosts``;
    each with ``:port``, and bare when the port is the scheme's default.
    """
    names = {*LOOPBACK_NAMES, *(h.lower() for h in allowed_hosts)}
    if local_host:
        names.add(f"[{local_host}]" if ":" in local_host else local_host)
    default = 443 if tls else 80
    forms = {f"{name}:{port}" for name in names}
    if port == default:
        forms |= names
    return frozenset(forms)


def host_refusal(host: str | None, forms: frozenset[str]) -> str | None:
    """Why ``host`` (the request's ``Host``, None when absent) is not one of ``forms``."""
    if host is None:
        return None  # HTTP/1.0 clients send none; a browser always sends one
    # Usually sent exactly as one of the forms: one lookup, when the normalising below would
    # change nothing (forms are lower case, without spaces; a trailing dot is dropped).
    if host in forms and not host.endswith("."):
        return None
    if host.strip().lower().removesuffix(".") in forms:
        return None
    # The value is not quoted: nothing a client sent is echoed back (or logged).
    return "the Host header is not this listener's address (list it in allowed_hosts)"
