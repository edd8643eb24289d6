"""What a certificate says and allows: a log-safe description, key usages, CA flag, issuer, public key."""
from __future__ import annotations

from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from unified_messaging.mycarenet.keystore.errors import KeystoreError
from unified_messaging.mycarenet.keystore.identity import Identity, masked_subject


def describe_certificate(certificate: x509.Certificate) -> str:
    """A short, log-safe description of whom a certificate is for (SSINs masked)."""
    try:
        return str(Identity.from_certificate(certificate))
    except KeystoreError:
        return masked_subject(certificate)


def key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    """The certificate's key usage extension, None when it has none."""
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def is_ca(certificate: x509.Certificate) -> bool:
    """The certificate's basic constraints say it is a CA."""
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


@lru_cache(maxsize=256)
def is_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer`` is named as the certificate's issuer and its key verifies the certificate's signature.

    Remembered per pair (the answer is the same every time): every signed answer's certificate is
    checked against the same CA."""
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def public_key_der(key_or_certificate: x509.Certificate | PrivateKeyTypes) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate's or a private key's public key, to compare keys."""
    public_key = key_or_certificate.public_key()
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def allows_encryption(certificate: x509.Certificate) -> bool:
    """The certificate's key may encrypt (no key usage extension allows everything)."""
    usage = key_usage(certificate)
    return usage is None or usage.key_encipherment or usage.data_encipherment or usage.key_agreement
