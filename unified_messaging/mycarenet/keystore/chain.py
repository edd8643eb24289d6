"""Checking a certificate against the trusted CA (or a bundle of them): dates, CA flags and signatures up the chain."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Sequence

from cryptography import x509

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.mycarenet.keystore.certificates import describe_certificate, is_ca, is_issued_by
from unified_messaging.mycarenet.keystore.errors import KeystoreError
from unified_messaging.mycarenet.keystore.identity import masked_subject

TrustedCa = x509.Certificate | Sequence[x509.Certificate]
"""One CA certificate, or a bundle (roots and intermediates, each of them trusted)."""


def load_certificate_bundle(pem: bytes) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle; ``KeystoreError`` when it holds none or cannot be read."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise KeystoreError("it holds no PEM certificate (no -----BEGIN CERTIFICATE----- line: a DER file or a "
                            ".p12 keystore is not a PEM bundle)")
    try:
        return tuple(x509.load_pem_x509_certificates(pem))
    except ValueError:
        raise KeystoreError("a certificate in it is damaged and cannot be read") from None


KEYSTORE_ADVICE = " Use a keystore issued by eHealth for this environment (acceptance and production certificates differ)."


def verify_chain(certificate: x509.Certificate, trusted_ca: TrustedCa, at: datetime, *,
                 intermediates: Sequence[x509.Certificate] = (), advice: str = KEYSTORE_ADVICE) -> str | None:
    """Say why ``certificate`` cannot be trusted at ``at``, or return None when it can.

    ``trusted_ca`` is one CA certificate or a bundle of them (any of them is a trust anchor; the
    others may serve as intermediates).  Checks the validity dates of the certificate and of every
    issuer up to a trusted CA, that each issuer is a CA and that each signature verifies (a CA with
    the same name but another key is refused).  Revocation (CRL/OCSP) is not checked.  ``advice``
    ends the answer for a certificate another CA issued (what to do about a care provider's keystore).
    A chain found sound is remembered with the window of dates in which it is (``_SOUND``): the
    platform signs every answer with the same certificate.
    """
    anchors = [trusted_ca] if isinstance(trusted_ca, x509.Certificate) else list(trusted_ca)
    if not anchors:
        return "No trusted CA certificate is configured to check it against."
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    def who() -> str:  # what a refusal names: described only for a problem (this runs for every answer)
        return describe_certificate(certificate)

    key = (certificate, tuple(anchors), tuple(intermediates))
    window = _SOUND.get(key)
    if window is not None and window[0] <= at <= window[1]:
        return None
    problem = _dates_problem(certificate, at, lambda: f"The certificate of {who()}")
    if problem:
        return problem
    current, path = certificate, [certificate]
    for _ in range(10):
        anchor = next((ca for ca in anchors if is_issued_by(current, ca)), None)
        if anchor is not None:
            if not is_ca(anchor):
                return f"The trusted certificate {masked_subject(anchor)} is not a CA certificate."
            problem = _dates_problem(anchor, at, lambda: f"The CA certificate {masked_subject(anchor)}")
            if problem is None:
                _remember_sound(key, [*path, anchor])
            return problem
        issuer = next((c for c in intermediates if c != current and is_issued_by(current, c)), None)
        if issuer is None:
            break
        if not is_ca(issuer):
            return f"The certificate of {who()} is issued by {masked_subject(issuer)}, which is not a CA."
        problem = _dates_problem(issuer, at, lambda: f"The CA certificate {masked_subject(issuer)}")
        if problem:
            return problem
        current = issuer
        path.append(issuer)
    trusted = " or ".join(masked_subject(ca) for ca in anchors)
    namesake = next((ca for ca in anchors if current.issuer == ca.subject), None)
    if namesake is not None:
        return (f"The certificate of {who()} names {masked_subject(namesake)} as its issuer, but its "
                "signature does not match that CA's key: it was issued by another, untrusted CA.")
    return (f"The certificate of {who()} was issued by {mask_ssins_in_text(current.issuer.rfc4514_string())}, "
            f"not by the trusted CA {trusted}.{advice}")


_SOUND: dict[tuple, tuple[datetime, datetime]] = {}
"""(certificate, anchors, intermediates) -> the instants between which its chain was found sound:
the latest start and the earliest end of the validity of every certificate of the chain.  Inside
that window the answer can only be the same (signatures and CA flags do not change with time);
outside it, the chain is checked again and the dates problem worded."""


def _remember_sound(key: tuple, chain: list[x509.Certificate]) -> None:
    if len(_SOUND) >= 256:
        _SOUND.clear()
    _SOUND[key] = (max(c.not_valid_before_utc for c in chain), min(c.not_valid_after_utc for c in chain))


def _dates_problem(certificate: x509.Certificate, at: datetime, what: Callable[[], str]) -> str | None:
    """``what()`` words the certificate in the problem; it is called only when there is one (this
    runs for every signed answer, and describing a certificate costs more than checking it)."""
    if at < certificate.not_valid_before_utc:
        return f"{what()} is not valid yet: it starts on {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC."
    if at > certificate.not_valid_after_utc:
        return (f"{what()} expired on {certificate.not_valid_after_utc:%Y-%m-%d}. Renew it with the eHealth "
                "certificate manager and install the new keystore.")
    return None
