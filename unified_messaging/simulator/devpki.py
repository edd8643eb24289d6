"""A development PKI: a simulated eHealth CA and eHealth-like keystores, for tests, demos and the simulator.

``make_dev_pki(folder)`` writes, in a data folder (never in git: the folder gets a ``.gitignore``
that ignores everything):

* ``ca.pem`` / ``ca.p12``: the "Simulated eHealth CA" (self-signed, RSA 2048, SHA-256) that the
  simulator trusts, with its key so that the simulator can issue more certificates;
* ``untrusted-ca.pem``: another CA, that nobody trusts;
* one keystore per test holder, each with an ``authentication`` key (certificate issued by the CA)
  and an encryption key whose alias is its certificate's serial number (certificate issued by the
  holder's authentication key, with the same subject): a lab, a nurse, a group of nurses, an
  expired nurse and a lab whose certificate comes from the untrusted CA;
* ``sts.p12``: the simulated platform's STS signing key and certificate (alias ``sts``);
* ``manifest.json``: every keystore with its file, aliases, identity and validity.

Identifiers and names are fixed (the constants below), so tests and documentation can refer to
them; keys are new each time.  The keystores are written by ``keystore.dump_keystore``, so
``openssl pkcs12 -info`` reads them and lists every key.

Assumptions (not confirmed by eHealth documentation): organisations' NIHII numbers are written in
certificates on 8 digits (``NIHII-LABO=81234567``); the qualification code of the 11-digit NIHII
numbers below (``000`` for the lab, ``404`` for the nurses) is illustrative only; a group of nurses
is identified by its third-party number ``94xxxxxx`` (``NIHII-GROUP=``) with its CBE number in an
OU; the nurse's certificate carries an ``OU=NIHII-NURSE=...`` so that the quality can be read from
it (real personal eHealth certificates carry only the SSIN); encryption certificates are issued by
the holder's authentication key under the same subject (how eHealth makes them is not documented
here; the keystore code does not depend on it).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes, CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from unified_messaging.identifiers import make_ssin
from unified_messaging.mycarenet.keystore import (
    AUTHENTICATION_ALIAS, IdentifierKind, Identity, KeyEntry, Keystore, dump_keystore, read_keystore,
)

logger = logging.getLogger(__name__)

DEFAULT_PASSWORD = "unified-messaging-dev"
CA_NAME = "Simulated eHealth CA (development only)"
UNTRUSTED_CA_NAME = "Untrusted test CA (development only)"
EHEALTH_MARKER = "eHealth-platform Belgium"
MANIFEST_NAME = "manifest.json"


def with_mod97_check(base: str) -> str:
    """``base`` followed by its two check digits, 97 - (base mod 97), as NIHII and CBE numbers use."""
    return f"{base}{97 - int(base) % 97:02d}"


LAB_NIHII = with_mod97_check("812345") + "000"
LAB_NAME = "DEV CLINICAL LAB"
NURSE_SSIN = make_ssin(date(1988, 4, 12), 126)
NURSE_NIHII = with_mod97_check("412345") + "404"
NURSE_NAME = "ANNE DEVNURSE"
GROUP_NUMBER = with_mod97_check("941234")
GROUP_CBE = with_mod97_check("08123456")
GROUP_NAME = "DEV NURSING GROUP"
EXPIRED_SSIN = make_ssin(date(1975, 11, 3), 87)
EXPIRED_NIHII = with_mod97_check("498765") + "404"
EXPIRED_NAME = "OLD DEVNURSE"
UNTRUSTED_NIHII = with_mod97_check("887654") + "000"
UNTRUSTED_NAME = "ROGUE LAB"
PLATFORM_CBE = with_mod97_check("08765432")
PLATFORM_NAME = "SIMULATED EHEALTH-PLATFORM"

_KEY_SIZE = 2048
_VALIDITY = timedelta(days=3 * 365)
_BACKDATE = timedelta(days=30)


class CertificateUsage(Enum):
    CA = "ca"
    AUTHENTICATION = "authentication"
    ENCRYPTION = "encryption"
    SIGNING = "signing"


def new_key() -> rsa.RSAPrivateKey:
    """An RSA 2048 key, as eHealth's RSA certificates have."""
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def ehealth_subject(identifier: str, name: str, *extra_units: str, application: str | None = None) -> x509.Name:
    """A subject written the eHealth way: ``identifier`` (``TYPE=digits``) in the CN and in an OU.

    ``application`` is appended to the CN after a comma (``CBE=<cbe>, <APPLICATION>``) and repeated
    in an OU, as eHealth does for organisations' application certificates.
    """
    units = [identifier, *extra_units, name] + ([application] if application else []) + [EHEALTH_MARKER]
    return x509.Name(
        [x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Federal Government")]
        + [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit) for unit in units]
        + [x509.NameAttribute(NameOID.COMMON_NAME, f"{identifier}, {application}" if application else identifier)]
    )


def issue_certificate(subject: x509.Name, public_key: CertificatePublicKeyTypes, *,
                      issuer: x509.Certificate | None, issuer_key: CertificateIssuerPrivateKeyTypes,
                      usage: CertificateUsage, not_before: datetime, not_after: datetime,
                      serial_number: int | None = None) -> x509.Certificate:
    """Issue a certificate for ``usage``; ``issuer=None`` makes it self-signed."""
    issuer_name = subject if issuer is None else issuer.subject
    issuer_public = public_key if issuer is None else issuer.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name)
               .public_key(public_key)
               .serial_number(serial_number or x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=usage is CertificateUsage.CA, path_length=None), critical=True)
               .add_extension(_key_usage(usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False))
    if usage is CertificateUsage.AUTHENTICATION:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _key_usage(usage: CertificateUsage) -> x509.KeyUsage:
    flags = {
        CertificateUsage.CA: {"key_cert_sign", "crl_sign"},
        # As eHealth authentication certificates: digitalSignature, nonRepudiation, keyEncipherment.
        CertificateUsage.AUTHENTICATION: {"digital_signature", "content_commitment", "key_encipherment"},
        CertificateUsage.ENCRYPTION: {"key_encipherment", "data_encipherment"},
        CertificateUsage.SIGNING: {"digital_signature", "content_commitment"},
    }[usage]
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign")
    return x509.KeyUsage(**{name: name in flags for name in names}, encipher_only=False, decipher_only=False)


@dataclass(frozen=True, repr=False)
class DevCa:
    """A development certificate authority: its certificate and key."""

    certificate: x509.Certificate
    private_key: CertificateIssuerPrivateKeyTypes

    @classmethod
    def create(cls, common_name: str, *, not_before: datetime, not_after: datetime) -> DevCa:
        key = new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "unified-messaging development"),
                             x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = issue_certificate(subject, key.public_key(), issuer=None, issuer_key=key,
                                        usage=CertificateUsage.CA, not_before=not_before, not_after=not_after)
        return cls(certificate, key)

    def issue(self, subject: x509.Name, public_key: CertificatePublicKeyTypes, *, usage: CertificateUsage,
              not_before: datetime, not_after: datetime, serial_number: int | None = None) -> x509.Certificate:
        return issue_certificate(subject, public_key, issuer=self.certificate, issuer_key=self.private_key,
                                 usage=usage, not_before=not_before, not_after=not_after,
                                 serial_number=serial_number)

    def ehealth_entries(self, subject: x509.Name, *, not_before: datetime, not_after: datetime,
                        encryption_serial: int | None = None) -> list[KeyEntry]:
        """An ``authentication`` entry issued by this CA and, when ``encryption_serial`` is given,
        an encryption entry (alias: that serial number) issued by the authentication key."""
        key = new_key()
        certificate = self.issue(subject, key.public_key(), usage=CertificateUsage.AUTHENTICATION,
                                 not_before=not_before, not_after=not_after)
        entries = [KeyEntry(AUTHENTICATION_ALIAS, key, certificate, (certificate, self.certificate))]
        if encryption_serial is not None:
            encryption_key = new_key()
            encryption_certificate = issue_certificate(
                subject, encryption_key.public_key(), issuer=certificate, issuer_key=key,
                usage=CertificateUsage.ENCRYPTION, not_before=not_before, not_after=not_after,
                serial_number=encryption_serial)
            entries.append(KeyEntry(str(encryption_serial), encryption_key, encryption_certificate,
                                    (encryption_certificate, certificate, self.certificate)))
        return entries

    def __repr__(self) -> str:
        return f"DevCa({self.certificate.subject.rfc4514_string()!r})"


@dataclass(frozen=True)
class DevKeystore:
    """One keystore of the development PKI, as the manifest describes it."""

    name: str
    path: Path
    purpose: str
    aliases: tuple[str, ...]
    identity: Identity
    nihii11: str | None
    trusted: bool
    expired: bool

    @property
    def encryption_alias(self) -> str | None:
        return next((alias for alias in self.aliases if alias != AUTHENTICATION_ALIAS), None)

    def load(self, password: str = DEFAULT_PASSWORD) -> Keystore:
        return read_keystore(self.path, password)


@dataclass(frozen=True)
class DevPki:
    """Where ``make_dev_pki`` wrote everything, and the keystores' password."""

    folder: Path
    password: str = field(repr=False)
    ca_certificate_path: Path
    ca_keystore_path: Path
    untrusted_ca_certificate_path: Path
    manifest_path: Path
    keystores: dict[str, DevKeystore]

    @property
    def lab(self) -> DevKeystore:
        return self.keystores["lab"]

    @property
    def nurse(self) -> DevKeystore:
        return self.keystores["nurse"]

    @property
    def nursing_group(self) -> DevKeystore:
        return self.keystores["nursing_group"]

    @property
    def expired(self) -> DevKeystore:
        return self.keystores["expired"]

    @property
    def untrusted(self) -> DevKeystore:
        return self.keystores["untrusted"]

    @property
    def sts(self) -> DevKeystore:
        return self.keystores["sts"]

    def ca_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_certificate_path.read_bytes())

    def untrusted_ca_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.untrusted_ca_certificate_path.read_bytes())

    def ca(self) -> DevCa:
        """The CA with its key, to issue more certificates (the simulator's needs)."""
        entry = read_keystore(self.ca_keystore_path, self.password).entry("ca")
        return DevCa(entry.certificate, entry.private_key)

    def load(self, name: str) -> Keystore:
        return self.keystores[name].load(self.password)


@dataclass(frozen=True)
class _Holder:
    """What one development keystore is for and what its certificate says."""

    name: str
    file_name: str
    purpose: str
    subject: x509.Name
    nihii11: str | None = None
    trusted: bool = True
    expired: bool = False
    signing_only: bool = False

    @property
    def encryption_serial(self) -> int:
        """Fixed per holder, so that the encryption alias (the serial number) is too."""
        return int.from_bytes(hashlib.sha256(f"devpki:{self.name}:encryption".encode()).digest()[:15], "big")


_HOLDERS = (
    _Holder("lab", "lab.p12", "Clinical lab (NIHII-LABO), the usual eFact sender",
            ehealth_subject(f"NIHII-LABO={LAB_NIHII[:8]}", LAB_NAME), nihii11=LAB_NIHII),
    _Holder("nurse", "nurse.p12", "Home nurse (person: SSIN, NIHII starting with 4)",
            ehealth_subject(f"SSIN={NURSE_SSIN}", NURSE_NAME, f"NIHII-NURSE={NURSE_NIHII}"), nihii11=NURSE_NIHII),
    _Holder("nursing_group", "nursing-group.p12", "Group of nurses (third-party number 94..., with its CBE)",
            ehealth_subject(f"NIHII-GROUP={GROUP_NUMBER}", GROUP_NAME, f"CBE={GROUP_CBE}")),
    _Holder("expired", "expired-nurse.p12", "Nurse whose certificate expired 30 days ago (negative tests)",
            ehealth_subject(f"SSIN={EXPIRED_SSIN}", EXPIRED_NAME, f"NIHII-NURSE={EXPIRED_NIHII}"),
            nihii11=EXPIRED_NIHII, expired=True),
    _Holder("untrusted", "untrusted-lab.p12", "Lab whose certificate comes from an untrusted CA (negative tests)",
            ehealth_subject(f"NIHII-LABO={UNTRUSTED_NIHII[:8]}", UNTRUSTED_NAME), nihii11=UNTRUSTED_NIHII,
            trusted=False),
    _Holder("sts", "sts.p12", "The simulated platform's STS signing key (signs SAML assertions)",
            ehealth_subject(f"CBE={PLATFORM_CBE}", PLATFORM_NAME, application="STS"), signing_only=True),
)


def make_dev_pki(folder: Path, *, today: date | None = None, password: str = DEFAULT_PASSWORD) -> DevPki:
    """Create the development CA and keystores in ``folder`` (replacing earlier ones)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".gitignore").write_text("# Development keys: never commit them.\n*\n", encoding="utf-8")
    day = today or datetime.now(timezone.utc).date()
    start = datetime.combine(day, time(), tzinfo=timezone.utc)
    ca = DevCa.create(CA_NAME, not_before=start - timedelta(days=365), not_after=start + timedelta(days=10 * 365))
    untrusted_ca = DevCa.create(UNTRUSTED_CA_NAME, not_before=start - timedelta(days=365),
                                not_after=start + timedelta(days=10 * 365))
    keystores = {holder.name: _write_holder(folder, holder, ca if holder.trusted else untrusted_ca, start, password)
                 for holder in _HOLDERS}
    pki = DevPki(
        folder=folder,
        password=password,
        ca_certificate_path=folder / "ca.pem",
        ca_keystore_path=folder / "ca.p12",
        untrusted_ca_certificate_path=folder / "untrusted-ca.pem",
        manifest_path=folder / MANIFEST_NAME,
        keystores=keystores,
    )
    pki.ca_certificate_path.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    pki.untrusted_ca_certificate_path.write_bytes(untrusted_ca.certificate.public_bytes(serialization.Encoding.PEM))
    _write_private(pki.ca_keystore_path, dump_keystore([KeyEntry("ca", ca.private_key, ca.certificate)], password))
    pki.manifest_path.write_text(json.dumps(_manifest(pki, day, ca, untrusted_ca), indent=2) + "\n", encoding="utf-8")
    logger.info("Development PKI written to %s (%d keystores)", folder, len(keystores))
    return pki


def _write_holder(folder: Path, holder: _Holder, ca: DevCa, start: datetime, password: str) -> DevKeystore:
    if holder.expired:
        not_before, not_after = start - _VALIDITY - _BACKDATE, start - _BACKDATE
    else:
        not_before, not_after = start - _BACKDATE, start + _VALIDITY
    if holder.signing_only:
        key = new_key()
        certificate = ca.issue(holder.subject, key.public_key(), usage=CertificateUsage.SIGNING,
                               not_before=not_before, not_after=not_after)
        entries = [KeyEntry(holder.name, key, certificate, (certificate, ca.certificate))]
    else:
        entries = ca.ehealth_entries(holder.subject, not_before=not_before, not_after=not_after,
                                     encryption_serial=holder.encryption_serial)
    path = folder / holder.file_name
    _write_private(path, dump_keystore(entries, password))
    return DevKeystore(
        name=holder.name,
        path=path,
        purpose=holder.purpose,
        aliases=tuple(entry.alias for entry in entries),
        identity=Identity.from_certificate(entries[0].certificate),
        nihii11=holder.nihii11,
        trusted=holder.trusted,
        expired=holder.expired,
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a file that holds private keys, readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)


def _manifest(pki: DevPki, day: date, ca: DevCa, untrusted_ca: DevCa) -> dict[str, Any]:
    def ca_json(certificate_path: Path, dev_ca: DevCa) -> dict[str, Any]:
        return {"certificate": certificate_path.name,
                "subject": dev_ca.certificate.subject.rfc4514_string(),
                "not_before": dev_ca.certificate.not_valid_before_utc.isoformat(),
                "not_after": dev_ca.certificate.not_valid_after_utc.isoformat()}

    return {
        "description": "Development PKI made by unified_messaging.simulator.devpki. Test keys only: "
                       "never use them in production, never commit them.",
        "generated_for": day.isoformat(),
        "password_note": "the keystores use the password given to make_dev_pki (default: devpki.DEFAULT_PASSWORD)",
        "ca": {**ca_json(pki.ca_certificate_path, ca), "keystore": pki.ca_keystore_path.name, "alias": "ca"},
        "untrusted_ca": ca_json(pki.untrusted_ca_certificate_path, untrusted_ca),
        "keystores": {name: _keystore_json(keystore) for name, keystore in pki.keystores.items()},
    }


def _keystore_json(keystore: DevKeystore) -> dict[str, Any]:
    identity = keystore.identity
    return {
        "file": keystore.path.name,
        "purpose": keystore.purpose,
        "aliases": list(keystore.aliases),
        "identity": {
            "kind": identity.kind.value,
            "identifier_type": identity.identifier_type,
            "value": identity.value,
            "quality": identity.quality,
            "name": identity.name,
            "ssin": identity.ssin,
            "nihii": identity.nihii,
            "cbe": identity.cbe,
            "application": identity.application,
        },
        "nihii11": keystore.nihii11,
        "trusted": keystore.trusted,
        "expired": keystore.expired,
        "not_before": identity.not_before.isoformat(),
        "not_after": identity.not_after.isoformat(),
    }


def load_dev_pki(folder: Path, *, password: str = DEFAULT_PASSWORD) -> DevPki:
    """The ``DevPki`` that ``make_dev_pki`` wrote in ``folder``, from its manifest."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    keystores = {}
    for name, item in manifest["keystores"].items():
        identity = item["identity"]
        keystores[name] = DevKeystore(
            name=name,
            path=folder / item["file"],
            purpose=item["purpose"],
            aliases=tuple(item["aliases"]),
            identity=Identity(
                kind=IdentifierKind(identity["kind"]),
                value=identity["value"],
                identifier_type=identity["identifier_type"],
                quality=identity["quality"],
                name=identity["name"],
                not_before=datetime.fromisoformat(item["not_before"]),
                not_after=datetime.fromisoformat(item["not_after"]),
                ssin=identity["ssin"],
                nihii=identity["nihii"],
                cbe=identity["cbe"],
                application=identity["application"],
            ),
            nihii11=item["nihii11"],
            trusted=item["trusted"],
            expired=item["expired"],
        )
    return DevPki(
        folder=folder,
        password=password,
        ca_certificate_path=folder / manifest["ca"]["certificate"],
        ca_keystore_path=folder / manifest["ca"]["keystore"],
        untrusted_ca_certificate_path=folder / manifest["untrusted_ca"]["certificate"],
        manifest_path=folder / MANIFEST_NAME,
        keystores=keystores,
    )
