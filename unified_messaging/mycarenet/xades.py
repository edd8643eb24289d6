"""XAdES on GenAsync blobs: the XAdES-BES of an eFact post, and checking the XAdES(-T) of an answer.

What the official eHealth connector sends (MYCARENET.md §2), and what this module signs:

* a detached ``ds:Signature`` whose one content ``Reference`` has ``URI="#<blob Id>"`` (``#blob``
  on a post) and the transforms ``http://www.w3.org/2000/09/xmldsig#base64`` then, for a deflated
  blob, ``urn:nippin:xml:sig:transform:optional-deflate``: the digest (SHA-256) is computed over
  the *file* those transforms yield from the blob's text (decoded, inflated), not over XML;
* a second ``Reference`` (``Type="http://uri.etsi.org/01903#SignedProperties"``, exclusive C14N)
  to the XAdES ``SignedProperties``: ``SigningTime`` and ``SigningCertificate`` (the SHA-256 of
  the signer's certificate with its issuer and serial number);
* ``SignedInfo`` in exclusive C14N, RSA-SHA256 (ECDSA for EC keys), ``KeyInfo`` with the
  certificate.  The post carries it base64-encoded in its ``Xades-t`` element (the schema's name).

Why not signxml: it cannot apply the custom optional-deflate transform.  The digests are computed
here with lxml's exclusive C14N and ``cryptography``, with the helpers of ``wsse.dsig``.

``verify`` checks a XAdES against the content it signs (the file: the inflated feedback, a TAck's
decoded content): the content digest, the SignedProperties digest and the SigningCertificate, the
signature value with the KeyInfo certificate and that certificate's dates and chain to the trusted
CA; with ``require_timestamp`` it also needs the XAdES-T signature time-stamp that the platform adds
to its answers (see ``xades_timestamp``).  Each problem raises ``SecurityRefusal`` saying what failed.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from unified_messaging.mycarenet.keystore import describe_certificate
from unified_messaging.mycarenet.wsse import (
    DIGEST_SHA256, DS_NS, EXC_C14N, Clock, RefusalCode, SecurityRefusal, canonicalize, certificate_base64,
    format_instant, new_id, parse_instant, signature_method_for, utc_now,
)
from unified_messaging.mycarenet.wsse.dsig import (
    DIGEST_METHODS, SIGNATURE_METHODS, decode_base64, digest, key_info_certificate, sign_value, verify_value,
)
from unified_messaging.mycarenet.wsse.utils import aware
from unified_messaging.mycarenet.wsse.verify import check_certificate
from unified_messaging.mycarenet.xades_timestamp import XADES_NS, SignatureTimeStamp, check_signature_timestamp, parse_root

log = logging.getLogger(__name__)

BASE64_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#base64"
OPTIONAL_DEFLATE = "urn:nippin:xml:sig:transform:optional-deflate"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
_CONTENT_TRANSFORMS = ([BASE64_TRANSFORM], [BASE64_TRANSFORM, OPTIONAL_DEFLATE])


class XadesCredential(Protocol):
    """What signs a XAdES: a key and its certificate (a ``KeyEntry`` or a ``SigningCredential``)."""

    @property
    def private_key(self) -> PrivateKeyTypes: ...

    @property
    def certificate(self) -> x509.Certificate: ...


@dataclass(frozen=True, repr=False, eq=False)
class VerifiedXades:
    """A XAdES checked by ``verify``: who signed, when, and the time-stamp's time (XAdES-T) if any."""

    certificate: x509.Certificate
    signing_time: datetime
    timestamp: SignatureTimeStamp | None
    blob_id: str

    def __repr__(self) -> str:
        stamped = ", time-stamped" if self.timestamp else ""
        if self.timestamp and self.timestamp.time:
            stamped += f" {format_instant(self.timestamp.time)}"
        return (f"VerifiedXades({describe_certificate(self.certificate)!r}, signed "
                f"{format_instant(self.signing_time)}{stamped})")


def _ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


def _xades(name: str) -> str:
    return f"{{{XADES_NS}}}{name}"


