"""XML-DSig as the eHealth profile uses it: exclusive C14N, SHA-2 digests, RSA and ECDSA values.

``sign_elements`` appends a ``ds:Signature`` over elements referenced by Id; ``verify_signature``
checks one, resolving each reference only through the caller's ``resolve`` (that is where the
caller says where a reference may point: see ``verify.py``).  Only exclusive C14N and SHA-2
algorithms are accepted; SHA-1 was refused by the platform in 2023.

Why our own XML-DSig code (lxml's C14N + ``cryptography``) rather than a general library: the
profile is small and fixed, and verification must resolve a reference only to the elements where
it is expected, with an ``Id`` that occurs exactly once in the document.  That is the defence
against signature wrapping, which a generic "find the element with this Id" lookup does not give.
libxmlsec1 verifies what this module signs (see the tests).
"""
from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Sequence
from copy import deepcopy

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from lxml import etree

from unified_messaging.mycarenet.wsse.refusals import RefusalCode, SecurityRefusal
from unified_messaging.mycarenet.wsse.utils import DS_NS, certificate_from_base64, children

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

DIGEST_METHODS: dict[str, type[hashes.HashAlgorithm]] = {
    "http://www.w3.org/2001/04/xmlenc#sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashes.SHA512,
}
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
SIGNATURE_METHODS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    RSA_SHA256: ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    ECDSA_SHA256: ("ec", hashes.SHA256),
    ECDSA_SHA384: ("ec", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512),
}


def decode_base64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except binascii.Error:
        raise SecurityRefusal(RefusalCode.MALFORMED, f"The {what} is not valid base64.") from None


def canonicalize(element: etree._Element, inclusive_prefixes: Sequence[str] = ()) -> bytes:
    """Exclusive C14N 1.0 (without comments) of ``element`` and its descendants."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False,
                          inclusive_ns_prefixes=list(inclusive_prefixes) or None)


def digest(method: str, data: bytes) -> bytes:
    algorithm = DIGEST_METHODS[method]()
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


def sign_value(key: PrivateKeyTypes, method: str, data: bytes) -> bytes:
    kind, algorithm = SIGNATURE_METHODS[method]
    if kind == "rsa":
        return key.sign(data, padding.PKCS1v15(), algorithm())
    # XML-DSig wants r || s, each as long as the curve order (RFC 4050 / RFC 6931), not DER.
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify_value(public_key: PublicKeyTypes, method: str, data: bytes, value: bytes) -> bool:
    kind, algorithm = SIGNATURE_METHODS[method]
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
        digests.append((target_id, base64.b64encode(digest(DIGEST_SHA256, canonicalize(element))).decode()))
    method = signature_method_for(key)
    signature = etree.SubElement(parent, f"{{{DS_NS}}}Signature", nsmap={"ds": DS_NS})
    if signature_id:
        signature.set("Id", signature_id)
    signed_info = etree.SubElement(signature, f"{{{DS_NS}}}SignedInfo")
    etree.SubElement(signed_info, f"{{{DS_NS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, f"{{{DS_NS}}}SignatureMethod", Algorithm=method)
    for target_id, digest_value in digests:
        reference = etree.SubElement(signed_info, f"{{{DS_NS}}}Reference", URI=f"#{target_id}")
        transforms = etree.SubElement(reference, f"{{{DS_NS}}}Transforms")
        if enveloped:
            etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=ENVELOPED_SIGNATURE)
        etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=EXC_C14N)
        etree.SubElement(reference, f"{{{DS_NS}}}DigestMethod", Algorithm=DIGEST_SHA256)
        etree.SubElement(reference, f"{{{DS_NS}}}DigestValue").text = digest_value
    value = sign_value(key, method, canonicalize(signed_info))
    etree.SubElement(signature, f"{{{DS_NS}}}SignatureValue").text = base64.b64encode(value).decode()
    etree.SubElement(signature, f"{{{DS_NS}}}KeyInfo").append(key_info)
    return signature


def _inclusive_prefixes(method_element: etree._Element) -> list[str]:
    inclusive = method_element.find(f"{{{EXC_C14N}}}InclusiveNamespaces")
    if inclusive is None:
        return []
    return (inclusive.get("PrefixList") or "").split()


def signature_prefixes(signature: etree._Element) -> list[str]:
    """Every prefix a signature's canonicalisations keep from the context (its SignedInfo's and its
    references' ``InclusiveNamespaces``), sorted: canonicalising a signed element with all of them
    captures everything its verification reads."""
    prefixes: set[str] = set()
    for method in signature.iterfind(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}CanonicalizationMethod"):
        prefixes.update(_inclusive_prefixes(method))
    for transform in signature.iterfind(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference/{{{DS_NS}}}Transforms/"
                                        f"{{{DS_NS}}}Transform"):
        prefixes.update(_inclusive_prefixes(transform))
    return sorted(prefixes)


def _only_child(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = children(parent, tag)
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
    if method not in SIGNATURE_METHODS:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"The signature method {method or '(none)'} is refused; use RSA-SHA256 or "
                              "ECDSA-SHA256/384.")
    references = children(signed_info, f"{{{DS_NS}}}Reference")
    if not references:
        raise SecurityRefusal(RefusalCode.MALFORMED, "The signature references nothing.")
    covered = []
    for reference in references:
        covered.append(_check_reference(reference, signature, resolve, enveloping))
    value = decode_base64(_only_child(signature, f"{{{DS_NS}}}SignatureValue", "SignatureValue").text,
                           "signature value")
    if not verify_value(public_key, method, canonicalize(signed_info, _inclusive_prefixes(c14n)), value):
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
    if digest_method not in DIGEST_METHODS:
        raise SecurityRefusal(RefusalCode.ALGORITHM_REFUSED,
                              f"The digest method {digest_method or '(none)'} of {uri} is refused; use SHA-256.")
    if target is enveloping:
        data = _canonical_without(target, signature, prefixes)
    else:
        data = canonicalize(target, prefixes)
    expected_digest = decode_base64(reference.findtext(f"{{{DS_NS}}}DigestValue"), f"digest of {uri}")
    if not hmac.compare_digest(digest(digest_method, data), expected_digest):
        raise SecurityRefusal(RefusalCode.DIGEST_MISMATCH,
                              f"The signed element {etree.QName(target).localname} ({uri}) was changed after it "
                              "was signed.")
    return target


def key_info_certificate(signature: etree._Element) -> x509.Certificate | None:
    text = signature.find(f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate")
    if text is None:
        return None
    try:
        return certificate_from_base64(text.text)
    except ValueError:
        return None
