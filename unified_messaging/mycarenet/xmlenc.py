"""XML Encryption (W3C xmlenc) of one element, with ``cryptography``: what MemberData answers use.

The platform encrypts each answer for the caller's *encryption* certificate (the second key of an
eHealth keystore, not the authentication one): an ``xenc:EncryptedData`` of type ``Element`` whose
content is the element encrypted with a fresh AES key, that key itself encrypted with RSA-OAEP for
the certificate (``xenc:EncryptedKey`` in the data's ``ds:KeyInfo``, or beside it as in a SAML
``EncryptedAssertion``).  The key's certificate is named by issuer and serial number, so a keystore
with several encryption keys picks the right one.

Decryption accepts AES-128/256 in CBC (xmlenc 1.0) and GCM (xmlenc 1.1) mode, and RSA-OAEP with
SHA-1 (``rsa-oaep-mgf1p``, the usual one) or the digest the ``DigestMethod`` names.
"""
from __future__ import annotations

import base64
import os
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.xmlsafe import parse_xml

XENC_NS = "http://www.w3.org/2001/04/xmlenc#"
XENC11_NS = "http://www.w3.org/2009/xmlenc11#"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
TYPE_ELEMENT = XENC_NS + "Element"
RSA_OAEP_MGF1P = XENC_NS + "rsa-oaep-mgf1p"
RSA_OAEP = XENC11_NS + "rsa-oaep"
AES_CBC = {XENC_NS + "aes128-cbc": 16, XENC_NS + "aes256-cbc": 32}
AES_GCM = {XENC11_NS + "aes128-gcm": 16, XENC11_NS + "aes256-gcm": 32}
DIGESTS = {DS_NS + "sha1": hashes.SHA1, "http://www.w3.org/2001/04/xmlenc#sha256": hashes.SHA256}

_NS = {"xenc": XENC_NS, "ds": DS_NS}


class DecryptionError(ValueError):
    """An encrypted element cannot be decrypted with the keys at hand; the message says why."""


def encrypt_element(element: etree._Element, certificate: x509.Certificate, *,
                    algorithm: str = XENC_NS + "aes256-cbc") -> etree._Element:
    """``element`` as an ``xenc:EncryptedData`` readable only with ``certificate``'s private key."""
    public_key = certificate.public_key()
    if not isinstance(public_key, RSAPublicKey):
        raise ValueError("XML Encryption here needs an RSA certificate")
    size = AES_CBC.get(algorithm) or AES_GCM.get(algorithm)
    if size is None:
        raise ValueError(f"unsupported algorithm {algorithm}")
    key = os.urandom(size)
    plain = etree.tostring(element, encoding="UTF-8")
    if algorithm in AES_GCM:
        nonce = os.urandom(12)
        cipher_value = nonce + AESGCM(key).encrypt(nonce, plain, None)
    else:
        iv = os.urandom(16)
        padder = symmetric_padding.PKCS7(128).padder()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        cipher_value = iv + encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    wrapped = public_key.encrypt(key, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(),
                                                   label=None))
    data = etree.Element(f"{{{XENC_NS}}}EncryptedData", nsmap={"xenc": XENC_NS, "ds": DS_NS}, Type=TYPE_ELEMENT)
    etree.SubElement(data, f"{{{XENC_NS}}}EncryptionMethod", Algorithm=algorithm)
    key_info = etree.SubElement(data, f"{{{DS_NS}}}KeyInfo")
    encrypted_key = etree.SubElement(key_info, f"{{{XENC_NS}}}EncryptedKey")
    etree.SubElement(encrypted_key, f"{{{XENC_NS}}}EncryptionMethod", Algorithm=RSA_OAEP_MGF1P)
    serial = etree.SubElement(etree.SubElement(etree.SubElement(encrypted_key, f"{{{DS_NS}}}KeyInfo"),
                                               f"{{{DS_NS}}}X509Data"), f"{{{DS_NS}}}X509IssuerSerial")
    etree.SubElement(serial, f"{{{DS_NS}}}X509IssuerName").text = certificate.issuer.rfc4514_string()
    etree.SubElement(serial, f"{{{DS_NS}}}X509SerialNumber").text = str(certificate.serial_number)
    _cipher_value(encrypted_key, wrapped)
    _cipher_value(data, cipher_value)
    return data