def sign_blob(content: bytes, blob_id: str, credential: XadesCredential, now: datetime, *,
              deflated: bool = True) -> bytes:
    """The XAdES-BES (a serialised ``ds:Signature``) of a blob whose file is ``content``.

    ``content`` is the file as it is before deflating (what the transforms give back from the
    blob); ``deflated`` says whether the blob is deflated (the optional-deflate transform is then
    listed).  ``now`` is the SigningTime.
    """
    return sign_digest(hashlib.sha256(content).digest(), blob_id, credential, now, deflated=deflated)


def sign_digest(content_digest: bytes, blob_id: str, credential: XadesCredential, now: datetime, *,
                deflated: bool = True) -> bytes:
    """``sign_blob`` given the SHA-256 of the file: a large file need not be held in memory to sign it."""
    key, certificate = credential.private_key, credential.certificate
    signature_id = new_id("xmldsig")
    method = signature_method_for(key)
    signature = etree.Element(_ds("Signature"), nsmap={"ds": DS_NS}, Id=signature_id)
    signed_info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=EXC_C14N)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=method)
    transforms = _CONTENT_TRANSFORMS[1] if deflated else _CONTENT_TRANSFORMS[0]
    _reference(signed_info, f"#{blob_id}", transforms, content_digest, Id=f"{signature_id}-ref0")
    etree.SubElement(signature, _ds("SignatureValue"), Id=f"{signature_id}-sigvalue")
    key_info = etree.SubElement(signature, _ds("KeyInfo"))
    etree.SubElement(etree.SubElement(key_info, _ds("X509Data")), _ds("X509Certificate")).text = \
        certificate_base64(certificate)
    properties = _qualifying_properties(signature, signature_id, certificate, now)
    _reference(signed_info, f"#{properties.get('Id')}", [EXC_C14N], digest(DIGEST_SHA256, canonicalize(properties)),
               Type=SIGNED_PROPERTIES_TYPE)
    value = sign_value(key, method, canonicalize(signed_info))
    signature.find(_ds("SignatureValue")).text = base64.b64encode(value).decode("ascii")
    return etree.tostring(signature, encoding="UTF-8", xml_declaration=True)


def _reference(signed_info: etree._Element, uri: str, transforms: list[str], value: bytes,
               **attributes: str) -> None:
    reference = etree.SubElement(signed_info, _ds("Reference"), URI=uri, **attributes)
    holder = etree.SubElement(reference, _ds("Transforms"))
    for algorithm in transforms:
        etree.SubElement(holder, _ds("Transform"), Algorithm=algorithm)
    etree.SubElement(reference, _ds("DigestMethod"), Algorithm=DIGEST_SHA256)
    etree.SubElement(reference, _ds("DigestValue")).text = base64.b64encode(value).decode("ascii")


def _qualifying_properties(signature: etree._Element, signature_id: str, certificate: x509.Certificate,
                           now: datetime) -> etree._Element:
    """``ds:Object/xades:QualifyingProperties/xades:SignedProperties``; returns SignedProperties."""
    holder = etree.SubElement(signature, _ds("Object"))
    qualifying = etree.SubElement(holder, _xades("QualifyingProperties"), nsmap={"xades": XADES_NS},
                                  Target=f"#{signature_id}")
    properties = etree.SubElement(qualifying, _xades("SignedProperties"), Id=f"{signature_id}-signedprops")
    signed = etree.SubElement(properties, _xades("SignedSignatureProperties"))
    etree.SubElement(signed, _xades("SigningTime")).text = format_instant(now)
    cert = etree.SubElement(etree.SubElement(signed, _xades("SigningCertificate")), _xades("Cert"))
    cert_digest = etree.SubElement(cert, _xades("CertDigest"))
    etree.SubElement(cert_digest, _ds("DigestMethod"), Algorithm=DIGEST_SHA256)
    etree.SubElement(cert_digest, _ds("DigestValue")).text = base64.b64encode(_certificate_digest(certificate)).decode()
    issuer_serial = etree.SubElement(cert, _xades("IssuerSerial"))
    etree.SubElement(issuer_serial, _ds("X509IssuerName")).text = certificate.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, _ds("X509SerialNumber")).text = str(certificate.serial_number)
    return properties


