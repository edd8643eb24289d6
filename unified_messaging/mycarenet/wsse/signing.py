"""Signing a SOAP envelope: with a certificate (the STS request, platform answers) or with a SAML token.

* ``sign_with_certificate`` signs the Timestamp, a ``BinarySecurityToken`` holding the certificate
  and the Body, in place;
* ``sign_envelope`` signs a business call: the Body and the Timestamp, with a ``KeyInfo`` whose
  ``KeyIdentifier`` (ValueType ``...#SAMLAssertionID``) names the SAML 1.1 assertion placed in the
  header.  The key is the holder-of-key: the certificate in the assertion's
  ``SubjectConfirmation/ds:KeyInfo``.

The assertion is inserted as received: ``sign_envelope`` splices its bytes into the serialised
envelope and parses the result, so that nothing in it is re-indented, re-declared or dropped, and
its own enveloped signature (exclusive C14N) still verifies in its new place.
"""
from __future__ import annotations

import re
import uuid
from copy import deepcopy
from datetime import datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree

from unified_messaging.mycarenet.keystore import describe_certificate
from unified_messaging.mycarenet.wsse.dsig import sign_elements
from unified_messaging.mycarenet.wsse.header import (
    add_timestamp, assertion_reference, binary_security_token, body_with_wsu_prefix, identify, security_header,
    soap_parts, token_reference,
)
from unified_messaging.mycarenet.wsse.saml import holder_certificate
from unified_messaging.mycarenet.wsse.utils import (
    DS_NS, SAML_NS, WSU_ID, WSU_NS, Clock, aware, children, new_id, utc_now,
)
from unified_messaging.xmlsafe import UnsafeXml, parse_xml


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
    body = body_with_wsu_prefix(soap_parts(envelope)[2])
    targets = [(timestamp.get(WSU_ID), timestamp), (token.get(WSU_ID), token), (identify(body, "id"), body)]
    sign_elements(security, targets, key=key, key_info=token_reference(token))
    return envelope


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
    assertion_id, assertion_bytes = _checked_assertion(assertion_xml, key, certificate)
    prepared = deepcopy(envelope)
    marker = _prepare(prepared, ttl_seconds, now)
    serialised = etree.tostring(prepared, encoding="UTF-8")
    spliced = serialised.replace(etree.tostring(marker, encoding="UTF-8", with_tail=False),
                                 assertion_bytes, 1)
    signed = etree.fromstring(spliced, parser=_OWN_XML_PARSER)
    _, _, body = soap_parts(signed)
    security = security_header(signed)
    timestamp = children(security, f"{{{WSU_NS}}}Timestamp")[0]
    sign_elements(security, [(body.get(WSU_ID), body), (timestamp.get(WSU_ID), timestamp)], key=key,
                  key_info=assertion_reference(assertion_id), signature_id=new_id("SIG"))
    return signed


def signed_envelope_bytes(envelope: etree._Element, *, assertion_xml: bytes, key: PrivateKeyTypes,
                          certificate: x509.Certificate, ttl_seconds: int = 60, now: Clock = utc_now) -> bytes:
    """The bytes of ``sign_envelope(envelope, ...)`` with an XML declaration, made without copying
    ``envelope`` and without parsing the result: for a caller that built ``envelope`` for this one
    message and sends bytes (``envelope`` is changed: it gets the Timestamp and the Signature, and
    a comment where the assertion goes).

    Exclusive C14N of the Body, the Timestamp and SignedInfo does not depend on what stands beside
    them, so the signature is computed with a placeholder where the assertion goes, and the
    assertion's bytes replace the placeholder in the serialised message, exactly as received.
    """
    assertion_id, assertion_bytes = _checked_assertion(assertion_xml, key, certificate)
    marker = _prepare(envelope, ttl_seconds, now)
    security = marker.getparent()
    timestamp = marker.getprevious()
    body = soap_parts(envelope)[2]
    sign_elements(security, [(body.get(WSU_ID), body), (timestamp.get(WSU_ID), timestamp)], key=key,
                  key_info=assertion_reference(assertion_id), signature_id=new_id("SIG"))
    serialised = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return serialised.replace(etree.tostring(marker, encoding="UTF-8", with_tail=False), assertion_bytes, 1)


def _prepare(envelope: etree._Element, ttl_seconds: int, now: Clock) -> etree._Comment:
    """Give ``envelope`` a Security header with a fresh Timestamp and, after it, a comment where the
    assertion goes (returned); an older assertion is removed, and the Body gets its ``wsu:Id``."""
    security = security_header(envelope)
    if children(security, f"{{{DS_NS}}}Signature"):
        raise ValueError("the envelope is already signed")
    for old in children(security, f"{{{SAML_NS}}}Assertion"):
        security.remove(old)
    _, _, body = soap_parts(envelope)
    identify(body_with_wsu_prefix(body), "id")
    timestamp = add_timestamp(security, now=aware(now()), ttl=timedelta(seconds=ttl_seconds))
    marker = etree.Comment(f"assertion-{uuid.uuid4().hex}")
    security.insert(security.index(timestamp) + 1, marker)
    return marker


@lru_cache(maxsize=32)
def _checked_assertion(assertion_xml: bytes, key: PrivateKeyTypes, certificate: x509.Certificate) -> tuple[str, bytes]:
    """The assertion's ID and the bytes to splice, once per token and key rather than once per call.

    A token serves every call of its certificate for its lifetime: parsing it, comparing the key
    with the certificate and reading the holder-of-key certificate again on each call gave the
    same answer each time. A refusal (``ValueError``) is not cached: it is raised on every call.
    """
    assertion = _parse_assertion(assertion_xml)
    _check_credential(key, certificate, assertion)
    return assertion.get("AssertionID"), _assertion_bytes(assertion_xml, assertion)


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
    holder = holder_certificate(assertion)
    if holder is not None and holder != certificate:
        raise ValueError(f"the SAML token was issued for {describe_certificate(holder)}, not for "
                         f"{describe_certificate(certificate)}")


def _public_key_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
