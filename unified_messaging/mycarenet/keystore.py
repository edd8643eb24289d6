"""Care provider keystores: eHealth-style PKCS#12 files with several keys, and who they belong to.

An eHealth keystore (the ``.p12`` that the eHealth certificate manager makes) holds several private
keys, each under an alias (the bag's ``friendlyName``):

* ``authentication``: the authentication key, whose certificate is issued by the eHealth CA. It signs
  the STS request and, as holder-of-key, every business call.
* one or more encryption keys, named by a serial number, used for end-to-end encryption (ETK).

``cryptography.hazmat.primitives.serialization.pkcs12`` returns only the first key of such a file,
so this module reads the PFX structure itself: asn1crypto for the ASN.1, ``hashlib`` for the key
derivations and ``cryptography`` for the ciphers.  It reads what OpenSSL, Java's keytool and the
eHealth tools write: PBES2 (PBKDF2 + AES / 3DES) and the legacy PKCS#12 PBE schemes
(SHA-1 with 3DES, RC2 or RC4), with an HMAC integrity check.  ``dump_keystore`` writes what modern
OpenSSL writes (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC, HMAC-SHA256 MAC).

The authentication entry is chosen by its certificate, never by its position in the file: see
``Keystore.authentication``.  ``Identity`` reads who the certificate belongs to from its subject.

Nothing here logs or represents key material, and an SSIN only ever appears masked.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from asn1crypto import algos, cms, core, keys, pkcs12
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, TripleDES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

from unified_messaging.identifiers import mask_ssin, mask_ssins_in_text

logger = logging.getLogger(__name__)

AUTHENTICATION_ALIAS = "authentication"


class KeystoreError(Exception):
    """The keystore cannot be used: wrong password, damaged file, no usable key...

    The message is written for the person installing the gateway: it says what is wrong and what
    to do about it.
    """


# --------------------------------------------------------------------------------------------
# Who a certificate belongs to
# --------------------------------------------------------------------------------------------

class IdentifierKind(str, Enum):
    SSIN = "SSIN"
    NIHII = "NIHII"
    CBE = "CBE"
    EHP = "EHP"


_EHEALTH_MARKER = "ehealth-platform belgium"
_TAGGED = re.compile(r'^"?\s*(SSIN|CBE|EHP|NIHII11|NIHII(?:-[A-Z_-]+)?)\s*=\s*([0-9]+)\s*(?:,\s*(.*?))?\s*"?$',
                     re.IGNORECASE)
_TYPE_QUALITIES = {
    "NIHII-LABO": "labo",
    "NIHII-HOSPITAL": "hospital",
    "NIHII-PHARMACY": "pharmacy",
    "NIHII-GROUP": "groupofnurses",
    "NIHII-GROUPOFNURSES": "groupofnurses",
    "NIHII-GROUP-OF-NURSES": "groupofnurses",
    "NIHII-NURSE": "nurse",
    "NIHII-DOCTOR": "doctor",
    "NIHII-OTD_PHARMACY": "otdpharmacy",
}
_NIHII_FIRST_DIGITS = {
    "94": "groupofnurses",
    "1": "doctor",
    "3": "dentist",
    "4": "nurse",
    "5": "physiotherapist",
    "6": "pharmacist",
    "7": "hospital",
    "8": "labo",
}


@dataclass(frozen=True)
class _Tag:
    type: str
    value: str
    rest: str | None


def _tag(text: str) -> _Tag | None:
    match = _TAGGED.match(text.strip())
    if not match:
        return None
    return _Tag(match.group(1).upper(), match.group(2), match.group(3) or None)


def _quality_of_type(identifier_type: str) -> str | None:
    if identifier_type in _TYPE_QUALITIES:
        return _TYPE_QUALITIES[identifier_type]
    if identifier_type.startswith("NIHII-"):
        return identifier_type[len("NIHII-"):].lower().replace("-", "").replace("_", "")
    return None


def _quality_of_nihii(nihii: str) -> str | None:
    for prefix, quality in _NIHII_FIRST_DIGITS.items():
        if nihii.startswith(prefix):
            return quality
    return None


@dataclass(frozen=True, repr=False)
class Identity:
    """Who an eHealth certificate belongs to, read from its subject.

    eHealth writes the holder's identifier as ``TYPE=digits`` in the CN and again in an OU, next to
    the marker OU ``eHealth-platform Belgium`` and an OU with the holder's name, for example::

        CN=SSIN=<ssin>, OU=eHealth-platform Belgium, OU=<first and last name>, OU=SSIN=<ssin>,
        O=Federal Government, C=BE                                     (a person)
        CN=NIHII-LABO=81234567, OU=eHealth-platform Belgium, OU=<lab name>, OU=NIHII-LABO=...
        CN=CBE=<cbe>, <APPLICATION>, OU=eHealth-platform Belgium, OU=<APPLICATION>, OU=<org name>, ...

    What this reads, and what it assumes:

    * ``kind`` and ``value`` come from the CN's identifier (else the first tagged OU).  Types are
      SSIN, CBE, EHP, NIHII and ``NIHII-<QUALITY>`` (NIHII-LABO, NIHII-HOSPITAL, NIHII-PHARMACY,
      NIHII-GROUP for groups of nurses...); organisations' NIHII numbers are written on 8 digits
      (no qualification), so ``value`` is what the certificate says, not an 11-digit NIHII.
    * ``quality`` comes from the ``NIHII-<QUALITY>`` type (``NIHII-LABO`` -> ``labo``,
      ``NIHII-GROUP`` -> ``groupofnurses``); for a plain NIHII, from its first digits (1 doctor,
      3 dentist, 4 nurse, 5 physiotherapist, 6 pharmacist, 7 hospital, 8 labo, 94 group of nurses).
      Personal eHealth certificates (``SSIN=``) do not state a quality: it is ``None`` unless an OU
      carries a NIHII (``OU=NIHII-NURSE=...``, as the development PKI writes).  The STS token's
      attributes remain the authority on qualities.
    * ``name``: for a person, the OU that is neither tagged nor the eHealth marker; for an
      organisation, that OU when it differs from the application named after the CN's comma
      (``CBE=<cbe>, <APPLICATION>``), else the application.
    * ``ssin``, ``nihii`` and ``cbe`` collect every identifier of that family found in the CN and
      OUs (``NIHII-...`` types count as NIHII).
    """

    kind: IdentifierKind
    value: str
    identifier_type: str
    quality: str | None
    name: str | None
    not_before: datetime
    not_after: datetime
    ssin: str | None = None
    nihii: str | None = None
    cbe: str | None = None
    application: str | None = None

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate) -> Identity:
        """Read the identity; ``KeystoreError`` if the subject names no eHealth identifier."""
        common_names = _attribute_values(certificate.subject, NameOID.COMMON_NAME)
        units = _attribute_values(certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
        cn_tags = [t for t in map(_tag, common_names) if t]
        ou_tags = [t for t in map(_tag, units) if t]
        tags = cn_tags + ou_tags
        if not tags:
            raise KeystoreError(
                f"The certificate {_masked_subject(certificate)} does not name an eHealth identifier "
                "(SSIN=, NIHII=, CBE=...). Use the keystore made by the eHealth certificate manager."
            )
        primary = tags[0]
        kind = _kind_of(primary.type)
        found = {family: next((t.value for t in tags if _kind_of(t.type) is family), None)
                 for family in IdentifierKind}
        application = next((t.rest for t in cn_tags if t.rest), None)
        plain_units = [u for u in units if not _tag(u) and u.strip().lower() != _EHEALTH_MARKER]
        return cls(
            kind=kind,
            value=primary.value,
            identifier_type=primary.type,
            quality=_quality_of_tags(primary, tags),
            name=_name_of(kind, plain_units, application, certificate.subject),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            ssin=found[IdentifierKind.SSIN],
            nihii=found[IdentifierKind.NIHII],
            cbe=found[IdentifierKind.CBE],
            application=application,
        )

    @property
    def masked_value(self) -> str:
        return mask_ssin(self.value) if self.kind is IdentifierKind.SSIN else self.value

    def __str__(self) -> str:
        text = f"{self.identifier_type} {self.masked_value}"
        if self.quality:
            text += f" ({self.quality})"
        if self.name:
            text += f" {self.name}"
        return mask_ssins_in_text(text)

    def __repr__(self) -> str:
        return mask_ssins_in_text(
            f"Identity(kind={self.kind.value}, value={self.masked_value}, quality={self.quality!r}, "
            f"name={self.name!r}, not_before={self.not_before:%Y-%m-%d}, "
            f"not_after={self.not_after:%Y-%m-%d})"
        )


def _attribute_values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in name.get_attributes_for_oid(oid)]


def _kind_of(identifier_type: str) -> IdentifierKind:
    if identifier_type.startswith("NIHII"):
        return IdentifierKind.NIHII
    return IdentifierKind(identifier_type)


def _quality_of_tags(primary: _Tag, tags: list[_Tag]) -> str | None:
    for tag in [primary] + tags:
        quality = _quality_of_type(tag.type)
        if quality:
            return quality
    for tag in [primary] + tags:
        if tag.type in ("NIHII", "NIHII11"):
            return _quality_of_nihii(tag.value)
    return None


def _name_of(kind: IdentifierKind, plain_units: list[str], application: str | None,
             subject: x509.Name) -> str | None:
    if kind is IdentifierKind.SSIN:
        given = _attribute_values(subject, NameOID.GIVEN_NAME)
        surname = _attribute_values(subject, NameOID.SURNAME)
        if given or surname:
            return " ".join(given + surname)
        return plain_units[0] if plain_units else None
    others = [u for u in plain_units if u != application]
    return others[0] if others else application


def _masked_subject(certificate: x509.Certificate) -> str:
    return mask_ssins_in_text(certificate.subject.rfc4514_string())


def describe_certificate(certificate: x509.Certificate) -> str:
    """A short, log-safe description of whom a certificate is for (SSINs masked)."""
    try:
        return str(Identity.from_certificate(certificate))
    except KeystoreError:
        return _masked_subject(certificate)


# --------------------------------------------------------------------------------------------
# Keystore entries
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False, eq=False)
class KeyEntry:
    """One private key with its certificate.

    ``chain`` starts with ``certificate`` and follows the issuers found in the keystore, up to the
    root when the file holds it (as Java's ``KeyStore.getCertificateChain`` does).
    """

    alias: str
    private_key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not self.chain or self.chain[0] != self.certificate:
            object.__setattr__(self, "chain", (self.certificate,) + tuple(self.chain))

    @property
    def identity(self) -> Identity:
        return Identity.from_certificate(self.certificate)

    @property
    def is_signing(self) -> bool:
        """The certificate allows digital signatures (no key usage extension allows everything)."""
        usage = _key_usage(self.certificate)
        return usage is None or usage.digital_signature

    def __repr__(self) -> str:
        return (f"KeyEntry(alias={mask_ssins_in_text(self.alias)!r}, "
                f"certificate={describe_certificate(self.certificate)!r}, "
                f"not_after={self.certificate.not_valid_after_utc:%Y-%m-%d})")


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _is_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _public_key_der(key_or_certificate: x509.Certificate | PrivateKeyTypes) -> bytes:
    public_key = key_or_certificate.public_key()
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


class Keystore:
    """The keys of one keystore file, with the rules that say which one authenticates."""

    def __init__(self, entries: Sequence[KeyEntry], certificates: Sequence[x509.Certificate] = ()) -> None:
        self.entries: tuple[KeyEntry, ...] = tuple(entries)
        self.certificates: tuple[x509.Certificate, ...] = tuple(certificates)

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(entry.alias for entry in self.entries)

    def entry(self, alias: str) -> KeyEntry:
        for entry in self.entries:
            if entry.alias == alias:
                return entry
        raise KeyError(alias)

    @property
    def authentication(self) -> KeyEntry:
        """The entry whose certificate is the authentication certificate.

        Candidates are the entries whose certificate allows digital signatures and was not issued
        by another entry's certificate (eHealth encryption certificates are issued by the holder's
        own authentication key).  One candidate: that is it.  Several: the one under the alias
        ``authentication``.  Never "the first key in the file".
        """
        chosen, candidates = self._choose_authentication()
        if chosen is not None:
            return chosen
        aliases = ", ".join(repr(mask_ssins_in_text(e.alias)) for e in self.entries) or "none"
        if not candidates:
            raise KeystoreError(
                "The keystore holds no authentication certificate (one that allows digital "
                f"signatures); its keys are: {aliases}. Use the eHealth keystore that contains the "
                "'authentication' key."
            )
        raise KeystoreError(
            "The keystore holds several certificates that could authenticate and none is under the "
            f"alias 'authentication' ({aliases}). Keep only the eHealth keystore's own keys in it."
        )

    @property
    def identity(self) -> Identity:
        return self.authentication.identity

    @property
    def encryption_entries(self) -> tuple[KeyEntry, ...]:
        """Every entry but the authentication one whose certificate allows encryption."""
        authentication, _ = self._choose_authentication()
        return tuple(e for e in self.entries if e is not authentication and _allows_encryption(e.certificate))

    def find(self, certificate: x509.Certificate) -> KeyEntry | None:
        """The entry holding this certificate, else the one whose key matches its public key."""
        for entry in self.entries:
            if entry.certificate == certificate:
                return entry
        wanted = _public_key_der(certificate)
        for entry in self.entries:
            if _public_key_der(entry.certificate) == wanted:
                return entry
        return None

    def _choose_authentication(self) -> tuple[KeyEntry | None, list[KeyEntry]]:
        """The authentication entry (None when there is none or no way to tell), and the candidates."""
        def issued_by_another_entry(entry: KeyEntry) -> bool:
            return any(other is not entry and _is_issued_by(entry.certificate, other.certificate)
                       for other in self.entries)

        candidates = [e for e in self.entries if e.is_signing and not issued_by_another_entry(e)]
        if len(candidates) == 1:
            return candidates[0], candidates
        named = [e for e in candidates if e.alias.lower() == AUTHENTICATION_ALIAS]
        return (named[0] if len(named) == 1 else None), candidates

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Keystore({', '.join(repr(e) for e in self.entries)})"


def _allows_encryption(certificate: x509.Certificate) -> bool:
    usage = _key_usage(certificate)
    return usage is None or usage.key_encipherment or usage.data_encipherment or usage.key_agreement


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

_NOT_A_KEYSTORE = (
    "This file is not a PKCS#12 keystore (.p12 / .pfx), or it is damaged (truncated?). Use the .p12 "
    "file exactly as the eHealth certificate manager saved it (copy it again, in binary mode)."
)
_WRONG_PASSWORD = (
    "The keystore password is wrong (the keystore's integrity check failed; if you are sure of the "
    "password, the file was damaged: copy it again). Type the password chosen when the eHealth "
    "certificate was made; it is case-sensitive."
)
_CANNOT_DECRYPT = (
    "The keystore could not be decrypted: the password is wrong or the file is damaged. Check the "
    "password (it is case-sensitive) and copy the .p12 file again."
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
        self._bmp_passwords = _bmp_password_variants(password)

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
        hash_name = _hashlib_name(algorithm)
        salt = mac_data["mac_salt"].native
        iterations = _iterations(mac_data["iterations"].native)
        expected = mac_data["mac"]["digest"].native
        size = hashlib.new(hash_name).digest_size
        for bmp_password in self._bmp_passwords:
            key = _pkcs12_kdf(hash_name, bmp_password, salt, _KDF_MAC, iterations, size)
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
        name = algorithm["algorithm"].native
        if name == "pbes2":
            return _pbes2_decrypt(algorithm, self._utf8_password, data)
        if name in _PKCS12_PBE:
            return _pkcs12_pbe_decrypt(name, algorithm, self._bmp_passwords[0], data)
        raise KeystoreError(f"The keystore is encrypted with {name}, which is not supported. Export it "
                            "again with AES: openssl pkcs12 -export ... (OpenSSL 3 uses AES by default).")


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
        wanted = _public_key_der(private_key)
        matching = [(b, c) for b, c in certificate_bags if _public_key_der(c) == wanted]
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
        if _is_issued_by(current, current):
            break
        issuer = next((c for c in pool if c not in chain and _is_issued_by(current, c)), None)
        if issuer is None:
            break
        chain.append(issuer)
    return tuple(chain)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

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
        algorithm, encrypted = _pbes2_encrypt(utf8_password, key_der, iterations)
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
    algorithm, encrypted = _pbes2_encrypt(utf8_password, pkcs12.SafeContents(certificate_bags).dump(), iterations)
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
    mac_key = _pkcs12_kdf("sha256", _bmp_password_variants(password)[0], mac_salt, _KDF_MAC, iterations, 32)
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


def _pbes2_encrypt(password: bytes, plain: bytes, iterations: int) -> tuple[algos.EncryptionAlgorithm, bytes]:
    salt, iv = os.urandom(16), os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)
    padding = 16 - len(plain) % 16
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(plain + bytes([padding]) * padding) + encryptor.finalize()
    algorithm = algos.EncryptionAlgorithm({
        "algorithm": "pbes2",
        "parameters": {
            "key_derivation_func": {"algorithm": "pbkdf2", "parameters": {
                "salt": algos.Pbkdf2Salt(name="specified", value=salt), "iteration_count": iterations,
                "prf": {"algorithm": "sha256", "parameters": core.Null()}}},
            "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": core.OctetString(iv)},
        },
    })
    return algorithm, encrypted


# --------------------------------------------------------------------------------------------
# Checking a certificate against the trusted CA
# --------------------------------------------------------------------------------------------

def verify_chain(certificate: x509.Certificate, trusted_ca: x509.Certificate, at: datetime, *,
                 intermediates: Sequence[x509.Certificate] = ()) -> str | None:
    """Say why ``certificate`` cannot be trusted at ``at``, or return None when it can.

    Checks the validity dates of the certificate and of every issuer up to ``trusted_ca``, that
    each issuer is a CA and that each signature verifies (a CA with the same name but another key
    is refused).  Revocation (CRL/OCSP) is not checked.
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    who = describe_certificate(certificate)
    problem = _dates_problem(certificate, at, f"The certificate of {who}")
    if problem:
        return problem
    current = certificate
    for _ in range(10):
        if _is_issued_by(current, trusted_ca):
            if not _is_ca(trusted_ca):
                return f"The trusted certificate {_masked_subject(trusted_ca)} is not a CA certificate."
            return _dates_problem(trusted_ca, at, f"The CA certificate {_masked_subject(trusted_ca)}")
        issuer = next((c for c in intermediates if c != current and _is_issued_by(current, c)), None)
        if issuer is None:
            break
        if not _is_ca(issuer):
            return f"The certificate of {who} is issued by {_masked_subject(issuer)}, which is not a CA."
        problem = _dates_problem(issuer, at, f"The CA certificate {_masked_subject(issuer)}")
        if problem:
            return problem
        current = issuer
    if current.issuer == trusted_ca.subject:
        return (f"The certificate of {who} names {_masked_subject(trusted_ca)} as its issuer, but its "
                "signature does not match that CA's key: it was issued by another, untrusted CA.")
    return (f"The certificate of {who} was issued by {mask_ssins_in_text(current.issuer.rfc4514_string())}, "
            f"not by the trusted CA {_masked_subject(trusted_ca)}. Use a keystore issued by eHealth for "
            "this environment (acceptance and production certificates differ).")


