"""WS-Security for MyCareNet calls: sign a business call with a SAML holder-of-key token, and verify one.

The profile (MYCARENET.md §1, and what the eHealth platform accepts since SHA-1 was refused in 2023):

* ``soap:Header/wsse:Security`` (``mustUnderstand="1"``) holds, in this order, a ``wsu:Timestamp``
  (Created/Expires, a short TTL), the token and a ``ds:Signature``;
* the signature uses exclusive C14N for SignedInfo and for every reference, SHA-256 digests and
  RSA-SHA256 (ECDSA-SHA256/384 for EC keys: eHealth issues EC certificates too);
* a business call references the Body and the Timestamp by ``wsu:Id``; its ``KeyInfo`` is a
  ``wsse:SecurityTokenReference`` whose ``KeyIdentifier`` (ValueType ``...#SAMLAssertionID``) names
  the ``AssertionID`` of the SAML 1.1 assertion in the header.  The key is the holder-of-key: the
  certificate in the assertion's ``SubjectConfirmation/ds:KeyInfo``.
* the STS request (see ``sts.py``) uses the same building blocks with a ``BinarySecurityToken``
  (the authentication certificate) as the key, itself signed with the Timestamp and the Body.

The assertion is inserted as received: ``sign_envelope`` splices its bytes into the serialised
envelope and parses the result, so that nothing in it is re-indented, re-declared or dropped (see
``sign_envelope``), and its own enveloped signature (exclusive C14N) still verifies in its new place.

Why our own XML-DSig code (lxml's C14N + ``cryptography``) rather than a general library: the
profile is small and fixed, and verification must resolve a reference only to the elements where
it is expected (the Envelope's Body, the Security header's Timestamp and tokens), with an ``Id``
that occurs exactly once in the document.  That is the defence against signature wrapping (moving
the signed Body elsewhere and putting another one in its place), which a generic "find the element
with this Id" lookup does not give.  libxmlsec1 verifies what this module signs (see the tests).

Refusals raise ``SecurityRefusal`` with a ``RefusalCode`` per problem, so that the simulator can
answer each with its own platform code.  Nothing here logs a key, a token's content or an SSIN.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from zeep import Plugin

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.mycarenet.keystore import Identity, KeystoreError, describe_certificate, verify_chain
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

logger = logging.getLogger(__name__)

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSSE11_NS = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SAML_NS = "urn:oasis:names:tc:SAML:1.0:assertion"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SAML_ASSERTION_ID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
SAML_V11_TOKEN_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
X509_V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"

WSU_ID = f"{{{WSU_NS}}}Id"
_SOAP_NAMESPACES = (SOAP11_NS, SOAP12_NS)
_ID_ATTRIBUTES = (WSU_ID, "Id", "ID", "AssertionID")

_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "http://www.w3.org/2001/04/xmlenc#sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashes.SHA512,
}
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
_SIGNATURE_METHODS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    RSA_SHA256: ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    ECDSA_SHA256: ("ec", hashes.SHA256),
    ECDSA_SHA384: ("ec", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512),
}

DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------

class RefusalCode(str, Enum):
    """Why a signed message was refused; each has its own platform code in the simulator."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    TIMESTAMP_MISSING = "timestamp-missing"
    TIMESTAMP_EXPIRED = "timestamp-expired"
    TIMESTAMP_NOT_YET_VALID = "timestamp-not-yet-valid"
    TIMESTAMP_TOO_LONG = "timestamp-too-long"
    PART_NOT_SIGNED = "part-not-signed"
    AMBIGUOUS_REFERENCE = "ambiguous-reference"
    ALGORITHM_REFUSED = "algorithm-refused"
    DIGEST_MISMATCH = "digest-mismatch"
    SIGNATURE_INVALID = "signature-invalid"
    TOKEN_MISSING = "token-missing"
    CERTIFICATE_UNTRUSTED = "certificate-untrusted"
    CERTIFICATE_EXPIRED = "certificate-expired"
    ASSERTION_INVALID = "assertion-invalid"
    ASSERTION_FOREIGN = "assertion-foreign"
    ASSERTION_SIGNATURE_INVALID = "assertion-signature-invalid"
    ASSERTION_EXPIRED = "assertion-expired"
    ASSERTION_NOT_YET_VALID = "assertion-not-yet-valid"


