"""Verifying a signed SOAP message, for the clients (platform answers) and the simulator (requests).

``verify_envelope`` finds the parts of the message by position only (the Envelope's Body, the
Security header's Timestamp and tokens), resolves every signature reference to one of those with
an ``Id`` that occurs exactly once in the message, and checks the digests, the signature value,
the Timestamp, the signer's certificate chain and, for a business call, the SAML assertion.  That
is the defence against signature wrapping (moving the signed Body elsewhere and putting another
one in its place).  Each problem raises ``SecurityRefusal`` with its own ``RefusalCode``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from cryptography import x509
from lxml import etree

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.mycarenet.keystore import Identity, KeystoreError, describe_certificate, verify_chain
from unified_messaging.mycarenet.wsse.dsig import key_info_certificate, verify_signature
from unified_messaging.mycarenet.wsse.refusals import RefusalCode, SecurityRefusal
from unified_messaging.mycarenet.wsse.saml import SamlAssertion, holder_certificate, verify_assertion
from unified_messaging.mycarenet.wsse.utils import (
    DEFAULT_CLOCK_SKEW, DS_NS, SAML_ASSERTION_ID, SAML_NS, SOAP_NAMESPACES, WSSE_NS, WSU_ID, WSU_NS, X509_V3, Clock,
    aware, certificate_from_base64, children, format_instant, parse_instant, utc_now,
)
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

logger = logging.getLogger(__name__)

_ID_ATTRIBUTES = (WSU_ID, "Id", "ID", "AssertionID")


@dataclass(frozen=True, repr=False, eq=False)
class VerifiedCaller:
    """A message whose signature, timestamp and signer were checked by ``verify_envelope``.

    ``assertion`` is set when the message was signed with a SAML holder-of-key token (a business
    call); ``token`` is the BinarySecurityToken when it was signed with a certificate (the STS
    request, a platform answer).  ``identity`` is None when the certificate names no eHealth
    identifier.
    """

    certificate: x509.Certificate
    identity: Identity | None
    assertion: SamlAssertion | None
    token: etree._Element | None
    envelope: etree._Element
    body: etree._Element
    created: datetime
    expires: datetime

    def __repr__(self) -> str:
        what = f"assertion {self.assertion.assertion_id}" if self.assertion else "certificate"
        return f"VerifiedCaller({describe_certificate(self.certificate)!r}, signed with {what})"


def verify_envelope(envelope_bytes: bytes, *, trusted_ca: x509.Certificate, now: Clock | datetime = utc_now,
                    max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW, sts_certificate: x509.Certificate | None = None,
                    require_signed_token: bool = False, parsed: etree._Element | None = None) -> VerifiedCaller:
    """Verify a WS-Security signed SOAP message; raise ``SecurityRefusal`` with a distinct code per problem.

    Checks, in order: the SOAP structure (one Header with one ``wsse:Security`` holding one
    Signature and one Timestamp, which must be there); the signer's key (a SAML assertion named by its AssertionID, a
    BinarySecurityToken, or an X509 certificate in KeyInfo); every reference, resolved by Id only
    to the Envelope's Body, the Security header's Timestamp or tokens, or a header block, with an Id
    that occurs once in the whole message; the digests and the signature value; that the Body and
    the Timestamp (and, with ``require_signed_token``, the BinarySecurityToken) are signed; the
    Timestamp against ``now`` give or take ``max_clock_skew``; the signer's certificate dates and
    its chain to ``trusted_ca``; and a SAML assertion's own signature and validity (see
    ``verify_assertion``; with ``sts_certificate`` it must be issued by that STS).  ``now`` is a
    clock (a callable) or an instant. ``parsed``: the caller already parsed ``envelope_bytes`` with
    ``xmlsafe.parse_xml`` (and has not changed the tree since): it is checked instead of parsing
    the bytes a second time.
    """
    moment = aware(now() if callable(now) else now)
    envelope = _parse_envelope(envelope_bytes) if parsed is None else _soap_root(parsed)
    structure = _Structure.of(envelope)
    if structure.timestamp is None:
        raise SecurityRefusal(RefusalCode.TIMESTAMP_MISSING,
                              "The WS-Security header has no Timestamp; every message must carry a signed one.")
    certificate, assertion, token = _signer(structure)
    covered = verify_signature(structure.signature, public_key=certificate.public_key(), resolve=structure.resolve)
    _require_covered(covered, structure, token if require_signed_token else None)
    created, expires = _check_timestamp(structure.timestamp, moment, max_clock_skew)
    check_certificate(certificate, trusted_ca, moment)
    saml = None
    if assertion is not None:
        saml = verify_assertion(assertion, sts_certificate=sts_certificate, now=moment, max_clock_skew=max_clock_skew)
    identity = _identity(certificate)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("Signed message from %s verified", describe_certificate(certificate))
    return VerifiedCaller(certificate=certificate, identity=identity, assertion=saml, token=token,
                          envelope=envelope, body=structure.body, created=created, expires=expires)


@lru_cache(maxsize=64)
def _identity(certificate: x509.Certificate) -> Identity | None:
    """Who a certificate names (None: no eHealth identity), read once per certificate: the
    platform signs every answer with the same one."""
    try:
        return Identity.from_certificate(certificate)
    except KeystoreError:
        return None


def _parse_envelope(envelope_bytes: bytes) -> etree._Element:
    try:
        envelope = parse_xml(envelope_bytes)
    except UnsafeXml as exc:
        raise SecurityRefusal(RefusalCode.MALFORMED, str(exc)) from None
    return _soap_root(envelope)


def _soap_root(envelope: etree._Element) -> etree._Element:
    name = etree.QName(envelope)
    if name.namespace not in SOAP_NAMESPACES or name.localname != "Envelope":
        raise SecurityRefusal(RefusalCode.MALFORMED, f"The root element is {name.text}, not a SOAP envelope.")
    return envelope


@dataclass
class _Structure:
    """The parts of a signed envelope, found by position only (never by Id)."""

    envelope: etree._Element
    header: etree._Element
    body: etree._Element
    security: etree._Element
    signature: etree._Element
    timestamp: etree._Element | None
    ids: dict[str, list[etree._Element]]

    @classmethod
    def of(cls, envelope: etree._Element) -> _Structure:
        namespace = etree.QName(envelope).namespace
        headers = children(envelope, f"{{{namespace}}}Header")
        bodies = children(envelope, f"{{{namespace}}}Body")
        if len(bodies) != 1 or len(headers) > 1:
            raise SecurityRefusal(RefusalCode.MALFORMED, "The SOAP envelope must have one Body and at most one Header.")
        securities = children(headers[0], f"{{{WSSE_NS}}}Security") if headers else []
        if not securities:
            raise SecurityRefusal(RefusalCode.UNSIGNED, "The message has no WS-Security header: it is not signed.")
        if len(securities) > 1:
            raise SecurityRefusal(RefusalCode.MALFORMED, "The message has several WS-Security headers.")
        security = securities[0]
        signatures = children(security, f"{{{DS_NS}}}Signature")
        if not signatures:
            raise SecurityRefusal(RefusalCode.UNSIGNED, "The WS-Security header holds no signature.")
        if len(signatures) > 1:
            raise SecurityRefusal(RefusalCode.MALFORMED, "The WS-Security header holds several signatures.")
        timestamps = children(security, f"{{{WSU_NS}}}Timestamp")
        if len(timestamps) > 1:
            raise SecurityRefusal(RefusalCode.MALFORMED, "The WS-Security header holds several timestamps.")
        return cls(envelope, headers[0], bodies[0], security, signatures[0], timestamps[0] if timestamps else None,
                   _index_ids(envelope))

    def allowed_targets(self) -> list[etree._Element]:
        return [self.body, *self.security, *self.header]

    def resolve(self, reference_id: str) -> etree._Element:
        found = self.ids.get(reference_id, [])
        if len(found) != 1:
            raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE,
                                  f"The signature references #{reference_id}, which {len(found)} elements of the "
                                  "message carry: an Id must designate exactly one element.")
        target = found[0]
        if not any(target is allowed for allowed in self.allowed_targets()):
            raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE,
                                  f"The signature references #{reference_id}, a {etree.QName(target).localname} "
                                  "that is neither the SOAP Body nor a security header element.")
        return target


_WITH_ID = etree.XPath("descendant-or-self::*[@wsu:Id or @Id or @ID or @AssertionID]", namespaces={"wsu": WSU_NS})
"""The elements that carry one of ``_ID_ATTRIBUTES``, in document order (found by libxml2 rather
than by asking each element of the message for each attribute)."""


def _index_ids(root: etree._Element) -> dict[str, list[etree._Element]]:
    index: dict[str, list[etree._Element]] = {}
    for element in _WITH_ID(root):
        for attribute in _ID_ATTRIBUTES:
            value = element.get(attribute)
            if value is not None:
                holders = index.setdefault(value, [])
                if not any(holder is element for holder in holders):
                    holders.append(element)
    return index


def _signer(structure: _Structure) -> tuple[x509.Certificate, etree._Element | None, etree._Element | None]:
    """The signing certificate named by the signature's KeyInfo, with the assertion or token holding it."""
    key_info = structure.signature.find(f"{{{DS_NS}}}KeyInfo")
    if key_info is None:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING, "The signature has no KeyInfo: the signer is unknown.")
    reference = key_info.find(f"{{{WSSE_NS}}}SecurityTokenReference")
    if reference is not None:
        identifier = reference.find(f"{{{WSSE_NS}}}KeyIdentifier")
        if identifier is not None:
            return _assertion_signer(structure, identifier)
        direct = reference.find(f"{{{WSSE_NS}}}Reference")
        if direct is not None:
            return _token_signer(structure, direct)
    certificate = key_info_certificate(structure.signature)
    if certificate is not None:
        return certificate, None, None
    raise SecurityRefusal(RefusalCode.TOKEN_MISSING,
                          "The signature's KeyInfo names neither a SAML assertion, nor a BinarySecurityToken, nor a "
                          "certificate.")