def _certificate_digest(certificate: x509.Certificate) -> bytes:
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()


def verify(xades_bytes: bytes, content: bytes, *, trusted_ca: x509.Certificate, now: Clock | datetime = utc_now,
           blob_id: str | None = None, require_timestamp: bool = False) -> VerifiedXades:
    """Check a XAdES over ``content`` (the file its transforms yield); ``SecurityRefusal`` says what failed.

    ``blob_id``, when given, is the Id the content reference must name; ``require_timestamp``
    requires the XAdES-T signature time-stamp (and checks it whenever it is there).
    """
    moment = aware(now() if callable(now) else now)
    signature = _parse(xades_bytes)
    signed_info = _one(signature, _ds("SignedInfo"), "SignedInfo")
    c14n = _one(signed_info, _ds("CanonicalizationMethod"), "CanonicalizationMethod").get("Algorithm")
    if c14n != EXC_C14N:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"The XAdES SignedInfo is canonicalised with {c14n}; exclusive C14N is required.")
    method = _one(signed_info, _ds("SignatureMethod"), "SignatureMethod").get("Algorithm") or ""
    if method not in SIGNATURE_METHODS:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED, f"The XAdES signature method {method or '(none)'} is "
                                                             "refused; use RSA-SHA256 or ECDSA-SHA256/384.")
    properties = _signed_properties(signature)
    content_references, property_references = [], []
    for reference in signed_info.iterfind(_ds("Reference")):
        is_properties = reference.get("Type") == SIGNED_PROPERTIES_TYPE
        (property_references if is_properties else content_references).append(reference)
    if len(content_references) != 1 or len(property_references) != 1:
        raise SecurityRefusal(RefusalCode.MALFORMED,
                              "The XAdES must reference exactly one blob and its SignedProperties "
                              f"({len(content_references)} and {len(property_references)} found).")
    signed_id = _check_content_reference(content_references[0], content, blob_id)
    _check_properties_reference(property_references[0], properties)
    certificate = key_info_certificate(signature)
    if certificate is None:
        raise SecurityRefusal(RefusalCode.TOKEN_MISSING, "The XAdES has no readable X509Certificate in its KeyInfo.")
    value = decode_base64(_one(signature, _ds("SignatureValue"), "SignatureValue").text, "XAdES signature value")
    if not verify_value(certificate.public_key(), method, canonicalize(signed_info), value):
        raise SecurityRefusal(RefusalCode.SIGNATURE_INVALID,
                              f"The XAdES signature value does not verify with the key of "
                              f"{describe_certificate(certificate)}: SignedInfo was altered or signed with another key.")
    signing_time = _check_signed_properties(properties, certificate)
    check_certificate(certificate, trusted_ca, moment)
    stamped = check_signature_timestamp(signature, trusted_ca=trusted_ca, now=moment)
    if stamped is None and require_timestamp:
        raise SecurityRefusal(RefusalCode.TIMESTAMP_MISSING,
                              "The XAdES has no signature time-stamp (UnsignedSignatureProperties/"
                              "SignatureTimeStamp): it is XAdES-BES, and XAdES-T is required.")
    log.debug("XAdES of #%s by %s verified", signed_id, describe_certificate(certificate))
    return VerifiedXades(certificate, signing_time, stamped, signed_id)


def _parse(xades_bytes: bytes) -> etree._Element:
    if not xades_bytes or not xades_bytes.strip():
        raise SecurityRefusal(RefusalCode.UNSIGNED, "There is no XAdES (the Xades-t element is missing or empty).")
    return parse_root(xades_bytes, _ds("Signature"), "XAdES")


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = [child for child in parent if child.tag == tag]
    if len(found) != 1:
        raise SecurityRefusal(RefusalCode.MALFORMED, f"The XAdES must hold exactly one {what} ({len(found)} found).")
    return found[0]


