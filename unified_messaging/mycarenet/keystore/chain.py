"""Checking a certificate against the trusted CA: dates, CA flags and signatures up the chain."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from cryptography import x509

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.mycarenet.keystore.certificates import describe_certificate, is_ca, is_issued_by
from unified_messaging.mycarenet.keystore.identity import masked_subject


def verify_chain(certificate: x509.Certificate, trusted_ca: x509.Certificate, at: datetime, *,
                 intermediates: Sequence[x509.Certificate] = ()) -> str | None:
    """Say why ``certificate`` cannot be trusted at ``at``, or return None when it can.

    Checks the validity dates of the certificate and of every issuer up to ``trusted_ca``, that
    each issuer is a CA and that each signature verifies (a CA with the same name but another key
    is refused).  Revocation (CRL/OCSP) is not checked.
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    who = describe_certificate(certificate)
    problem = _dates_problem(certificate, at, f"The certificate of {who}")
    if problem:
        return problem
    current = certificate
    for _ in range(10):
        if is_issued_by(current, trusted_ca):
            if not is_ca(trusted_ca):
                return f"The trusted certificate {masked_subject(trusted_ca)} is not a CA certificate."
            return _dates_problem(trusted_ca, at, f"The CA certificate {masked_subject(trusted_ca)}")
        issuer = next((c for c in intermediates if c != current and is_issued_by(current, c)), None)
        if issuer is None:
            break
        if not is_ca(issuer):
            return f"The certificate of {who} is issued by {masked_subject(issuer)}, which is not a CA."
        problem = _dates_problem(issuer, at, f"The CA certificate {masked_subject(issuer)}")
        if problem:
            return problem
        current = issuer
    if current.issuer == trusted_ca.subject:
        return (f"The certificate of {who} names {masked_subject(trusted_ca)} as its issuer, but its "
                "signature does not match that CA's key: it was issued by another, untrusted CA.")
    return (f"The certificate of {who} was issued by {mask_ssins_in_text(current.issuer.rfc4514_string())}, "
            f"not by the trusted CA {masked_subject(trusted_ca)}. Use a keystore issued by eHealth for "
            "this environment (acceptance and production certificates differ).")


def _dates_problem(certificate: x509.Certificate, at: datetime, what: str) -> str | None:
    if at < certificate.not_valid_before_utc:
        return f"{what} is not valid yet: it starts on {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC."
    if at > certificate.not_valid_after_utc:
        return (f"{what} expired on {certificate.not_valid_after_utc:%Y-%m-%d}. Renew it with the eHealth "
                "certificate manager and install the new keystore.")
    return None
