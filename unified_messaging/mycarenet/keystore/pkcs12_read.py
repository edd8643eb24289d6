"""Reading a PKCS#12 keystore with every key it holds (``load_keystore``, ``read_keystore``).

``cryptography.hazmat.primitives.serialization.pkcs12`` returns only the first key of an eHealth
keystore, so this module walks the PFX structure itself with asn1crypto: it checks the MAC,
decrypts the safes and shrouded keys (``pbe.py``) and pairs each key with its certificate.  Errors
are ``KeystoreError`` with a message for the person installing the gateway.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from asn1crypto import algos, cms, pkcs12
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.mycarenet.keystore.certificates import is_issued_by, public_key_der
from unified_messaging.mycarenet.keystore.entries import KeyEntry, Keystore
from unified_messaging.mycarenet.keystore.errors import KeystoreError
from unified_messaging.mycarenet.keystore.pbe import (
    KDF_MAC, bmp_password_variants, checked_iterations, decrypt, hashlib_name, pkcs12_kdf,
)

logger = logging.getLogger(__name__)

_NOT_A_KEYSTORE = (
    "This file is not a PKCS#12 keystore (.p12 / .pfx), or it is damaged (truncated?). Use the .p12 "
    "file exactly as the eHealth certificate manager saved it (copy it again, in binary mode)."
)
_WRONG_PASSWORD = (
    "The keystore password is wrong (the keystore's integrity check failed; if you are sure of the "
    "password, the file was damaged: copy it again). Type the password chosen when the eHealth "
    "certificate was made; it is case-sensitive."
)


def load_keystore(data: bytes, password: str) -> Keystore:
    """Read every key and certificate of a PKCS#12 keystore, whatever the number of keys.

    Keys and certificates are paired by ``localKeyId``, else by public key.  Raises
    ``KeystoreError`` for a wrong password, a file that is not a PKCS#12 keystore, or a scheme
    this module cannot decrypt.
    """
    _refuse_other_formats(data)
    try:
        bags = _PfxReader(data, password).read()
        entries, certificates = _pair(bags)
    except KeystoreError:
        raise
    except UnsupportedAlgorithm as exc:
        raise KeystoreError(f"The keystore holds a key of a type that is not supported ({exc}).") from exc
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        raise KeystoreError(f"{_NOT_A_KEYSTORE} (detail: {type(exc).__name__})") from exc
    logger.debug("Keystore read: %d key(s) under aliases %s, %d certificate(s)",
                 len(entries), mask_ssins_in_text(", ".join(e.alias for e in entries)), len(certificates))
    return Keystore(entries, certificates)


def read_keystore(path: Path, password: str) -> Keystore:
    """``load_keystore`` on a file; errors name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeystoreError(f"The keystore {path} cannot be read ({exc.strerror}). Check the path and "
                            "that the gateway's user may read it.") from exc
    try:
        return load_keystore(data, password)
    except KeystoreError as exc:
        raise KeystoreError(f"{path}: {exc}") from exc


