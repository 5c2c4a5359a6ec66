"""Who may use a key's listener: the checks made on every request before anything else.

Listener-independent (any listener fills :class:`~sidecar.proxy.pipeline.BotRequest` with its
headers and :class:`~sidecar.proxy.peer.Peer`): header values that cannot be forwarded exactly, a
browser's request (``Origin``, ``Sec-Fetch-Site``), a ``Host`` that is not the listener's own
(DNS rebinding), a unix-socket peer outside ``peer_uids``/``peer_gids``, and the client token.
TLS and mTLS happen earlier, in the handshake (:func:`sidecar.tls.server_tls_context`).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.errors import (
    BadRequest,
    ForbiddenOrigin,
    ForbiddenPeer,
    Misdirected,
    Unauthenticated,
)
from sidecar.gate.browser import host_forms, host_refusal
from sidecar.gate.head import Kinds, RequestHead, request_kinds
from sidecar.gate.wire import NOT_PRINTABLE
from sidecar.proxy.peer import Peer
from sidecar.settings import PositiveSeconds, Strict

log = logging.getLogger("sidecar.proxy")

TOKEN_HEADER = "x-sidecar-token"  # noqa: S105  (a header name, not a secret)


class TlsConfig(Strict):
    """``client_auth.tls``: serve the key's listener over TLS; with ``client_ca_file``, require
    a client certificate signed by that CA (mTLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class ClientAuthConfig(Strict):
    """``keys[].client_auth``: how bots prove they may use the key."""

    token_file: Path | None = None
    tls: TlsConfig | None = None
    peer_uids: list[int] | None = None
    peer_gids: list[int] | None = None
    # How often open connections (WebSocket sessions, kept-alive REST) are checked against the
    # token file: sidecar.proxy.client_tokens closes those whose token left it.
    recheck_s: PositiveSeconds = 2.0

    @property
    def authenticates(self) -> bool:
        """A token or a client certificate is required: safe beyond loopback."""
        return self.token_file is not None or (
            self.tls is not None and self.tls.client_ca_file is not None
        )


class TokenFile:
    """The client token, read from a file and re-read when the file changes (rotation without a
    restart). The token is never logged and never part of a message or a repr."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._token = b""
        self.load()  # at start: a missing file fails the key's start, naming the path

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    def load(self) -> None:
        st = os.stat(self.path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        self._token = self.path.read_bytes().strip()
        self._stamp = stamp

    def matches(self, offered: str | None) -> bool:
        try:
            self.load()
        except OSError as exc:
            # Keep the last token: a file being replaced must not lock every bot out.
            log.warning("client token file unreadable", extra={"error": exc.strerror})
        if not self._token or offered is None:
            return False
        try:
            given = offered.encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(given, self._token)


@dataclass(frozen=True)
class Admission:
    """One key's request admission rules (swapped whole on a config reload)."""

    allowed_hosts: tuple[str, ...] = ()
    forward_headers: frozenset[str] = frozenset()  # lower case
    token: TokenFile | None = None
    peer_uids: frozenset[int] | None = None
    peer_gids: frozenset[int] | None = None
    recheck_s: float = 2.0  # client_auth.recheck_s
    _forms: dict[tuple[str | None, int, bool], frozenset[str]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # How each request header is read and whether Gate gets it (the key's forward_headers
    # included): built once here, used by the listener's one pass over every head.
    kinds: Kinds = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", request_kinds(self.forward_headers))

    @classmethod
    def build(
        cls,
        auth: ClientAuthConfig,
        allowed_hosts: Iterable[str] = (),
        forward_headers: Iterable[str] = (),
    ) -> Admission:
        return cls(
            allowed_hosts=tuple(allowed_hosts),
            forward_headers=frozenset(h.lower() for h in forward_headers),
            token=TokenFile(auth.token_file) if auth.token_file is not None else None,
            peer_uids=frozenset(auth.peer_uids) if auth.peer_uids is not None else None,
            peer_gids=frozenset(auth.peer_gids) if auth.peer_gids is not None else None,
            recheck_s=auth.recheck_s,
        )

    def host_forms(self, peer: Peer) -> frozenset[str]:
        ident = (peer.local_host, peer.local_port or 0, peer.tls)
        forms = self._forms.get(ident)
        if forms is None:
            forms = host_forms(ident[0], ident[1], self.allowed_hosts, tls=peer.tls)
            self._forms[ident] = forms
        return forms

    def check(self, head: RequestHead, peer: Peer) -> None:
        """Raise the SidecarError that refuses this request, if any (``head``: the one pass over
        its headers, :func:`~sidecar.gate.head.read_request_head`)."""
        if head.bad_value:
            raise BadRequest(NOT_PRINTABLE)
        if head.browser is not None:
            raise ForbiddenOrigin(head.browser)
        host, offered = head.host, head.token
        # A unix socket is out of a browser's reach, and its clients send any name as Host.
        if not peer.unix:
            why = host_refusal(host, self.host_forms(peer))
            if why is not None:
                raise Misdirected(why)
        self._check_peer(peer)
        if self.token is not None and not self.token.matches(offered):
            raise Unauthenticated(
                "this listener needs a valid X-Sidecar-Token header"
                if offered is None
                else "the X-Sidecar-Token header does not match"
            )

    def _check_peer(self, peer: Peer) -> None:
        if self.peer_uids is None and self.peer_gids is None:
            return
        uid_ok = self.peer_uids is not None and peer.uid in self.peer_uids
        gid_ok = self.peer_gids is not None and peer.gid in self.peer_gids
        if not (uid_ok or gid_ok):
            raise ForbiddenPeer(
                f"local user uid={peer.uid} gid={peer.gid} is not in peer_uids/peer_gids"
            )


OPEN = Admission()
