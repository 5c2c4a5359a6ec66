"""Vault transit mode: the Gate secret lives only inside Vault (or OpenBao).

The operator imports the secret once as a non-exportable transit HMAC key
(:mod:`sidecar.vault.transit.importer`, ``gate-sidecar import-key``); from then on every request's
``SIGN`` is computed by transit's ``hmac`` endpoint (:mod:`sidecar.vault.transit.signer`), so no
sidecar memory, core dump or log ever holds the secret. :mod:`sidecar.vault.transit.wrap` is the
BYOK wrapping and :mod:`sidecar.vault.transit.wire` the pure request/response format.
"""