def _assertion_signer(structure: _Structure,
                      identifier: etree._Element) -> tuple[x509.Certificate, etree._Element, None]:
    if identifier.get("ValueType") != SAML_ASSERTION_ID:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING,
                              f"The KeyIdentifier type {identifier.get('ValueType')} is not supported; a SAML "
                              "AssertionID is expected.")
    assertion_id = (identifier.text or "").strip()
    assertions = [assertion for assertion in children(structure.security, f"{{{SAML_NS}}}Assertion")
                  if assertion.get("AssertionID") == assertion_id]
    if not assertions:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING,
                              f"The signature names the SAML assertion {assertion_id}, which is not in the "
                              "WS-Security header.")
    if len(assertions) > 1 or len(structure.ids.get(assertion_id, [])) != 1:
        raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE,
                              f"Several elements of the message carry the assertion id {assertion_id}.")
    holder = holder_certificate(assertions[0])
    if holder is None:
        raise SecurityRefusal(RefusalCode.ASSERTION_INVALID,
                              "The SAML assertion has no holder-of-key subject confirmation with a certificate.")
    return holder, assertions[0], None


def _token_signer(structure: _Structure, reference: etree._Element) -> tuple[x509.Certificate, None, etree._Element]:
    uri = reference.get("URI") or ""
    found = structure.ids.get(uri[1:], []) if uri.startswith("#") else []
    if len(found) != 1:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING if not found else RefusalCode.AMBIGUOUS_REFERENCE,
                              f"The signature's token reference {uri!r} designates {len(found)} elements; exactly one "
                              "BinarySecurityToken is expected.")
    token = found[0]
    if token.tag != f"{{{WSSE_NS}}}BinarySecurityToken" or token.getparent() is not structure.security:
        raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE,
                              f"The signature's token reference {uri} does not designate a BinarySecurityToken of the "
                              "WS-Security header.")
    if token.get("ValueType") != X509_V3:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING,
                              f"The BinarySecurityToken type {token.get('ValueType')} is not supported.")
    try:
        return certificate_from_base64(token.text), None, token
    except ValueError as exc:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING, f"The BinarySecurityToken cannot be read: {exc}.") from None