class SecurityRefusal(Exception):
    """A signed message (or token) cannot be accepted; ``message`` says why in plain English."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


# --------------------------------------------------------------------------------------------
# Small helpers: ids, instants, certificates
# --------------------------------------------------------------------------------------------

def new_id(prefix: str) -> str:
    """A fresh XML ID (an NCName), such as ``TS-3f2a...``."""
    return f"{prefix}-{uuid.uuid4().hex}"


def format_instant(moment: datetime) -> str:
    """``2024-03-01T09:30:00.123Z``: UTC with milliseconds, as the eHealth stacks write it."""
    moment = _aware(moment).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_INSTANT = re.compile(r"^\s*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?\s*$")


def parse_instant(text: str | None) -> datetime | None:
    """An ``xs:dateTime`` as an aware UTC datetime (no zone means UTC); None when absent or invalid."""
    match = _INSTANT.match(text or "")
    if not match:
        return None
    base, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(base)
    except ValueError:
        return None
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        return moment.replace(tzinfo=timezone(sign * offset)).astimezone(timezone.utc)
    return moment.replace(tzinfo=timezone.utc)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def certificate_base64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")


def certificate_from_base64(text: str | None) -> x509.Certificate:
    """A certificate from base64 DER (line breaks allowed); ``ValueError`` when it is none."""
    try:
        der = base64.b64decode("".join((text or "").split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a base64 DER certificate ({exc})") from None


def _public_key_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _children(parent: etree._Element, tag: str) -> list[etree._Element]:
    return [child for child in parent if child.tag == tag]


def _decode_base64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except binascii.Error:
        raise SecurityRefusal(RefusalCode.MALFORMED, f"The {what} is not valid base64.") from None


# --------------------------------------------------------------------------------------------
# XML-DSig: canonicalisation, digests, signature values
# --------------------------------------------------------------------------------------------

def canonicalize(element: etree._Element, inclusive_prefixes: Sequence[str] = ()) -> bytes:
    """Exclusive C14N 1.0 (without comments) of ``element`` and its descendants."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False,
                          inclusive_ns_prefixes=list(inclusive_prefixes) or None)


def _digest(method: str, data: bytes) -> bytes:
    algorithm = _DIGESTS[method]()
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def signature_method_for(key: PrivateKeyTypes) -> str:
    """RSA-SHA256 for RSA keys; ECDSA-SHA384 for EC keys of 384 bits or more, else ECDSA-SHA256."""
    if isinstance(key, rsa.RSAPrivateKey):
        return RSA_SHA256
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECDSA_SHA384 if key.curve.key_size >= 384 else ECDSA_SHA256
    raise TypeError(f"{type(key).__name__} keys cannot sign WS-Security messages (RSA or EC only)")


def _sign_value(key: PrivateKeyTypes, method: str, data: bytes) -> bytes:
    kind, algorithm = _SIGNATURE_METHODS[method]
    if kind == "rsa":
        return key.sign(data, padding.PKCS1v15(), algorithm())
    # XML-DSig wants r || s, each as long as the curve order (RFC 4050 / RFC 6931), not DER.
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _verify_value(public_key: PublicKeyTypes, method: str, data: bytes, value: bytes) -> bool:
    kind, algorithm = _SIGNATURE_METHODS[method]
    try:
        if kind == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, data, padding.PKCS1v15(), algorithm())
            return True
        if kind == "ec" and isinstance(public_key, ec.EllipticCurvePublicKey):
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big"))
            public_key.verify(der, data, ec.ECDSA(algorithm()))
            return True
    except InvalidSignature:
        return False
    return False


