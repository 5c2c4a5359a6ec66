"""The one way the sidecar builds a TLS context: as a client (to Gate and to Vault) and as a
server (a key's listener with ``client_auth.tls``)."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_tls_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """System trust plus an optional extra CA bundle; verification is never switched off."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


def server_tls_context(
    cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path | None = None
) -> ssl.SSLContext:
    """TLS 1.2+ for a listener; with ``client_ca_file``, a client certificate signed by that CA
    is required (mTLS): a client without one fails the handshake and never sends a request."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    if client_ca_file is not None:
        ctx.load_verify_locations(cafile=str(client_ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