def _refuse_other_formats(data: bytes) -> None:
    if not data:
        raise KeystoreError("The keystore file is empty. " + _NOT_A_KEYSTORE)
    if data[:4] in (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"):
        raise KeystoreError(
            "This file is a Java keystore (JKS/JCEKS), not a PKCS#12 keystore. Convert it with: "
            "keytool -importkeystore -srckeystore in.jks -destkeystore out.p12 -deststoretype PKCS12"
        )
    if data.lstrip()[:10] == b"-----BEGIN":
        raise KeystoreError(
            "This file is a PEM text file, not a PKCS#12 keystore. Build one with: openssl pkcs12 "
            "-export -in certificate.pem -inkey key.pem -name authentication -out keystore.p12"
        )


@dataclass(frozen=True)
class _Bag:
    is_key: bool
    der: bytes
    friendly_name: str | None
    local_key_id: bytes | None


class _PfxReader:
    """Walks a PFX: checks the MAC, decrypts the safes and the shrouded keys, yields the bags."""

    _PBMAC1 = "1.2.840.113549.1.5.14"

    def __init__(self, data: bytes, password: str) -> None:
        self._data = data
        self._utf8_password = password.encode("utf-8")
        self._bmp_passwords = bmp_password_variants(password)

    def read(self) -> list[_Bag]:
        pfx = pkcs12.Pfx.load(self._data, strict=True)
        auth_safe = pfx["auth_safe"]
        if auth_safe["content_type"].native != "data":
            raise KeystoreError("The keystore uses public-key integrity (signed PKCS#12), which is not "
                                "supported. Export it again with a password.")
        self._check_mac(pfx, auth_safe["content"].native)
        bags: list[_Bag] = []
        for content_info in pfx.authenticated_safe:
            bags.extend(self._walk(self._safe_contents(content_info)))
        return bags

    def _check_mac(self, pfx: pkcs12.Pfx, signed: bytes) -> None:
        mac_data = pfx["mac_data"]
        if mac_data.native is None:
            logger.warning("The keystore has no integrity check (MAC); the password is checked on decryption")
            return
        algorithm = mac_data["mac"]["digest_algorithm"]["algorithm"].native
        if algorithm in (self._PBMAC1, "pbmac1"):
            raise KeystoreError("The keystore's integrity check uses PBMAC1, which is not supported. "
                                "Export it again with: openssl pkcs12 -export -macalg sha256 ...")
        hash_name = hashlib_name(algorithm)
        salt = mac_data["mac_salt"].native
        iterations = checked_iterations(mac_data["iterations"].native)
        expected = mac_data["mac"]["digest"].native
        size = hashlib.new(hash_name).digest_size
        for bmp_password in self._bmp_passwords:
            key = pkcs12_kdf(hash_name, bmp_password, salt, KDF_MAC, iterations, size)
            if hmac.compare_digest(hmac.new(key, signed, hash_name).digest(), expected):
                self._bmp_passwords = (bmp_password,)
                return
        raise KeystoreError(_WRONG_PASSWORD)

    def _safe_contents(self, content_info: cms.ContentInfo) -> pkcs12.SafeContents:
        kind = content_info["content_type"].native
        if kind == "data":
            return pkcs12.SafeContents.load(content_info["content"].native)
        if kind == "encrypted_data":
            encrypted = content_info["content"]["encrypted_content_info"]
            plain = self._decrypt(encrypted["content_encryption_algorithm"],
                                  encrypted["encrypted_content"].native)
            return pkcs12.SafeContents.load(plain)
        if kind == "enveloped_data":
            raise KeystoreError("The keystore is encrypted for a recipient's public key (enveloped "
                                "PKCS#12), which is not supported. Export it again with a password.")
        logger.warning("Keystore: skipped a content of type %s", kind)
        return pkcs12.SafeContents([])

    def _walk(self, safe_contents: pkcs12.SafeContents) -> Iterator[_Bag]:
        for bag in safe_contents:
            bag_id = bag["bag_id"].native
            value = bag["bag_value"]
            name, local_key_id = _bag_attributes(bag)
            if bag_id == "pkcs8_shrouded_key_bag":
                der = self._decrypt(value["encryption_algorithm"], value["encrypted_data"].native)
                yield _Bag(True, der, name, local_key_id)
            elif bag_id == "key_bag":
                yield _Bag(True, value.untag().dump(), name, local_key_id)
            elif bag_id == "cert_bag":
                if value["cert_id"].native != "x509":
                    logger.warning("Keystore: skipped a certificate of type %s", value["cert_id"].native)
                    continue
                yield _Bag(False, value["cert_value"].contents, name, local_key_id)
            elif bag_id == "safe_contents":
                yield from self._walk(value)
            else:
                logger.debug("Keystore: skipped a %s bag", bag_id)

    def _decrypt(self, algorithm: algos.EncryptionAlgorithm, data: bytes) -> bytes:
        return decrypt(algorithm, self._utf8_password, self._bmp_passwords[0], data)


def _bag_attributes(bag: pkcs12.SafeBag) -> tuple[str | None, bytes | None]:
    name = local_key_id = None
    attributes = bag["bag_attributes"]
    if attributes.native is None:
        return None, None
    for attribute in attributes:
        kind = attribute["type"].native
        values = attribute["values"]
        if not len(values):
            continue
        if kind == "friendly_name":
            name = values[0].native
        elif kind == "local_key_id":
            local_key_id = values[0].native
    return name, local_key_id


def _pair(bags: list[_Bag]) -> tuple[list[KeyEntry], list[x509.Certificate]]:
    """Pair each key with its certificate: same ``localKeyId`` and public key, else same public key."""
    certificate_bags = [(bag, x509.load_der_x509_certificate(bag.der)) for bag in bags if not bag.is_key]
    certificates = [certificate for _, certificate in certificate_bags]
    entries: list[KeyEntry] = []
    used_aliases: set[str] = set()
    for number, bag in enumerate((b for b in bags if b.is_key), start=1):
        private_key = serialization.load_der_private_key(bag.der, password=None)
        wanted = public_key_der(private_key)
        matching = [(b, c) for b, c in certificate_bags if public_key_der(c) == wanted]
        same_id = [(b, c) for b, c in matching if bag.local_key_id and b.local_key_id == bag.local_key_id]
        chosen = same_id or sorted(matching, key=lambda pair: pair[1].not_valid_after_utc, reverse=True)
        if not chosen:
            logger.warning("Keystore: key %d has no certificate and was left out", number)
            continue
        certificate_bag, certificate = chosen[0]
        alias = _unique(bag.friendly_name or certificate_bag.friendly_name
                        or (bag.local_key_id.hex() if bag.local_key_id else f"key-{number}"), used_aliases)
        entries.append(KeyEntry(alias, private_key, certificate, _chain(certificate, certificates)))
    return entries, certificates


def _unique(alias: str, used: set[str]) -> str:
    candidate, number = alias, 2
    while candidate in used:
        candidate, number = f"{alias}-{number}", number + 1
    used.add(candidate)
    return candidate


def _chain(certificate: x509.Certificate, pool: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    chain = [certificate]
    while len(chain) < 10:
        current = chain[-1]
        if is_issued_by(current, current):
            break
        issuer = next((c for c in pool if c not in chain and is_issued_by(current, c)), None)
        if issuer is None:
            break
        chain.append(issuer)
    return tuple(chain)
