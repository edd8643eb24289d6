"""Building blocks of the ``wsse:Security`` header: the header itself, Timestamp, tokens, references, Ids.

``soap:Header/wsse:Security`` (``mustUnderstand="1"``) holds, in this order, a ``wsu:Timestamp``
(Created/Expires, a short TTL), the token and a ``ds:Signature``.  The token is either a
``BinarySecurityToken`` (a certificate, referenced with ``token_reference``) or a SAML assertion
(named by its AssertionID with ``assertion_reference``).  ``signing.py`` puts them together.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from lxml import etree

from unified_messaging.mycarenet.wsse.utils import (
    BASE64_BINARY, SAML_ASSERTION_ID, SAML_V11_TOKEN_TYPE, SOAP_NAMESPACES, WSSE11_NS, WSSE_NS, WSU_ID, WSU_NS,
    X509_V3, certificate_base64, children, format_instant, new_id,
)


def soap_parts(envelope: etree._Element) -> tuple[str, etree._Element, etree._Element]:
    """The SOAP namespace, the Header (created first in the envelope when missing) and the Body."""
    namespace = etree.QName(envelope).namespace
    if namespace not in SOAP_NAMESPACES or etree.QName(envelope).localname != "Envelope":
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
    for old in children(security, f"{{{WSU_NS}}}Timestamp"):
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


def body_with_wsu_prefix(body: etree._Element) -> etree._Element:
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
