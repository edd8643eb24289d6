"""The XAdES-T signature time-stamp: ``UnsignedSignatureProperties/SignatureTimeStamp``.

XAdES-T is a XAdES-BES plus a time-stamp, made by a time-stamping authority, over the canonical
``ds:SignatureValue`` element: the proof that the signature existed at that time.  The platform
adds one to its TAcks and MsgResponses; the real platform's is an **RFC 3161** token (DER) in
``EncapsulatedTimeStamp``.

The simulator does not run an RFC 3161 TSA (out of scope).  Its token (``stamp_signature``) is a
small XML document, namespace ``urn:unified-messaging:simulator:timestamp``: the time, the SHA-256
of the exclusive-C14N ``ds:SignatureValue`` (the message imprint), the signer's certificate and a
signature by the simulator's platform key over the imprint and the time.

What the client checks (``check_signature_timestamp``):

* presence (``verify(..., require_timestamp=True)`` refuses a XAdES without it);
* the imprint: the SHA-256 of the canonical SignatureValue.  In the simulator's token it is the
  ``MessageImprint``; in an RFC 3161 token (DER, not parsed here) the imprint must occur as the
  OCTET STRING of its ``messageImprint``;
* for the simulator's token only: its signature, with a signer certificate chained to the
  trusted CA.  An RFC 3161 token's own CMS signature and TSA certificate are not checked here.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from lxml import etree

from unified_messaging.mycarenet.keystore import describe_certificate
from unified_messaging.mycarenet.wsse import (
    DS_NS, EXC_C14N, RefusalCode, SecurityRefusal, canonicalize, certificate_base64, certificate_from_base64,
    format_instant, parse_instant, signature_method_for,
)
from unified_messaging.mycarenet.wsse.dsig import SIGNATURE_METHODS, decode_base64, sign_value, verify_value
from unified_messaging.mycarenet.wsse.verify import check_certificate
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
TOKEN_NS = "urn:unified-messaging:simulator:timestamp"
_SHA256_OCTET_STRING = b"\x04\x20"


def _x(name: str) -> str:
    return f"{{{XADES_NS}}}{name}"


def _t(name: str) -> str:
    return f"{{{TOKEN_NS}}}{name}"


def signature_imprint(signature: etree._Element) -> bytes:
    """The SHA-256 of the exclusive-C14N ``ds:SignatureValue`` of ``signature``."""
    value = signature.find(f"{{{DS_NS}}}SignatureValue")
    if value is None:
        raise SecurityRefusal(RefusalCode.MALFORMED, "The XAdES has no SignatureValue to time-stamp.")
    return hashlib.sha256(canonicalize(value)).digest()


def stamp_signature(xades_bytes: bytes, *, key: PrivateKeyTypes, certificate: x509.Certificate,
                    now: datetime) -> bytes:
    """XAdES-BES -> XAdES-T: add the simulator's signature time-stamp (see the module docstring)."""
    signature = parse_xml(xades_bytes)
    qualifying = signature.find(f"{{{DS_NS}}}Object/{_x('QualifyingProperties')}")
    if qualifying is None:
        raise ValueError("not a XAdES signature: no QualifyingProperties")
    imprint = signature_imprint(signature)
    moment = format_instant(now)
    method = signature_method_for(key)
    token = etree.Element(_t("TimeStampToken"), nsmap={"tst": TOKEN_NS})
    etree.SubElement(token, _t("GenTime")).text = moment
    etree.SubElement(token, _t("MessageImprint"), Algorithm="http://www.w3.org/2001/04/xmlenc#sha256").text = \
        base64.b64encode(imprint).decode("ascii")
    etree.SubElement(token, _t("Signer")).text = certificate_base64(certificate)
    etree.SubElement(token, _t("Signature"), Algorithm=method).text = \
        base64.b64encode(sign_value(key, method, _signed_bytes(imprint, moment))).decode("ascii")
    unsigned = etree.SubElement(etree.SubElement(qualifying, _x("UnsignedProperties")),
                                _x("UnsignedSignatureProperties"))
    stamp = etree.SubElement(unsigned, _x("SignatureTimeStamp"), Id=f"{signature.get('Id')}-ts")
    etree.SubElement(stamp, f"{{{DS_NS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(stamp, _x("EncapsulatedTimeStamp")).text = base64.b64encode(
        etree.tostring(token, encoding="UTF-8")).decode("ascii")
    return etree.tostring(signature, encoding="UTF-8", xml_declaration=True)