def sign_elements(parent: etree._Element, targets: Sequence[tuple[str, etree._Element]], *,
                  key: PrivateKeyTypes, key_info: etree._Element, enveloped: bool = False,
                  signature_id: str | None = None) -> etree._Element:
    """Append a ``ds:Signature`` to ``parent`` that covers each ``(id, element)`` of ``targets``.

    Every reference is ``URI="#id"`` with an exclusive C14N transform and a SHA-256 digest.  With
    ``enveloped=True`` the single target is ``parent`` itself (a SAML assertion signing itself):
    its reference gets the enveloped-signature transform first.  ``key_info`` becomes the content
    of ``ds:KeyInfo``.  The targets must already be in their final place in the tree.
    """
    digests = []
    for target_id, element in targets:
        digests.append((target_id, base64.b64encode(_digest(DIGEST_SHA256, canonicalize(element))).decode()))
    method = signature_method_for(key)
    signature = etree.SubElement(parent, f"{{{DS_NS}}}Signature", nsmap={"ds": DS_NS})
    if signature_id:
        signature.set("Id", signature_id)
    signed_info = etree.SubElement(signature, f"{{{DS_NS}}}SignedInfo")
    etree.SubElement(signed_info, f"{{{DS_NS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, f"{{{DS_NS}}}SignatureMethod", Algorithm=method)
    for target_id, digest in digests:
        reference = etree.SubElement(signed_info, f"{{{DS_NS}}}Reference", URI=f"#{target_id}")
        transforms = etree.SubElement(reference, f"{{{DS_NS}}}Transforms")
        if enveloped:
            etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=ENVELOPED_SIGNATURE)
        etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=EXC_C14N)
        etree.SubElement(reference, f"{{{DS_NS}}}DigestMethod", Algorithm=DIGEST_SHA256)
        etree.SubElement(reference, f"{{{DS_NS}}}DigestValue").text = digest
    value = _sign_value(key, method, canonicalize(signed_info))
    etree.SubElement(signature, f"{{{DS_NS}}}SignatureValue").text = base64.b64encode(value).decode()
    etree.SubElement(signature, f"{{{DS_NS}}}KeyInfo").append(key_info)
    return signature


def _inclusive_prefixes(method_element: etree._Element) -> list[str]:
    inclusive = method_element.find(f"{{{EXC_C14N}}}InclusiveNamespaces")
    if inclusive is None:
        return []
    return (inclusive.get("PrefixList") or "").split()


def _only_child(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = _children(parent, tag)
    if len(found) != 1:
        raise SecurityRefusal(RefusalCode.MALFORMED,
                              f"The signature must hold exactly one {what} ({len(found)} found).")
    return found[0]


def _canonical_without(element: etree._Element, signature: etree._Element, prefixes: Sequence[str]) -> bytes:
    """The enveloped-signature transform then exclusive C14N: ``element`` without ``signature``
    (a direct child), keeping the text around it as it was."""
    copy = deepcopy(element)
    enveloped = copy[element.index(signature)]
    _remove_keeping_tail(enveloped)
    return canonicalize(copy, prefixes)


def _remove_keeping_tail(element: etree._Element) -> None:
    """lxml's ``remove`` takes the tail text along; XML-DSig's transform keeps it."""
    parent = element.getparent()
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def verify_signature(signature: etree._Element, *, public_key: PublicKeyTypes,
                     resolve: Callable[[str], etree._Element],
                     enveloping: etree._Element | None = None) -> list[etree._Element]:
    """Check every reference's digest and the signature value; return the referenced elements.

    ``resolve`` turns an Id into the one element it may designate, or raises ``SecurityRefusal``:
    that is where the caller limits where references may point.  ``enveloping`` is the element
    that holds ``signature`` when the signature is enveloped (it must then be referenced with the
    enveloped-signature transform).  Only exclusive C14N and SHA-2 algorithms are accepted.
    """
    signed_info = _only_child(signature, f"{{{DS_NS}}}SignedInfo", "SignedInfo")
    c14n = _only_child(signed_info, f"{{{DS_NS}}}CanonicalizationMethod", "CanonicalizationMethod")
    if c14n.get("Algorithm") != EXC_C14N:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"SignedInfo is canonicalised with {c14n.get('Algorithm')}; exclusive C14N is required.")
    method = _only_child(signed_info, f"{{{DS_NS}}}SignatureMethod", "SignatureMethod").get("Algorithm") or ""
    if method not in _SIGNATURE_METHODS:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"The signature method {method or '(none)'} is refused; use RSA-SHA256 or "
                              "ECDSA-SHA256/384.")
    references = _children(signed_info, f"{{{DS_NS}}}Reference")
    if not references:
        raise SecurityRefusal(RefusalCode.MALFORMED, "The signature references nothing.")
    covered = []
    for reference in references:
        covered.append(_check_reference(reference, signature, resolve, enveloping))
    value = _decode_base64(_only_child(signature, f"{{{DS_NS}}}SignatureValue", "SignatureValue").text,
                           "signature value")
    if not _verify_value(public_key, method, canonicalize(signed_info, _inclusive_prefixes(c14n)), value):
        raise SecurityRefusal(RefusalCode.SIGNATURE_INVALID,
                              "The signature value does not match the signer's key: the message was not signed "
                              "with the private key of the certificate it names, or SignedInfo was altered.")
    return covered


def _check_reference(reference: etree._Element, signature: etree._Element,
                     resolve: Callable[[str], etree._Element], enveloping: etree._Element | None) -> etree._Element:
    uri = reference.get("URI") or ""
    if not uri.startswith("#") or len(uri) < 2:
        raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE,
                              f"The reference URI {uri!r} is refused: only '#Id' references to elements of the "
                              "message are accepted.")
    target = resolve(uri[1:])
    transforms = [t for t in reference.iterfind(f"{{{DS_NS}}}Transforms/{{{DS_NS}}}Transform")]
    algorithms = [t.get("Algorithm") for t in transforms]
    expected = [ENVELOPED_SIGNATURE, EXC_C14N] if target is enveloping else [EXC_C14N]
    if algorithms != expected:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"The reference {uri} uses the transforms {algorithms}; {expected} is required.")
    prefixes = _inclusive_prefixes(transforms[-1])
    digest_element = reference.find(f"{{{DS_NS}}}DigestMethod")
    digest_method = (digest_element.get("Algorithm") if digest_element is not None else None) or ""
    if digest_method not in _DIGESTS:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"The digest method {digest_method or '(none)'} of {uri} is refused; use SHA-256.")
    if target is enveloping:
        data = _canonical_without(target, signature, prefixes)
    else:
        data = canonicalize(target, prefixes)
    expected_digest = _decode_base64(reference.findtext(f"{{{DS_NS}}}DigestValue"), f"digest of {uri}")
    if not hmac.compare_digest(_digest(digest_method, data), expected_digest):
        raise SecurityRefusal(RefusalCode.DIGEST_MISMATCH,
                              f"The signed element {etree.QName(target).localname} ({uri}) was changed after it "
                              "was signed.")
    return target


# --------------------------------------------------------------------------------------------
# SAML 1.1 assertions
# --------------------------------------------------------------------------------------------

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
        holder_certificate=_holder_certificate(assertion),
        attributes={name: tuple(values) for name, values in attributes.items()},
        element=assertion,
    )


def _holder_certificate(assertion: etree._Element) -> x509.Certificate | None:
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
                     now: datetime, max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW) -> SamlAssertion:
    """Check an assertion's enveloped signature and its validity period.

    With ``sts_certificate`` the assertion must be signed by that STS.  Without it, the signature
    is checked against the certificate the assertion carries in its own ``ds:KeyInfo``: that
    proves the assertion was not altered, not who issued it.
    """
    info = read_assertion(assertion)
    signatures = _children(assertion, f"{{{DS_NS}}}Signature")
    if len(signatures) != 1:
        raise SecurityRefusal(RefusalCode.ASSERTION_SIGNATURE_INVALID,
                              f"The SAML assertion must carry exactly one signature ({len(signatures)} found).")
    signature = signatures[0]
    carried = _key_info_certificate(signature)
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
    _check_conditions(info, _aware(now), max_clock_skew)
    if info.holder_certificate is None:
        raise SecurityRefusal(RefusalCode.ASSERTION_INVALID,
                              "The SAML assertion has no holder-of-key subject confirmation with a certificate.")
    return info