def _dates_problem(certificate: x509.Certificate, at: datetime, what: str) -> str | None:
    if at < certificate.not_valid_before_utc:
        return f"{what} is not valid yet: it starts on {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC."
    if at > certificate.not_valid_after_utc:
        return (f"{what} expired on {certificate.not_valid_after_utc:%Y-%m-%d}. Renew it with the eHealth "
                "certificate manager and install the new keystore.")
    return None


# --------------------------------------------------------------------------------------------
# Password-based cryptography (RFC 7292 appendix B, RFC 8018, RFC 2268)
# --------------------------------------------------------------------------------------------

_KDF_KEY, _KDF_IV, _KDF_MAC = 1, 2, 3
_MAX_ITERATIONS = 5_000_000

_HASHLIB_NAMES = {"sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384",
                  "sha512": "sha512", "sha512_224": "sha512_224", "sha512_256": "sha512_256", "md5": "md5"}

# name -> (cipher, key length in bytes)
_PKCS12_PBE = {
    "pkcs12_sha1_tripledes_3key": ("3des", 24),
    "pkcs12_sha1_tripledes_2key": ("3des", 16),
    "pkcs12_sha1_rc2_128": ("rc2", 16),
    "pkcs12_sha1_rc2_40": ("rc2", 5),
    "pkcs12_sha1_rc4_128": ("rc4", 16),
    "pkcs12_sha1_rc4_40": ("rc4", 5),
}


