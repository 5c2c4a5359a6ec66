"""The one way the sidecar builds a TLS client context (to Gate and to Vault)."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_tls_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """System trust plus an optional extra CA bundle; verification is never switched off."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx
