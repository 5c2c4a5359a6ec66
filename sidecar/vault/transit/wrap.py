"""BYOK wrapping: the format Vault's and OpenBao's ``transit/keys/<name>/import`` accept.

Vault documents it as: generate an ephemeral AES-256 key, wrap the target key with it using AES
key wrap *with padding* (RFC 5649, "KWP"), encrypt the ephemeral key with transit's RSA wrapping
key (``transit/wrapping_key``) using RSA-OAEP with SHA-256 (MGF1 SHA-256), and send
``base64(rsa_part || kwp_part)`` as ``ciphertext``. Pure functions: no I/O, nothing kept.

The ephemeral key is random per call and dropped at once; nothing here logs or returns the secret.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

EPHEMERAL_KEY_BYTES = 32  # AES-256, as Vault's import documentation prescribes
MIN_RSA_BITS = 2048  # transit's wrapping key is 4096-bit; refuse anything much weaker


class WrapError(ValueError):
    """The wrapping key is unusable (message names the problem, never key material)."""


def load_wrapping_key(pem: str) -> rsa.RSAPublicKey:
    """transit's wrapping key (PEM ``public_key`` of ``GET transit/wrapping_key``)."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise WrapError(
            f"the wrapping key is not a PEM public key ({type(exc).__name__})"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise WrapError(f"the wrapping key is not RSA ({type(key).__name__})")
    if key.key_size < MIN_RSA_BITS:
        raise WrapError(f"the wrapping key is only {key.key_size} bits")
    return key


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def wrap_for_import(target_key: bytes, wrapping_key: rsa.RSAPublicKey) -> str:
    """``ciphertext`` for ``transit/keys/<name>/import`` (or ``import_version``).

    ``target_key`` is the raw key material: for an HMAC key, exactly the bytes used as the HMAC
    key (for Gate, the API secret as UTF-8).
    """
    if not target_key:
        raise WrapError("the key to import is empty")
    ephemeral = os.urandom(EPHEMERAL_KEY_BYTES)
    wrapped_ephemeral = wrapping_key.encrypt(ephemeral, _oaep())
    wrapped_target = aes_key_wrap_with_padding(ephemeral, target_key)
    return base64.b64encode(wrapped_ephemeral + wrapped_target).decode()