def _hashlib_name(algorithm: str) -> str:
    try:
        return _HASHLIB_NAMES[algorithm]
    except KeyError:
        raise KeystoreError(f"The keystore's integrity check uses {algorithm}, which is not supported. "
                            "Export it again with: openssl pkcs12 -export -macalg sha256 ...") from None


def _iterations(count: int) -> int:
    """Refuse absurd iteration counts, which would make reading the file hang."""
    if not 1 <= count <= _MAX_ITERATIONS:
        raise KeystoreError(f"The keystore asks for {count} key derivation iterations, which is not "
                            f"plausible (at most {_MAX_ITERATIONS} are accepted). Export it again.")
    return count


def _bmp_password_variants(password: str) -> tuple[bytes, ...]:
    """The password as PKCS#12 wants it: UTF-16BE with a two-byte terminator.

    An empty password is written either as just the terminator (OpenSSL) or as nothing at all
    (some other tools), so both are tried.
    """
    if password:
        return (password.encode("utf-16-be") + b"\x00\x00",)
    return (b"\x00\x00", b"")


def _pkcs12_kdf(hash_name: str, password: bytes, salt: bytes, purpose: int, iterations: int,
                length: int) -> bytes:
    """The PKCS#12 key derivation (RFC 7292 B.2): purpose 1 key, 2 IV, 3 MAC key."""
    block = hashlib.new(hash_name).block_size

    def stretch(data: bytes) -> bytes:
        if not data:
            return b""
        size = block * ((len(data) + block - 1) // block)
        return (data * (size // len(data) + 1))[:size]

    diversifier = bytes([purpose]) * block
    material = bytearray(stretch(salt) + stretch(password))
    output = b""
    while len(output) < length:
        digest = hashlib.new(hash_name, diversifier + bytes(material)).digest()
        for _ in range(iterations - 1):
            digest = hashlib.new(hash_name, digest).digest()
        output += digest
        addend = int.from_bytes(stretch(digest)[:block], "big") + 1
        for start in range(0, len(material), block):
            chunk = (int.from_bytes(material[start:start + block], "big") + addend) % (1 << (8 * block))
            material[start:start + block] = chunk.to_bytes(block, "big")
    return output[:length]


def _pkcs12_pbe_decrypt(name: str, algorithm: algos.EncryptionAlgorithm, bmp_password: bytes,
                        data: bytes) -> bytes:
    cipher, key_length = _PKCS12_PBE[name]
    salt = algorithm["parameters"]["salt"].native
    iterations = _iterations(algorithm["parameters"]["iterations"].native)
    key = _pkcs12_kdf("sha1", bmp_password, salt, _KDF_KEY, iterations, key_length)
    if cipher == "rc4":
        decryptor = Cipher(ARC4(key), mode=None).decryptor()
        return decryptor.update(data) + decryptor.finalize()
    iv = _pkcs12_kdf("sha1", bmp_password, salt, _KDF_IV, iterations, 8)
    if cipher == "rc2":
        return _unpad(_Rc2(key, 8 * key_length).decrypt_cbc(data, iv), 8)
    if key_length == 16:
        key += key[:8]  # two-key 3DES is K1 K2 K1
    return _unpad(_cbc_decrypt(TripleDES(key), iv, data), 8)


def _pbes2_decrypt(algorithm: algos.EncryptionAlgorithm, password: bytes, data: bytes) -> bytes:
    parameters = algorithm["parameters"]
    derivation = parameters["key_derivation_func"]
    if derivation["algorithm"].native != "pbkdf2":
        raise KeystoreError(f"The keystore's keys are protected with {derivation['algorithm'].native}, "
                            "which is not supported. Export it again with PBKDF2 (OpenSSL's default).")
    kdf = derivation["parameters"]
    if kdf["salt"].name != "specified":
        raise KeystoreError("The keystore's key derivation takes its salt from elsewhere, which is not supported.")
    scheme = parameters["encryption_scheme"]
    cipher_name = scheme["algorithm"].native
    key_length = kdf["key_length"].native or scheme.key_length
    key = hashlib.pbkdf2_hmac(_hashlib_name(kdf["prf"]["algorithm"].native), password,
                              kdf["salt"].native, _iterations(kdf["iteration_count"].native), key_length)
    iv = scheme.encryption_iv
    if cipher_name in ("aes128_cbc", "aes192_cbc", "aes256_cbc"):
        return _unpad(_cbc_decrypt(algorithms.AES(key), iv, data), 16)
    if cipher_name == "tripledes_3key":
        return _unpad(_cbc_decrypt(TripleDES(key), iv, data), 8)
    if cipher_name == "des":
        return _unpad(_cbc_decrypt(TripleDES(key * 3), iv, data), 8)
    if cipher_name == "rc2":
        return _unpad(_Rc2(key, _rc2_effective_bits(scheme, key_length)).decrypt_cbc(data, iv), 8)
    raise KeystoreError(f"The keystore is encrypted with {cipher_name}, which is not supported. Export it "
                        "again with AES: openssl pkcs12 -export ...")


def _rc2_effective_bits(scheme: algos.EncryptionAlgorithm, key_length: int) -> int:
    version = scheme["parameters"]["rc2_parameter_version"].native
    if version is None:
        return 32
    return {160: 40, 120: 64, 58: 128}.get(version, version if version >= 256 else 8 * key_length)


def _cbc_decrypt(algorithm: algorithms.AES | TripleDES, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _unpad(plain: bytes, block: int) -> bytes:
    count = plain[-1] if plain else 0
    if not 1 <= count <= block or plain[-count:] != bytes([count]) * count:
        raise KeystoreError(_CANNOT_DECRYPT)
    return plain[:-count]


_RC2_PITABLE = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2"
    "179a59f587b34f1361456d8d09817d32bd8f40eb86b77b0bf09521225c6b4e82"
    "54d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed7"
    "08e8eade8052eef784aa72ac354d6a2a961ad2715a1549744b9fd05e0418a4ec"
    "c2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a9"
    "0d38341bab33ffb0bb480c5fb9b1cd2ec5f3db47e5a59c770aa62068fe7fc1ad"
)


class _Rc2:
    """RC2 decryption (RFC 2268), for legacy keystores' ``pbeWithSHA1And40BitRC2-CBC`` safes.

    ``cryptography`` offers RC2 with 128-bit keys only; old OpenSSL and Windows exports encrypt the
    certificates with 40-bit RC2, hence this small implementation.  Decryption only.
    """

    _ROTATIONS = (1, 2, 3, 5)

    def __init__(self, key: bytes, effective_bits: int) -> None:
        expanded = bytearray(128)
        expanded[:len(key)] = key
        for i in range(len(key), 128):
            expanded[i] = _RC2_PITABLE[(expanded[i - 1] + expanded[i - len(key)]) & 0xFF]
        t8 = (effective_bits + 7) // 8
        mask = 0xFF % (1 << (8 + effective_bits - 8 * t8))
        expanded[128 - t8] = _RC2_PITABLE[expanded[128 - t8] & mask]
        for i in range(127 - t8, -1, -1):
            expanded[i] = _RC2_PITABLE[expanded[i + 1] ^ expanded[i + t8]]
        self._words = [expanded[2 * i] | expanded[2 * i + 1] << 8 for i in range(64)]

    def decrypt_block(self, block: bytes) -> bytes:
        k = self._words
        r = [block[2 * i] | block[2 * i + 1] << 8 for i in range(4)]
        j = 63

        def unmix() -> None:
            nonlocal j
            for i in (3, 2, 1, 0):
                s = self._ROTATIONS[i]
                r[i] = ((r[i] >> s) | (r[i] << (16 - s))) & 0xFFFF
                r[i] = (r[i] - k[j] - (r[i - 1] & r[i - 2]) - (~r[i - 1] & r[i - 3])) & 0xFFFF
                j -= 1

        def unmash() -> None:
            for i in (3, 2, 1, 0):
                r[i] = (r[i] - k[r[i - 1] & 63]) & 0xFFFF

        for _ in range(5):
            unmix()
        unmash()
        for _ in range(6):
            unmix()
        unmash()
        for _ in range(5):
            unmix()
        return b"".join(bytes((w & 0xFF, w >> 8)) for w in r)

    def decrypt_cbc(self, data: bytes, iv: bytes) -> bytes:
        if len(data) % 8:
            raise KeystoreError(_CANNOT_DECRYPT)
        out = bytearray()
        previous = iv
        for start in range(0, len(data), 8):
            block = data[start:start + 8]
            out += bytes(a ^ b for a, b in zip(self.decrypt_block(block), previous))
            previous = block
        return bytes(out)