def _key_info_certificate(signature: etree._Element) -> x509.Certificate | None:
    text = signature.find(f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate")
    if text is None:
        return None
    try:
        return certificate_from_base64(text.text)
    except ValueError:
        return None


def _check_conditions(info: SamlAssertion, now: datetime, skew: timedelta) -> None:
    if info.not_before is not None and now + skew < info.not_before:
        raise SecurityRefusal(RefusalCode.ASSERTION_NOT_YET_VALID,
                              f"The SAML assertion is valid only from {format_instant(info.not_before)}.")
    if info.not_on_or_after is not None and now - skew >= info.not_on_or_after:
        raise SecurityRefusal(RefusalCode.ASSERTION_EXPIRED,
                              f"The SAML assertion expired at {format_instant(info.not_on_or_after)}; "
                              "ask the eHealth STS for a new token.")


# --------------------------------------------------------------------------------------------
# Building the Security header
# --------------------------------------------------------------------------------------------

def soap_parts(envelope: etree._Element) -> tuple[str, etree._Element, etree._Element]:
    """The SOAP namespace, the Header (created first in the envelope when missing) and the Body."""
    namespace = etree.QName(envelope).namespace
    if namespace not in _SOAP_NAMESPACES or etree.QName(envelope).localname != "Envelope":
        raise ValueError(f"{etree.QName(envelope).text} is not a SOAP envelope")
    body = envelope.find(f"{{{namespace}}}Body")
    if body is None:
        raise ValueError("the SOAP envelope has no Body")
    header = envelope.find(f"{{{namespace}}}Header")
    if header is None:
        header = etree.Element(f"{{{namespace}}}Header")
        envelope.insert(0, header)
    return namespace, header, body


def security_header(envelope: etree._Element) -> etree._Element:
    """The envelope's ``wsse:Security`` header with ``mustUnderstand="1"``, created when missing."""
    namespace, header, _ = soap_parts(envelope)
    security = header.find(f"{{{WSSE_NS}}}Security")
    if security is None:
        security = etree.SubElement(header, f"{{{WSSE_NS}}}Security", nsmap={"wsse": WSSE_NS, "wsu": WSU_NS})
    security.set(f"{{{namespace}}}mustUnderstand", "1")
    return security


def add_timestamp(security: etree._Element, *, now: datetime, ttl: timedelta) -> etree._Element:
    """Put a fresh ``wsu:Timestamp`` first in ``security`` (replacing an older one)."""
    for old in _children(security, f"{{{WSU_NS}}}Timestamp"):
        security.remove(old)
    timestamp = etree.Element(f"{{{WSU_NS}}}Timestamp", nsmap={"wsu": WSU_NS})
    timestamp.set(WSU_ID, new_id("TS"))
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Created").text = format_instant(now)
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Expires").text = format_instant(now + ttl)
    security.insert(0, timestamp)
    return timestamp


def binary_security_token(certificate: x509.Certificate, *, with_id: bool = True) -> etree._Element:
    """A ``wsse:BinarySecurityToken`` holding ``certificate`` (X.509 v3, base64), with a fresh
    ``wsu:Id`` unless ``with_id`` is false."""
    token = etree.Element(f"{{{WSSE_NS}}}BinarySecurityToken",
                          nsmap={"wsse": WSSE_NS, "wsu": WSU_NS} if with_id else {"wsse": WSSE_NS},
                          EncodingType=BASE64_BINARY, ValueType=X509_V3)
    if with_id:
        token.set(WSU_ID, new_id("X509"))
    token.text = certificate_base64(certificate)
    return token


def token_reference(token: etree._Element) -> etree._Element:
    """A ``wsse:SecurityTokenReference`` pointing at a BinarySecurityToken of the same header."""
    reference = etree.Element(f"{{{WSSE_NS}}}SecurityTokenReference", nsmap={"wsse": WSSE_NS})
    etree.SubElement(reference, f"{{{WSSE_NS}}}Reference", URI=f"#{token.get(WSU_ID)}", ValueType=X509_V3)
    return reference


def assertion_reference(assertion_id: str) -> etree._Element:
    """A ``wsse:SecurityTokenReference`` naming a SAML 1.1 assertion by its AssertionID."""
    reference = etree.Element(f"{{{WSSE_NS}}}SecurityTokenReference", nsmap={"wsse": WSSE_NS, "wsse11": WSSE11_NS})
    reference.set(f"{{{WSSE11_NS}}}TokenType", SAML_V11_TOKEN_TYPE)
    etree.SubElement(reference, f"{{{WSSE_NS}}}KeyIdentifier", ValueType=SAML_ASSERTION_ID).text = assertion_id
    return reference


def identify(element: etree._Element, prefix: str) -> str:
    """The element's ``wsu:Id``, given a fresh one when it has none."""
    existing = element.get(WSU_ID)
    if existing:
        return existing
    element.set(WSU_ID, new_id(prefix))
    return element.get(WSU_ID)


def _body_with_wsu_prefix(body: etree._Element) -> etree._Element:
    """The Body, rebuilt when needed so that its ``wsu:Id`` is written with the usual ``wsu`` prefix.

    lxml can only declare a namespace on a new element; otherwise the attribute would come out as
    ``ns0:Id``, which is valid but unusual.  Children, text and namespace declarations are kept.
    """
    if WSU_NS in body.nsmap.values() or "wsu" in body.nsmap or body.get(WSU_ID):
        return body
    parent = body.getparent()
    own = {prefix: uri for prefix, uri in body.nsmap.items() if parent.nsmap.get(prefix) != uri}
    rebuilt = etree.Element(body.tag, attrib=dict(body.attrib), nsmap={**own, "wsu": WSU_NS})
    rebuilt.text, rebuilt.tail = body.text, body.tail
    for child in list(body):
        rebuilt.append(child)
    parent.replace(body, rebuilt)
    return rebuilt


def sign_with_certificate(envelope: etree._Element, *, key: PrivateKeyTypes, certificate: x509.Certificate,
                          now: datetime, ttl: timedelta) -> etree._Element:
    """Sign ``envelope`` in place with a certificate: Timestamp, BinarySecurityToken and Body.

    The STS request is signed this way with the authentication key, and so are the platform's
    answers when it signs them.
    """
    security = security_header(envelope)
    timestamp = add_timestamp(security, now=now, ttl=ttl)
    token = binary_security_token(certificate)
    security.insert(security.index(timestamp) + 1, token)
    body = _body_with_wsu_prefix(soap_parts(envelope)[2])
    targets = [(timestamp.get(WSU_ID), timestamp), (token.get(WSU_ID), token), (identify(body, "id"), body)]
    sign_elements(security, targets, key=key, key_info=token_reference(token))
    return envelope


# --------------------------------------------------------------------------------------------
# Signing a business call
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False, eq=False)
class SigningCredential:
    """What signs a business call: the SAML assertion (bytes as received) and its holder's key."""

    assertion_xml: bytes
    private_key: PrivateKeyTypes
    certificate: x509.Certificate

    def __repr__(self) -> str:
        return f"SigningCredential(certificate={describe_certificate(self.certificate)!r})"