def decrypt_element(data: etree._Element, entries: Iterable[KeyEntry],
                    encrypted_keys: Iterable[etree._Element] = ()) -> etree._Element:
    """The element ``data`` (an ``xenc:EncryptedData``) holds, decrypted with one of ``entries``.

    ``encrypted_keys`` are ``xenc:EncryptedKey`` elements found beside the data (SAML puts them in
    ``EncryptedAssertion``); those in the data's own ``KeyInfo`` are always tried.
    """
    entries = list(entries)
    if not entries:
        raise DecryptionError("the keystore holds no encryption key (the second key of an eHealth keystore)")
    algorithm = _algorithm(data)
    candidates = list(data.iterfind("ds:KeyInfo/xenc:EncryptedKey", _NS)) + list(encrypted_keys)
    if not candidates:
        raise DecryptionError("the encrypted answer carries no encrypted key")
    key = _unwrap(candidates, entries)
    value = _cipher_bytes(data)
    try:
        if algorithm in AES_GCM:
            plain = AESGCM(key).decrypt(value[:12], value[12:], None)
        elif algorithm in AES_CBC:
            decryptor = Cipher(algorithms.AES(key), modes.CBC(value[:16])).decryptor()
            padded = decryptor.update(value[16:]) + decryptor.finalize()
            plain = padded[:-padded[-1]]  # xmlenc padding: the last byte counts the padding bytes
        else:
            raise DecryptionError(f"the answer is encrypted with {algorithm}, which the gateway does not support")
    except (ValueError, IndexError) as exc:
        raise DecryptionError(f"the encrypted answer cannot be decrypted ({type(exc).__name__})") from None
    if data.get("Type", TYPE_ELEMENT) != TYPE_ELEMENT:
        raise DecryptionError(f"encrypted data of type {data.get('Type')} is not an element")
    return parse_xml(plain)


def _unwrap(candidates: list[etree._Element], entries: list[KeyEntry]) -> bytes:
    """The AES key: from the EncryptedKey naming one of our certificates, else any that opens."""
    ordered = sorted(((k, e) for k in candidates for e in entries), key=lambda pair: not _names(pair[0], pair[1]))
    for encrypted_key, entry in ordered:
        private_key = entry.private_key
        if not isinstance(private_key, RSAPrivateKey):
            continue
        method = encrypted_key.find("xenc:EncryptionMethod", _NS)
        algorithm = method.get("Algorithm") if method is not None else RSA_OAEP_MGF1P
        if algorithm not in (RSA_OAEP_MGF1P, RSA_OAEP):
            raise DecryptionError(f"the answer's key is wrapped with {algorithm}, which the gateway does not support")
        digest_node = method.find("ds:DigestMethod", _NS) if method is not None else None
        digest = DIGESTS.get(digest_node.get("Algorithm", "") if digest_node is not None else DS_NS + "sha1")
        if digest is None:
            raise DecryptionError("the answer's key is wrapped with an unsupported digest")
        try:
            return private_key.decrypt(_cipher_bytes(encrypted_key),
                                       padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None))
        except ValueError:
            continue
    raise DecryptionError("the answer is encrypted for another encryption certificate than the keystore's "
                          f"({len(entries)} encryption key(s) tried): renew the keystore's encryption key "
                          "at eHealth or use the keystore the answer was meant for")


def _names(encrypted_key: etree._Element, entry: KeyEntry) -> bool:
    serial = encrypted_key.findtext("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509SerialNumber",
                                    namespaces=_NS)
    return bool(serial) and serial.strip() == str(entry.certificate.serial_number)


def _algorithm(data: etree._Element) -> str:
    method = data.find("xenc:EncryptionMethod", _NS)
    if method is None or not method.get("Algorithm"):
        raise DecryptionError("the encrypted answer does not name its algorithm")
    return method.get("Algorithm", "")


def _cipher_value(parent: etree._Element, value: bytes) -> None:
    cipher_data = etree.SubElement(parent, f"{{{XENC_NS}}}CipherData")
    etree.SubElement(cipher_data, f"{{{XENC_NS}}}CipherValue").text = base64.b64encode(value).decode("ascii")


def _cipher_bytes(parent: etree._Element) -> bytes:
    text = parent.findtext("xenc:CipherData/xenc:CipherValue", namespaces=_NS)
    if not text:
        raise DecryptionError("an encrypted element has no CipherValue")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        raise DecryptionError("an encrypted element's CipherValue is not base64") from None
