"""Who is on the other end of a bot's connection, read once per connection from its transport.

Every listener fills :attr:`BotRequest.peer` through :func:`peer_from_transport`, so the checks
that depend on it (the ``Host`` forms, ``peer_uids``/``peer_gids``, a client certificate) work
the same whatever server parsed the request.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;} (Linux)


@dataclass(frozen=True, slots=True)
class Peer:
    """The connection a request came on. ``local_host``/``local_port`` are the address the
    client connected to (None on a unix socket); ``uid``/``gid``/``pid`` come from SO_PEERCRED
    on a unix socket; ``client_cert`` is the common name (CN) of the verified TLS client
    certificate (mTLS), for the audit line: a name, never the certificate."""

    unix: bool = False
    local_host: str | None = None
    local_port: int | None = None
    remote: str | None = None
    tls: bool = False
    client_cert: str | None = None
    pid: int | None = None
    uid: int | None = None
    gid: int | None = None


UNKNOWN_PEER = Peer()


def peer_credentials(sock: Any) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the process that connected to a unix socket (a socket or asyncio's
    ``TransportSocket``), or None where the platform has no SO_PEERCRED."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, opt, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


CN_MAX_CHARS = 64  # X.509's upper bound for a common name (ub-common-name)


def common_name(cert: dict[str, Any] | None) -> str | None:
    """The subject CN of a peer certificate as ``SSLObject.getpeercert()`` gives it, made safe
    for a log line: at most :data:`CN_MAX_CHARS`, characters that do not print replaced."""
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName" and isinstance(value, str):
                cn = value[:CN_MAX_CHARS]
                return "".join(c if c.isprintable() else "?" for c in cn)
    return None


def peer_from_transport(transport: Any) -> Peer:
    """The :class:`Peer` of an asyncio transport (TCP, unix or TLS over either)."""
    if transport is None:
        return UNKNOWN_PEER
    sock = transport.get_extra_info("socket")
    ssl_object = transport.get_extra_info("ssl_object")
    tls = ssl_object is not None
    cn = common_name(ssl_object.getpeercert()) if tls else None
    family = getattr(sock, "family", None)
    if family == getattr(socket, "AF_UNIX", None):
        creds = peer_credentials(sock) if sock is not None else None
        pid, uid, gid = creds if creds is not None else (None, None, None)
        return Peer(unix=True, tls=tls, client_cert=cn, pid=pid, uid=uid, gid=gid)
    local = transport.get_extra_info("sockname")
    remote = transport.get_extra_info("peername")
    local_host, local_port = (local[0], local[1]) if isinstance(local, tuple) else (None, None)
    return Peer(
        unix=False,
        local_host=local_host,
        local_port=local_port,
        remote=f"{remote[0]}:{remote[1]}" if isinstance(remote, tuple) else None,
        tls=tls,
        client_cert=cn,
    )
