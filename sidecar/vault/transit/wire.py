"""The transit ``hmac`` endpoint's wire format, as pure functions.

``POST /v1/<mount>/hmac/<key>/sha2-512`` takes ``{"input": base64(message), "key_version": n}``
and answers ``{"data": {"hmac": "vault:v<n>:<base64 digest>"}}``. Gate's ``SIGN`` is the same
digest as lowercase hex, so the signer strips the prefix and re-encodes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

ALGORITHM = "sha2-512"  # Gate's SIGN is HMAC-SHA512
DIGEST_BYTES = 64

_HMAC = re.compile(r"vault:v(\d+):([A-Za-z0-9+/=]+)")


class WireError(ValueError):
    """Vault's answer is not what the hmac endpoint promises."""


def hmac_path(mount: str, key: str) -> str:
    """The API path (under ``/v1/``) of the key's HMAC-SHA512 endpoint."""
    return f"{mount.strip('/')}/hmac/{quote(key, safe='')}/{ALGORITHM}"


def keys_path(mount: str, key: str) -> str:
    return f"{mount.strip('/')}/keys/{quote(key, safe='')}"


def hmac_request(message: bytes, version: int) -> dict[str, Any]:
    """The JSON body: the message and the version to sign with (pinned, never "latest")."""
    return {"input": base64.b64encode(message).decode(), "key_version": version}


def parse_hmac(answer: Any, version: int) -> str:
    """Gate's ``SIGN`` (lowercase hex) from the JSON answer to :func:`hmac_request`."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    value = data.get("hmac") if isinstance(data, Mapping) else None
    if not isinstance(value, str):
        raise WireError("Vault's answer has no data.hmac")
    match = _HMAC.fullmatch(value)
    if match is None:
        raise WireError("data.hmac is not of the form vault:v<n>:<base64>")
    if int(match.group(1)) != version:
        # Signing with another version than the pinned one would mix a key and a secret.
        raise WireError(f"Vault signed with version {match.group(1)}, not {version}")
    try:
        digest = base64.b64decode(match.group(2), validate=True)
    except binascii.Error:
        raise WireError("data.hmac is not valid base64") from None
    if len(digest) != DIGEST_BYTES:
        raise WireError(f"data.hmac is {len(digest)} bytes, not a SHA-512 digest")
    return digest.hex()


def latest_version(key_info: Any) -> tuple[int, str | None]:
    """(latest_version, why the key cannot sign Gate requests or None) from ``keys/<name>``'s
    ``data`` section."""
    if not isinstance(key_info, Mapping):
        return 0, "Vault's answer has no key data"
    key_type = key_info.get("type")
    if key_type != "hmac":
        return 0, f"is a {key_type} key, not an hmac key (import it with gate-sidecar import-key)"
    version = key_info.get("latest_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return 0, "has no key version"
    return version, None