def _signed_bytes(imprint: bytes, moment: str) -> bytes:
    return imprint + moment.encode("ascii")


@dataclass(frozen=True)
class SignatureTimeStamp:
    """A checked signature time-stamp: its time (None for an RFC 3161 token, not parsed here)."""

    time: datetime | None
    simulated: bool


def check_signature_timestamp(signature: etree._Element, *, trusted_ca: x509.Certificate,
                              now: datetime) -> SignatureTimeStamp | None:
    """The signature's time-stamp, None when it has none; ``SecurityRefusal`` when it is wrong."""
    stamps = signature.findall(f"{{{DS_NS}}}Object/{_x('QualifyingProperties')}/{_x('UnsignedProperties')}/"
                               f"{_x('UnsignedSignatureProperties')}/{_x('SignatureTimeStamp')}")
    if not stamps:
        return None
    encapsulated = stamps[0].findtext(_x("EncapsulatedTimeStamp"))
    token_bytes = decode_base64(encapsulated, "XAdES signature time-stamp")
    imprint = signature_imprint(signature)
    if not token_bytes.lstrip().startswith(b"<"):
        if _SHA256_OCTET_STRING + imprint not in token_bytes:
            raise SecurityRefusal(RefusalCode.DIGEST_MISMATCH,
                                  "The XAdES signature time-stamp does not cover this SignatureValue.")
        return SignatureTimeStamp(time=None, simulated=False)
    return SignatureTimeStamp(time=_check_simulated_token(token_bytes, imprint, trusted_ca, now), simulated=True)


def parse_root(data: bytes, tag: str, what: str) -> etree._Element:
    """``data`` parsed with the hardened parser, its root named ``tag``, else ``SecurityRefusal``."""
    try:
        root = parse_xml(data)
    except UnsafeXml as exc:
        raise SecurityRefusal(RefusalCode.MALFORMED, f"The {what} is not acceptable XML: {exc}") from None
    if root.tag != tag:
        raise SecurityRefusal(RefusalCode.MALFORMED,
                              f"The {what}'s root element is {etree.QName(root).text}, not {etree.QName(tag).localname}.")
    return root


def _check_simulated_token(token_bytes: bytes, imprint: bytes, trusted_ca: x509.Certificate,
                           now: datetime) -> datetime:
    token = parse_root(token_bytes, _t("TimeStampToken"), "XAdES time-stamp token")
    moment_text = token.findtext(_t("GenTime")) or ""
    moment = parse_instant(moment_text)
    if moment is None:
        raise SecurityRefusal(RefusalCode.MALFORMED, "The XAdES time-stamp token gives no valid time.")
    stated = decode_base64(token.findtext(_t("MessageImprint")), "time-stamp imprint")
    if not hmac.compare_digest(stated, imprint):
        raise SecurityRefusal(RefusalCode.DIGEST_MISMATCH,
                              "The XAdES signature time-stamp does not cover this SignatureValue (its imprint differs).")
    try:
        signer = certificate_from_base64(token.findtext(_t("Signer")))
    except ValueError as exc:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING, f"The time-stamp's signer cannot be read: {exc}.") from None
    signature_node = token.find(_t("Signature"))
    method = signature_node.get("Algorithm", "") if signature_node is not None else ""
    value = decode_base64(signature_node.text if signature_node is not None else None, "time-stamp signature")
    if method not in SIGNATURE_METHODS or not verify_value(signer.public_key(), method,
                                                           _signed_bytes(imprint, moment_text), value):
        raise SecurityRefusal(RefusalCode.SIGNATURE_INVALID,
                              f"The XAdES time-stamp's signature does not verify with the key of "
                              f"{describe_certificate(signer)}.")
    check_certificate(signer, trusted_ca, now)
    return moment