def _signed_properties(signature: etree._Element) -> etree._Element:
    """The SignedProperties of this signature's own QualifyingProperties, found by position."""
    found = [properties for holder in signature.iterfind(_ds("Object"))
             for qualifying in holder.iterfind(_xades("QualifyingProperties"))
             if qualifying.get("Target") == f"#{signature.get('Id')}"
             for properties in qualifying.iterfind(_xades("SignedProperties"))]
    if len(found) != 1:
        raise SecurityRefusal(RefusalCode.MALFORMED,
                              "The signature holds no XAdES QualifyingProperties/SignedProperties targeting it "
                              f"({len(found)} found): it is not a XAdES.")
    return found[0]


def _reference_digest(reference: etree._Element, what: str) -> tuple[str, bytes]:
    method = (reference.find(_ds("DigestMethod")).get("Algorithm")
              if reference.find(_ds("DigestMethod")) is not None else "") or ""
    if method not in DIGEST_METHODS:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"The digest method {method or '(none)'} of the {what} is refused; use SHA-256.")
    return method, decode_base64(reference.findtext(_ds("DigestValue")), f"digest of the {what}")


def _transforms(reference: etree._Element) -> list[str | None]:
    return [t.get("Algorithm") for t in reference.iterfind(f"{_ds('Transforms')}/{_ds('Transform')}")]


def _check_content_reference(reference: etree._Element, content: bytes, blob_id: str | None) -> str:
    uri = reference.get("URI") or ""
    if not uri.startswith("#") or len(uri) < 2:
        raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE, f"The XAdES references {uri!r}, not a blob's '#Id'.")
    if blob_id is not None and uri != f"#{blob_id}":
        raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE,
                              f"The XAdES signs {uri}, not the blob #{blob_id} it came with.")
    transforms = _transforms(reference)
    if transforms not in _CONTENT_TRANSFORMS:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"The XAdES blob reference uses the transforms {transforms}; base64 then, for a "
                              "deflated blob, optional-deflate are expected.")
    method, expected = _reference_digest(reference, f"blob {uri}")
    if not hmac.compare_digest(digest(method, content), expected):
        raise SecurityRefusal(RefusalCode.DIGEST_MISMATCH,
                              f"The content does not match the XAdES digest of {uri}: the file was changed after it "
                              "was signed, or the XAdES belongs to another file.")
    return uri[1:]


def _check_properties_reference(reference: etree._Element, properties: etree._Element) -> None:
    if reference.get("URI") != f"#{properties.get('Id')}":
        raise SecurityRefusal(RefusalCode.AMBIGUOUS_REFERENCE,
                              f"The SignedProperties reference {reference.get('URI')!r} does not name the "
                              "signature's own SignedProperties.")
    if _transforms(reference) != [EXC_C14N]:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              "The SignedProperties reference must use exclusive C14N as its only transform.")
    method, expected = _reference_digest(reference, "SignedProperties")
    if not hmac.compare_digest(digest(method, canonicalize(properties)), expected):
        raise SecurityRefusal(RefusalCode.DIGEST_MISMATCH,
                              "The XAdES SignedProperties (signing time, signing certificate) were changed after "
                              "signing.")


def _check_signed_properties(properties: etree._Element, certificate: x509.Certificate) -> datetime:
    signed = properties.find(_xades("SignedSignatureProperties"))
    signing_time = parse_instant(signed.findtext(_xades("SigningTime")) if signed is not None else None)
    if signing_time is None:
        raise SecurityRefusal(RefusalCode.MALFORMED, "The XAdES SignedProperties give no valid SigningTime.")
    cert_digest = signed.find(f"{_xades('SigningCertificate')}/{_xades('Cert')}/{_xades('CertDigest')}")
    if cert_digest is None:
        raise SecurityRefusal(RefusalCode.MALFORMED, "The XAdES SignedProperties name no SigningCertificate.")
    method, expected = _reference_digest(cert_digest, "SigningCertificate")
    if not hmac.compare_digest(digest(method, certificate.public_bytes(Encoding.DER)), expected):
        raise SecurityRefusal(RefusalCode.SIGNATURE_INVALID,
                              f"The XAdES SigningCertificate is not the certificate of its KeyInfo "
                              f"({describe_certificate(certificate)}).")
    return signing_time