def sign_envelope(envelope: etree._Element, *, assertion_xml: bytes, key: PrivateKeyTypes,
                  certificate: x509.Certificate, ttl_seconds: int = 60, now: Clock = utc_now) -> etree._Element:
    """Return a signed copy of a SOAP envelope (``envelope`` itself is left as it was).

    The copy's ``Header/wsse:Security`` gets a Timestamp (``ttl_seconds``), the assertion and a
    signature over the Body and the Timestamp made with ``key``, whose KeyInfo names the assertion.
    ``certificate`` must be ``key``'s certificate and the assertion's holder-of-key certificate: a
    mismatch raises ``ValueError`` here rather than a refusal upstream.

    Why a copy: lxml drops the namespace declarations of an element moved into a tree that already
    declares them, which would change the assertion's bytes (not its canonical form).  So the
    header is prepared, the envelope serialised, the assertion's bytes spliced in as received, and
    the result parsed again; nothing is moved after that, and serialising the result writes the
    assertion as it came.
    """
    assertion = _parse_assertion(assertion_xml)
    _check_credential(key, certificate, assertion)
    prepared = deepcopy(envelope)
    security = security_header(prepared)
    if _children(security, f"{{{DS_NS}}}Signature"):
        raise ValueError("the envelope is already signed")
    for old in _children(security, f"{{{SAML_NS}}}Assertion"):
        security.remove(old)
    _, _, body = soap_parts(prepared)
    identify(_body_with_wsu_prefix(body), "id")
    timestamp = add_timestamp(security, now=_aware(now()), ttl=timedelta(seconds=ttl_seconds))
    marker = etree.Comment(f"assertion-{uuid.uuid4().hex}")
    security.insert(security.index(timestamp) + 1, marker)
    serialised = etree.tostring(prepared, encoding="UTF-8")
    spliced = serialised.replace(etree.tostring(marker, encoding="UTF-8", with_tail=False),
                                 _assertion_bytes(assertion_xml, assertion), 1)
    signed = etree.fromstring(spliced, parser=_OWN_XML_PARSER)
    _, _, body = soap_parts(signed)
    security = security_header(signed)
    timestamp = _children(security, f"{{{WSU_NS}}}Timestamp")[0]
    sign_elements(security, [(body.get(WSU_ID), body), (timestamp.get(WSU_ID), timestamp)], key=key,
                  key_info=assertion_reference(assertion.get("AssertionID")), signature_id=new_id("SIG"))
    return signed


