"""Writing a PKCS#12 keystore the way modern OpenSSL does (``dump_keystore``).

PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for the keys and the certificates, an HMAC-SHA256 MAC,
every entry as a separate key under its alias.  The development PKI writes its keystores with it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from typing import Iterable

from asn1crypto import cms, core, keys, pkcs12
from cryptography.hazmat.primitives import serialization

from unified_messaging.mycarenet.keystore.entries import KeyEntry
from unified_messaging.mycarenet.keystore.pbe import KDF_MAC, bmp_password_variants, pbes2_encrypt, pkcs12_kdf


def dump_keystore(entries: Iterable[KeyEntry], password: str, *, iterations: int = 10_000) -> bytes:
    """Write a PKCS#12 keystore the way modern OpenSSL does, with every entry as a separate key.

    Certificates (each entry's chain) go in one encrypted safe; keys in a plain safe as shrouded
    key bags.  Both use PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC; the MAC is HMAC-SHA256.  Each
    entry's key and certificate carry its alias as ``friendlyName`` and the same ``localKeyId``
    (SHA-1 of the certificate, as OpenSSL does), in the order given.
    """
    entries = list(entries)
    utf8_password = password.encode("utf-8")
    key_bags: list[pkcs12.SafeBag] = []
    certificate_bags: list[pkcs12.SafeBag] = []
    # An entry's certificate may be in another entry's chain (encryption certificates are issued
    # by the authentication certificate): it is written once, with its own entry's attributes.
    leaves = {entry.certificate.public_bytes(serialization.Encoding.DER) for entry in entries}
    written: set[bytes] = set()
    for entry in entries:
        certificate_der = entry.certificate.public_bytes(serialization.Encoding.DER)
        attributes = _attributes(entry.alias, hashlib.sha1(certificate_der).digest())
        key_der = entry.private_key.private_bytes(serialization.Encoding.DER,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption())
        algorithm, encrypted = pbes2_encrypt(utf8_password, key_der, iterations)
        key_bags.append(pkcs12.SafeBag({
            "bag_id": "pkcs8_shrouded_key_bag",
            "bag_value": keys.EncryptedPrivateKeyInfo({"encryption_algorithm": algorithm,
                                                       "encrypted_data": encrypted}),
            "bag_attributes": attributes,
        }))
        for number, certificate in enumerate(entry.chain):
            der = certificate.public_bytes(serialization.Encoding.DER)
            if der in written or (number > 0 and der in leaves):
                continue
            written.add(der)
            bag = {"bag_id": "cert_bag",
                   "bag_value": pkcs12.CertBag({"cert_id": "x509", "cert_value": core.ParsableOctetString(der)})}
            if number == 0:
                bag["bag_attributes"] = attributes
            certificate_bags.append(pkcs12.SafeBag(bag))
    algorithm, encrypted = pbes2_encrypt(utf8_password, pkcs12.SafeContents(certificate_bags).dump(), iterations)
    authenticated_safe = pkcs12.AuthenticatedSafe([
        cms.ContentInfo({"content_type": "encrypted_data", "content": cms.EncryptedData({
            "version": "v0",
            "encrypted_content_info": {"content_type": "data",
                                       "content_encryption_algorithm": algorithm,
                                       "encrypted_content": encrypted},
        })}),
        cms.ContentInfo({"content_type": "data",
                         "content": core.OctetString(pkcs12.SafeContents(key_bags).dump())}),
    ]).dump()
    mac_salt = os.urandom(16)
    mac_key = pkcs12_kdf("sha256", bmp_password_variants(password)[0], mac_salt, KDF_MAC, iterations, 32)
    return pkcs12.Pfx({
        "version": "v3",
        "auth_safe": {"content_type": "data", "content": core.OctetString(authenticated_safe)},
        "mac_data": {
            "mac": {"digest_algorithm": {"algorithm": "sha256", "parameters": core.Null()},
                    "digest": hmac.new(mac_key, authenticated_safe, "sha256").digest()},
            "mac_salt": mac_salt,
            "iterations": iterations,
        },
    }).dump()


def _attributes(alias: str, local_key_id: bytes) -> pkcs12.Attributes:
    return pkcs12.Attributes([
        {"type": "friendly_name", "values": [core.BMPString(alias)]},
        {"type": "local_key_id", "values": [core.OctetString(local_key_id)]},
    ])