def _require_covered(covered: list[etree._Element], structure: _Structure, token: etree._Element | None) -> None:
    required = [("SOAP Body", structure.body), ("Timestamp", structure.timestamp)]
    if token is not None:
        required.append(("BinarySecurityToken", token))
    for name, element in required:
        if not any(element is signed for signed in covered):
            raise SecurityRefusal(RefusalCode.PART_NOT_SIGNED, f"The {name} is not covered by the signature.")


MAX_TIMESTAMP_LIFETIME = timedelta(minutes=10)
"""A signed message may not claim to stay valid longer than this (Expires - Created): a message
signed "for ten years" would otherwise be replayable for ten years."""


def _check_timestamp(timestamp: etree._Element, now: datetime, skew: timedelta) -> tuple[datetime, datetime]:
    created = parse_instant(timestamp.findtext(f"{{{WSU_NS}}}Created"))
    expires = parse_instant(timestamp.findtext(f"{{{WSU_NS}}}Expires"))
    if created is None or expires is None:
        raise SecurityRefusal(RefusalCode.TIMESTAMP_MISSING, "The Timestamp must give a valid Created and Expires.")
    if expires - created > MAX_TIMESTAMP_LIFETIME:
        raise SecurityRefusal(RefusalCode.TIMESTAMP_TOO_LONG,
                              f"The Timestamp claims a lifetime of {expires - created}; at most "
                              f"{MAX_TIMESTAMP_LIFETIME} is accepted. Sign each message with a short-lived Timestamp.")
    if now - skew >= expires:
        raise SecurityRefusal(RefusalCode.TIMESTAMP_EXPIRED,
                              f"The message expired at {format_instant(expires)} (it is now {format_instant(now)}): "
                              "check the sender's clock, or send the message again.")
    if created > now + skew:
        raise SecurityRefusal(RefusalCode.TIMESTAMP_NOT_YET_VALID,
                              f"The message was created at {format_instant(created)}, in the future (it is now "
                              f"{format_instant(now)}): check the sender's clock.")
    return created, expires


def check_certificate(certificate: x509.Certificate, trusted_ca: x509.Certificate, now: datetime) -> None:
    """The certificate is valid at ``now`` and chains to ``trusted_ca`` (the refusals name it: its
    description is only made for them, as this runs for every answer)."""
    before, after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not before <= now <= after:
        who = describe_certificate(certificate)
        valid = f"valid from {before:%Y-%m-%d} to {after:%Y-%m-%d}"
        if now > after:
            raise SecurityRefusal(RefusalCode.CERTIFICATE_EXPIRED,
                                  f"The certificate of {who} expired on {after:%Y-%m-%d} "
                                  f"({valid}; it is now {format_instant(now)}).")
        raise SecurityRefusal(RefusalCode.CERTIFICATE_EXPIRED,
                              f"The certificate of {who} is not valid yet ({valid}; it is now {format_instant(now)}): "
                              "check this computer's clock.")
    problem = verify_chain(certificate, trusted_ca, now)
    if problem:
        raise SecurityRefusal(RefusalCode.CERTIFICATE_UNTRUSTED, mask_ssins_in_text(problem))