# Re-reads what this module has just written (the assertion in it was checked by ``parse_xml``):
# no entities, no network, CDATA kept, and no size limit on the text of large GenAsync blobs.
_OWN_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True,
                                  strip_cdata=False, remove_blank_text=False)
_XML_DECLARATION = re.compile(rb"^\s*<\?xml\s[^?]*\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _assertion_bytes(assertion_xml: bytes, assertion: etree._Element) -> bytes:
    """The assertion's bytes without BOM and XML declaration, when they are UTF-8 (else its UTF-8 form)."""
    data = assertion_xml.removeprefix(b"\xef\xbb\xbf")
    declaration = _XML_DECLARATION.match(data)
    if declaration:
        encoding = _ENCODING.search(declaration.group(0))
        if encoding and encoding.group(1).decode("ascii").lower() not in ("utf-8", "utf8", "us-ascii", "ascii"):
            return etree.tostring(assertion, encoding="UTF-8")
        data = data[declaration.end():]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return etree.tostring(assertion, encoding="UTF-8")
    return data.strip()


def _parse_assertion(assertion_xml: bytes) -> etree._Element:
    try:
        assertion = parse_xml(assertion_xml)
    except UnsafeXml as exc:
        raise ValueError(f"the SAML assertion cannot be parsed: {exc}") from None
    if assertion.tag != f"{{{SAML_NS}}}Assertion" or not assertion.get("AssertionID"):
        raise ValueError(f"{etree.QName(assertion).text} is not a SAML 1.1 assertion with an AssertionID")
    return assertion


def _check_credential(key: PrivateKeyTypes, certificate: x509.Certificate, assertion: etree._Element) -> None:
    if _public_key_der(key.public_key()) != _public_key_der(certificate.public_key()):
        raise ValueError("the private key does not belong to the certificate given with it")
    holder = _holder_certificate(assertion)
    if holder is not None and holder != certificate:
        raise ValueError(f"the SAML token was issued for {describe_certificate(holder)}, not for "
                         f"{describe_certificate(certificate)}")


class WsseSigningPlugin(Plugin):
    """A zeep plugin that signs every outgoing message with the token of ``token_provider()``.

    ``token_provider`` returns a ``SigningCredential`` (``sts.TokenCache.token_provider(entry)``
    gives one that renews the token when needed).  The plugin returns the signed copy, which zeep
    (and ``apply_egress``) send instead of the original; zeep serialises it after the plugins
    without pretty-printing, and exclusive C14N keeps the signature independent of where
    namespaces end up being declared.
    """

    def __init__(self, token_provider: Callable[[], SigningCredential], *, ttl_seconds: int = 60,
                 now: Clock = utc_now) -> None:
        self._token_provider = token_provider
        self._ttl_seconds = ttl_seconds
        self._now = now

    def egress(self, envelope: etree._Element, http_headers: dict, operation: Any,
               binding_options: Any) -> tuple[etree._Element, dict]:
        credential = self._token_provider()
        signed = sign_envelope(envelope, assertion_xml=credential.assertion_xml, key=credential.private_key,
                               certificate=credential.certificate, ttl_seconds=self._ttl_seconds, now=self._now)
        return signed, http_headers


# --------------------------------------------------------------------------------------------
# Verifying a signed message
# --------------------------------------------------------------------------------------------

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
                    require_signed_token: bool = False) -> VerifiedCaller:
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
    clock (a callable) or an instant.
    """
    moment = _aware(now() if callable(now) else now)
    envelope = _parse_envelope(envelope_bytes)
    structure = _Structure.of(envelope)
    if structure.timestamp is None:
        raise SecurityRefusal(RefusalCode.TIMESTAMP_MISSING,
                              "The WS-Security header has no Timestamp; every message must carry a signed one.")
    certificate, assertion, token = _signer(structure)
    covered = verify_signature(structure.signature, public_key=certificate.public_key(), resolve=structure.resolve)
    _require_covered(covered, structure, token if require_signed_token else None)
    created, expires = _check_timestamp(structure.timestamp, moment, max_clock_skew)
    _check_certificate(certificate, trusted_ca, moment)
    saml = None
    if assertion is not None:
        saml = verify_assertion(assertion, sts_certificate=sts_certificate, now=moment, max_clock_skew=max_clock_skew)
    try:
        identity = Identity.from_certificate(certificate)
    except KeystoreError:
        identity = None
    logger.debug("Signed message from %s verified", describe_certificate(certificate))
    return VerifiedCaller(certificate=certificate, identity=identity, assertion=saml, token=token,
                          envelope=envelope, body=structure.body, created=created, expires=expires)


def _parse_envelope(envelope_bytes: bytes) -> etree._Element:
    try:
        envelope = parse_xml(envelope_bytes)
    except UnsafeXml as exc:
        raise SecurityRefusal(RefusalCode.MALFORMED, str(exc)) from None
    name = etree.QName(envelope)
    if name.namespace not in _SOAP_NAMESPACES or name.localname != "Envelope":
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
        headers = _children(envelope, f"{{{namespace}}}Header")
        bodies = _children(envelope, f"{{{namespace}}}Body")
        if len(bodies) != 1 or len(headers) > 1:
            raise SecurityRefusal(RefusalCode.MALFORMED, "The SOAP envelope must have one Body and at most one Header.")
        securities = _children(headers[0], f"{{{WSSE_NS}}}Security") if headers else []
        if not securities:
            raise SecurityRefusal(RefusalCode.UNSIGNED, "The message has no WS-Security header: it is not signed.")
        if len(securities) > 1:
            raise SecurityRefusal(RefusalCode.MALFORMED, "The message has several WS-Security headers.")
        security = securities[0]
        signatures = _children(security, f"{{{DS_NS}}}Signature")
        if not signatures:
            raise SecurityRefusal(RefusalCode.UNSIGNED, "The WS-Security header holds no signature.")
        if len(signatures) > 1:
            raise SecurityRefusal(RefusalCode.MALFORMED, "The WS-Security header holds several signatures.")
        timestamps = _children(security, f"{{{WSU_NS}}}Timestamp")
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


def _index_ids(root: etree._Element) -> dict[str, list[etree._Element]]:
    index: dict[str, list[etree._Element]] = {}
    for element in root.iter(tag=etree.Element):
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
    certificate = _key_info_certificate(structure.signature)
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
    assertions = [assertion for assertion in _children(structure.security, f"{{{SAML_NS}}}Assertion")
                  if assertion.get("AssertionID") == assertion_id]
    if not assertions:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING,
                              f"The signature names the SAML assertion {assertion_id}, which is not in the "
                              "WS-Security header.")
    if len(assertions) > 1 or len(structure.ids.get(assertion_id, [])) != 1:
        raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE,
                              f"Several elements of the message carry the assertion id {assertion_id}.")
    holder = _holder_certificate(assertions[0])
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


def _check_certificate(certificate: x509.Certificate, trusted_ca: x509.Certificate, now: datetime) -> None:
    who = describe_certificate(certificate)
    if now > certificate.not_valid_after_utc or now < certificate.not_valid_before_utc:
        raise SecurityRefusal(RefusalCode.CERTIFICATE_EXPIRED,
                              f"The certificate of {who} is valid from {certificate.not_valid_before_utc:%Y-%m-%d} to "
                              f"{certificate.not_valid_after_utc:%Y-%m-%d}, not now.")
    problem = verify_chain(certificate, trusted_ca, now)
    if problem:
        raise SecurityRefusal(RefusalCode.CERTIFICATE_UNTRUSTED, mask_ssins_in_text(problem))


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate, in hexadecimal."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
