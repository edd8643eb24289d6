"""SAML 1.1 assertions (the STS's holder-of-key tokens): read one, and check its signature and dates.

``read_assertion`` says what an assertion states (issuer, validity, holder-of-key certificate,
attributes); ``verify_assertion`` checks its enveloped signature (against the STS certificate when
given) and its Conditions.  The assertion itself is never re-serialised here.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography import x509
from lxml import etree

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.mycarenet.keystore import TrustedCa, describe_certificate, verify_chain
from unified_messaging.mycarenet.wsse.dsig import canonicalize, key_info_certificate, signature_prefixes, verify_signature
from unified_messaging.mycarenet.wsse.refusals import RefusalCode, SecurityRefusal
from unified_messaging.mycarenet.wsse.utils import (
    DEFAULT_CLOCK_SKEW, DS_NS, SAML_NS, aware, certificate_from_base64, children, format_instant, parse_instant,
)
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"


@dataclass(frozen=True, repr=False, eq=False)
class SamlAssertion:
    """What a SAML 1.1 assertion says, read from its XML (``read_assertion``)."""

    assertion_id: str
    issuer: str
    issue_instant: datetime | None
    not_before: datetime | None
    not_on_or_after: datetime | None
    holder_certificate: x509.Certificate | None
    attributes: Mapping[str, tuple[str, ...]]
    element: etree._Element = field(compare=False)

    def attribute(self, name: str) -> str | None:
        values = self.attributes.get(name)
        return values[0] if values else None

    def __repr__(self) -> str:
        return (f"SamlAssertion(id={self.assertion_id!r}, issuer={self.issuer!r}, "
                f"not_on_or_after={self.not_on_or_after}, attributes={sorted(self.attributes)})")


def read_assertion(assertion: etree._Element | bytes) -> SamlAssertion:
    """Read a SAML 1.1 ``Assertion`` (element or bytes); ``SecurityRefusal(ASSERTION_INVALID)`` if it is none."""
    if isinstance(assertion, bytes):
        try:
            assertion = parse_xml(assertion)
        except UnsafeXml as exc:
            raise SecurityRefusal(RefusalCode.ASSERTION_INVALID, f"The SAML assertion cannot be read: {exc}") from None
    if assertion.tag != f"{{{SAML_NS}}}Assertion":
        raise SecurityRefusal(RefusalCode.ASSERTION_INVALID,
                              f"{etree.QName(assertion).text} is not a SAML 1.1 assertion.")
    assertion_id = assertion.get("AssertionID")
    if not assertion_id:
        raise SecurityRefusal(RefusalCode.ASSERTION_INVALID, "The SAML assertion has no AssertionID.")
    conditions = assertion.find(f"{{{SAML_NS}}}Conditions")
    attributes: dict[str, list[str]] = {}
    for attribute in assertion.iterfind(f"{{{SAML_NS}}}AttributeStatement/{{{SAML_NS}}}Attribute"):
        values = attributes.setdefault(attribute.get("AttributeName") or "", [])
        values.extend((value.text or "").strip() for value in attribute.iterfind(f"{{{SAML_NS}}}AttributeValue"))
    return SamlAssertion(
        assertion_id=assertion_id,
        issuer=assertion.get("Issuer") or "",
        issue_instant=parse_instant(assertion.get("IssueInstant")),
        not_before=parse_instant(conditions.get("NotBefore")) if conditions is not None else None,
        not_on_or_after=parse_instant(conditions.get("NotOnOrAfter")) if conditions is not None else None,
        holder_certificate=holder_certificate(assertion),
        attributes={name: tuple(values) for name, values in attributes.items()},
        element=assertion,
    )


def holder_certificate(assertion: etree._Element) -> x509.Certificate | None:
    """The certificate of the holder-of-key confirmation (the same in every statement's Subject)."""
    found: list[x509.Certificate] = []
    for confirmation in assertion.iterfind(f"{{{SAML_NS}}}*/{{{SAML_NS}}}Subject/{{{SAML_NS}}}SubjectConfirmation"):
        methods = [(m.text or "").strip() for m in confirmation.iterfind(f"{{{SAML_NS}}}ConfirmationMethod")]
        if HOLDER_OF_KEY not in methods:
            continue
        for text in confirmation.iterfind(f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"):
            try:
                found.append(certificate_from_base64(text.text))
            except ValueError as exc:
                raise SecurityRefusal(RefusalCode.ASSERTION_INVALID,
                                      f"The holder-of-key certificate of the assertion cannot be read: {exc}."
                                      ) from None
    if any(certificate != found[0] for certificate in found[1:]):
        raise SecurityRefusal(RefusalCode.ASSERTION_INVALID, "The assertion names several holder-of-key certificates.")
    return found[0] if found else None


def verify_assertion(assertion: etree._Element, *, sts_certificate: x509.Certificate | None,
                     now: datetime, max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
                     trusted_ca: TrustedCa | None = None) -> SamlAssertion:
    """Check an assertion's enveloped signature and its validity period.

    With ``sts_certificate`` the assertion must be signed by that STS.  Without it, the signature
    is checked against the certificate the assertion carries in its own ``ds:KeyInfo``: that
    proves the assertion was not altered, not who issued it; with ``trusted_ca`` (the eHealth CA
    bundle) that signer's certificate must also chain to it and be valid ``now``, which says who.

    An assertion whose canonical form (with every prefix its signature keeps from the context)
    and signer are those of one already read and verified here is not read and verified again:
    its chain and dates still are, at ``now`` (``_VERIFIED``).
    """
    signatures = children(assertion, f"{{{DS_NS}}}Signature")
    key = None
    if len(signatures) == 1 and assertion.tag == f"{{{SAML_NS}}}Assertion":
        key = (canonicalize(assertion, signature_prefixes(signatures[0])), sts_certificate)
        known = _VERIFIED.get(key)
        if known is not None:
            info = replace(known, element=assertion, attributes=dict(known.attributes))
            return _still_valid(info, known.signer, trusted_ca, now, max_clock_skew)
    info = read_assertion(assertion)
    if len(signatures) != 1:
        raise SecurityRefusal(RefusalCode.ASSERTION_SIGNATURE_INVALID,
                              f"The SAML assertion must carry exactly one signature ({len(signatures)} found).")
    signature = signatures[0]
    carried = key_info_certificate(signature)
    if sts_certificate is not None and carried is not None and carried != sts_certificate:
        raise SecurityRefusal(RefusalCode.ASSERTION_FOREIGN,
                              f"The SAML assertion was issued by {describe_certificate(carried)}, not by the "
                              "eHealth STS this service trusts.")
    signer = sts_certificate or carried
    if signer is None:
        raise SecurityRefusal(RefusalCode.ASSERTION_SIGNATURE_INVALID,
                              "The SAML assertion's signature names no certificate to check it with.")

    def resolve(reference_id: str) -> etree._Element:
        if reference_id != info.assertion_id:
            raise SecurityRefusal(RefusalCode.ASSERTION_SIGNATURE_INVALID,
                                  "The SAML assertion's signature does not cover the assertion itself.")
        return assertion

    try:
        verify_signature(signature, public_key=signer.public_key(), resolve=resolve, enveloping=assertion)
    except SecurityRefusal as refusal:
        if refusal.code is RefusalCode.ALGORITHM_REFUSED:
            raise
        raise SecurityRefusal(RefusalCode.ASSERTION_SIGNATURE_INVALID,
                              "The SAML assertion's signature does not verify: it was altered, or it was not "
                              f"issued by the eHealth STS ({refusal.message})") from None
    if key is not None:
        _VERIFIED.put(key, _Verified(**{name: getattr(info, name) for name in _FIELDS}, element=None, signer=signer))
    return _still_valid(info, signer, trusted_ca, now, max_clock_skew)


def _still_valid(info: SamlAssertion, signer: x509.Certificate, trusted_ca: TrustedCa | None, now: datetime,
                 max_clock_skew: timedelta) -> SamlAssertion:
    """The checks of ``verify_assertion`` that depend on ``now`` and on the CA, after the signature's."""
    if trusted_ca is not None:
        problem = verify_chain(signer, trusted_ca, aware(now), advice="")
        if problem:
            raise SecurityRefusal(RefusalCode.ASSERTION_FOREIGN,
                                  "The SAML assertion's signer is not vouched for by the trusted eHealth CA: "
                                  f"{mask_ssins_in_text(problem)}")
    _check_conditions(info, aware(now), max_clock_skew)
    if info.holder_certificate is None:
        raise SecurityRefusal(RefusalCode.ASSERTION_INVALID,
                              "The SAML assertion has no holder-of-key subject confirmation with a certificate.")
    return info


_FIELDS = ("assertion_id", "issuer", "issue_instant", "not_before", "not_on_or_after", "holder_certificate",
           "attributes")  # not ``element``: a kept entry must not keep its message's tree alive


@dataclass(frozen=True, repr=False, eq=False)
class _Verified(SamlAssertion):
    """An assertion read and whose signature verified, with the certificate that signed it."""

    signer: x509.Certificate | None = None


class _VerifiedAssertions:
    """The last assertions verified, by canonical form and STS certificate (a token serves many calls)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[tuple[bytes, x509.Certificate | None], _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[bytes, x509.Certificate | None]) -> _Verified | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple[bytes, x509.Certificate | None], value: _Verified) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_VERIFIED = _VerifiedAssertions()


def _check_conditions(info: SamlAssertion, now: datetime, skew: timedelta) -> None:
    if info.not_before is not None and now + skew < info.not_before:
        raise SecurityRefusal(RefusalCode.ASSERTION_NOT_YET_VALID,
                              f"The SAML assertion is valid only from {format_instant(info.not_before)}.")
    if info.not_on_or_after is not None and now - skew >= info.not_on_or_after:
        raise SecurityRefusal(RefusalCode.ASSERTION_EXPIRED,
                              f"The SAML assertion expired at {format_instant(info.not_on_or_after)}; "
                              "ask the eHealth STS for a new token.")
