"""The injector's own TLS certificate: a private CA and a serving certificate for its Service.

The API server calls the webhook over HTTPS and trusts the CA in the webhook's ``caBundle``; a
self-managed injector makes both, and renews them before they expire (see
:mod:`sidecar.injector.rotation`). Keys are EC P-256 and never leave the pod's memory-backed
directory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    ca_pem: bytes
    cert_pem: bytes  # the serving certificate
    key_pem: bytes  # its private key (PKCS#8, unencrypted: the file is mode 0600 in a tmpfs)
    not_after: dt.datetime

    def __repr__(self) -> str:
        return f"Issued(not_after={self.not_after.isoformat()})"  # never the key


def service_names(service: str, namespace: str) -> list[str]:
    """The DNS names the API server may use for the Service."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def issue(service: str, namespace: str, now: dt.datetime, valid_days: int) -> Issued:
    """A fresh CA and a serving certificate for ``service.namespace.svc``, both valid
    ``valid_days`` from ``now`` (backdated a minute for clocks slightly behind)."""
    start = now - dt.timedelta(minutes=1)
    end = now + dt.timedelta(days=valid_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"gate-sidecar-injector CA {now:%Y%m%d%H%M%S}")]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = service_names(service, namespace)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[2])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        not_after=end,
    )


def not_after(cert_pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def needs_renewal(cert_pem: bytes | None, now: dt.datetime, renew_before: dt.timedelta) -> bool:
    """True when there is no certificate, it cannot be read, or it expires within the margin."""
    if not cert_pem:
        return True
    try:
        return not_after(cert_pem) - renew_before <= now
    except ValueError:
        return True


def merge_bundle(current: bytes, new_ca: bytes, now: dt.datetime) -> bytes:
    """The caBundle to publish: the new CA first, then every CA of ``current`` still valid.

    Keeping the others lets a second injector replica (or the old certificate, until the files
    are swapped) stay trusted; expired ones are dropped so the bundle never grows without bound.
    """
    keep = [new_ca]
    try:
        olds = x509.load_pem_x509_certificates(current) if current.strip() else []
    except ValueError:
        olds = []  # an unreadable bundle is replaced
    for old in olds:
        pem = old.public_bytes(serialization.Encoding.PEM)
        if old.not_valid_after_utc > now and pem not in keep:
            keep.append(pem)
    return b"".join(keep)
