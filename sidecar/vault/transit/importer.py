"""Importing a Gate secret into transit as a non-exportable HMAC key (the operator's one-time step).

Steps: fetch transit's wrapping key, wrap the secret (:mod:`sidecar.vault.transit.wrap`), import it
as ``type=hmac, exportable=false`` (or, with ``rotate``, as a new version of the existing key),
then have transit sign Gate's official test vector's string to sign with the new version, so the
operator can prove the import without the secret ever being printed.

This runs once, from an operator's shell, so it uses hvac directly (blocking is fine here). The
operator's own token does the import; the sidecar's identity only needs ``hmac`` and ``read``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import hvac

from sidecar.gate.signing import hmac_sha512_hex, string_to_sign
from sidecar.vault.transit.wire import hmac_path, keys_path, latest_version, parse_hmac
from sidecar.vault.transit.wrap import load_wrapping_key, wrap_for_import

#: transit's size limits for an imported HMAC key (OpenBao and Vault: 32..512 bytes).
MIN_HMAC_KEY_BYTES = 32
MAX_HMAC_KEY_BYTES = 512
SHA512_BLOCK_BYTES = 128

#: The first official Gate test vector (docs "Authentication"; key ``key``, secret ``secret``)
#: and its documented SIGN.
VECTOR_METHOD = "GET"
VECTOR_PATH = "/api/v4/futures/orders"
VECTOR_QUERY = "contract=BTC_USD&status=finished&limit=50"
VECTOR_TIMESTAMP = "1541993715"
VECTOR_DOCUMENTED_SIGN = (
    "55f84ea195d6fe57ce62464daaa7c3c02fa9d1dde954e4c898289c9a2407a3d6"
    "fb3faf24deff16790d726b66ac9f74526668b13bd01029199cc4fcc522418b8a"
)


class KeyImportError(Exception):
    """The import could not be done; the message never contains the secret."""


def vector_message() -> bytes:
    """The string to sign of Gate's first official test vector."""
    return string_to_sign(VECTOR_METHOD, VECTOR_PATH, VECTOR_QUERY, b"", VECTOR_TIMESTAMP)


def hmac_key_material(secret: str) -> bytes:
    """The bytes to import so that transit's HMAC-SHA512 equals Gate's HMAC with ``secret``.

    HMAC zero-pads any key shorter than the hash's block size (128 bytes for SHA-512; RFC 2104),
    so ``secret`` and ``secret + b"\\0" * n`` give identical HMACs as long as the result stays
    within one block. transit refuses HMAC keys under 32 bytes, and Gate's own test secret is
    ``secret`` (6 bytes): padding short secrets to 32 bytes makes them importable without
    changing a single signature. Real Gate secrets are 64 characters and are imported as is.
    """
    raw = secret.encode()
    if not raw:
        raise KeyImportError("the secret is empty")
    if len(raw) > MAX_HMAC_KEY_BYTES:
        raise KeyImportError(
            f"the secret is {len(raw)} bytes; transit accepts at most {MAX_HMAC_KEY_BYTES}"
        )
    if len(raw) < MIN_HMAC_KEY_BYTES:
        assert MIN_HMAC_KEY_BYTES <= SHA512_BLOCK_BYTES  # the padding argument needs this
        if raw.endswith(b"\0"):
            # Padding cannot tell "secret\0" from "secret": refuse rather than guess.
            raise KeyImportError("a secret shorter than 32 bytes must not end with a NUL byte")
        raw = raw + b"\0" * (MIN_HMAC_KEY_BYTES - len(raw))
    return raw


@dataclass
class ImportResult:
    mount: str
    key: str
    version: int
    rotated: bool
    vector_sign: str  # transit's SIGN of vector_message() at the new version
    matches_local: bool | None = None  # None: the operator did not ask for the local check
    notes: list[str] = field(default_factory=list)


def _data(answer: Any, what: str) -> Mapping[str, Any]:
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, Mapping):
        raise KeyImportError(f"{what}: Vault's answer has no data section")
    return data


def read_key(client: hvac.Client, mount: str, key: str) -> Mapping[str, Any] | None:
    """``<mount>/keys/<key>``'s data, or None when there is no such key."""
    answer = client.read(keys_path(mount, key))
    return None if answer is None else _data(answer, f"reading {keys_path(mount, key)}")


def sign_vector(client: hvac.Client, mount: str, key: str, version: int) -> str:
    """transit's SIGN of the official vector's string to sign with ``version`` of ``key``."""
    answer = client.write_data(
        hmac_path(mount, key),
        data={"input": base64.b64encode(vector_message()).decode(), "key_version": version},
    )
    return parse_hmac(answer, version)


def import_key(
    client: hvac.Client,
    mount: str,
    key: str,
    secret: str,
    *,
    rotate: bool = False,
    compare_locally: bool = False,
) -> ImportResult:
    """Import ``secret`` as transit key ``mount/key`` (or a new version of it, with ``rotate``).

    Raises :class:`KeyImportError` for the operator's mistakes, hvac/requests errors for Vault's.
    """
    material = hmac_key_material(secret)
    existing = read_key(client, mount, key)
    if existing is not None and not rotate:
        raise KeyImportError(
            f"transit key {mount}/{key} already exists (version "
            f"{existing.get('latest_version')}); use --rotate to import a new version"
        )
    if existing is None and rotate:
        raise KeyImportError(
            f"transit key {mount}/{key} does not exist; import it without --rotate"
        )
    if existing is not None:
        _, problem = latest_version(existing)
        if problem is not None:
            raise KeyImportError(f"transit key {mount}/{key} {problem}")
        if not existing.get("imported_key"):
            raise KeyImportError(
                f"transit key {mount}/{key} was not imported; cannot add a version"
            )

    pem = _data(client.read(f"{mount.strip('/')}/wrapping_key"), "reading the wrapping key")
    public_key = pem.get("public_key")
    if not isinstance(public_key, str):
        raise KeyImportError("transit's wrapping key answer has no public_key")
    ciphertext = wrap_for_import(material, load_wrapping_key(public_key))
    del material

    path = keys_path(mount, key)
    if rotate:
        client.write_data(f"{path}/import_version", data={"ciphertext": ciphertext})
    else:
        client.write_data(
            f"{path}/import",
            data={
                "ciphertext": ciphertext,
                "type": "hmac",
                # The whole point: the secret can never be read back out of Vault.
                "exportable": False,
                "allow_plaintext_backup": False,
                # transit's own rotate would invent key material Gate knows nothing about.
                "allow_rotation": False,
            },
        )
    info = read_key(client, mount, key)
    if info is None:
        raise KeyImportError(f"transit key {mount}/{key} is missing right after the import")
    version, problem = latest_version(info)
    if problem is not None:
        raise KeyImportError(f"transit key {mount}/{key} {problem}")

    result = ImportResult(mount, key, version, rotate, sign_vector(client, mount, key, version))
    if info.get("exportable"):
        result.notes.append("warning: the key is exportable (it existed before this import)")
    if compare_locally:
        local = hmac_sha512_hex(secret.encode(), vector_message())
        result.matches_local = local == result.vector_sign
    return result
