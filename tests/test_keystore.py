"""Keystores: multi-key PKCS#12 reading and writing, the authentication choice, identities, trust."""
from __future__ import annotations

import logging
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import cms, core, keys, pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from unified_messaging.identifiers import make_ssin
from unified_messaging.simulator.devpki import (
    CertificateUsage, DevCa, ehealth_subject, issue_certificate, with_mod97_check,
)
from unified_messaging.mycarenet.keystore import (
    IdentifierKind, Identity, KeyEntry, KeystoreError, dump_keystore, load_keystore, read_keystore, verify_chain,
)
from unified_messaging.mycarenet.keystore.rc2 import Rc2

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=timezone.utc)
NOT_BEFORE = NOW - timedelta(days=30)
NOT_AFTER = NOW + timedelta(days=1000)
SSIN = make_ssin(date(1985, 7, 30), 33)
NIHII = with_mod97_check("401234") + "404"
PASSWORD = "correct horse"
OPENSSL = shutil.which("openssl")
KEYTOOL = shutil.which("keytool")


def _public(key_or_certificate) -> bytes:
    return key_or_certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)


def _certificate(subject: x509.Name, usage: CertificateUsage = CertificateUsage.AUTHENTICATION,
                 key: ec.EllipticCurvePrivateKey | None = None) -> x509.Certificate:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return issue_certificate(subject, key.public_key(), issuer=None, issuer_key=key, usage=usage,
                             not_before=NOT_BEFORE, not_after=NOT_AFTER)


@pytest.fixture(scope="module")
def ca() -> DevCa:
    return DevCa.create("Test eHealth CA", not_before=NOW - timedelta(days=365), not_after=NOW + timedelta(days=3650))


@pytest.fixture(scope="module")
def nurse_entries(ca: DevCa) -> tuple[KeyEntry, KeyEntry]:
    subject = ehealth_subject(f"SSIN={SSIN}", "TEST NURSE", f"NIHII-NURSE={NIHII}")
    authentication, encryption = ca.ehealth_entries(subject, not_before=NOT_BEFORE, not_after=NOT_AFTER,
                                                    encryption_serial=73021548960412)
    return authentication, encryption


@pytest.fixture(scope="module")
def authentication(nurse_entries: tuple[KeyEntry, KeyEntry]) -> KeyEntry:
    return nurse_entries[0]


@pytest.fixture(scope="module")
def encryption(nurse_entries: tuple[KeyEntry, KeyEntry]) -> KeyEntry:
    return nurse_entries[1]


def _signing_entry(ca: DevCa, alias: str) -> KeyEntry:
    """Another key whose certificate, issued by the CA, also allows signatures (EC: fast to make)."""
    key = ec.generate_private_key(ec.SECP384R1())
    certificate = ca.issue(ehealth_subject(f"SSIN={SSIN}", "TEST NURSE"), key.public_key(),
                           usage=CertificateUsage.SIGNING, not_before=NOT_BEFORE, not_after=NOT_AFTER)
    return KeyEntry(alias, key, certificate, (certificate, ca.certificate))


def _renamed(entry: KeyEntry, alias: str) -> KeyEntry:
    return KeyEntry(alias, entry.private_key, entry.certificate, entry.chain)


# ---------------------------------------------------------------------------------------------
# Several keys, and which one authenticates
# ---------------------------------------------------------------------------------------------

def test_every_key_of_a_multi_key_keystore_is_read(ca, authentication, encryption):
    second_key = ec.generate_private_key(ec.SECP384R1())
    second = issue_certificate(authentication.certificate.subject, second_key.public_key(),
                               issuer=authentication.certificate, issuer_key=authentication.private_key,
                               usage=CertificateUsage.ENCRYPTION, not_before=NOT_BEFORE, not_after=NOT_AFTER)
    entries = [authentication, encryption, KeyEntry("88812345", second_key, second)]

    keystore = load_keystore(dump_keystore(entries, PASSWORD), PASSWORD)

    assert keystore.aliases == ("authentication", encryption.alias, "88812345")
    for entry in keystore.entries:
        assert _public(entry.private_key) == _public(entry.certificate)
    assert keystore.entry(encryption.alias).chain == (encryption.certificate, authentication.certificate,
                                                      ca.certificate)
    assert keystore.entry("authentication").chain == (authentication.certificate, ca.certificate)
    assert {e.alias for e in keystore.encryption_entries} == {encryption.alias, "88812345"}


def test_the_authentication_key_is_chosen_by_its_certificate_even_when_an_encryption_key_comes_first(
        authentication, encryption):
    data = dump_keystore([encryption, authentication], PASSWORD)

    keystore = load_keystore(data, PASSWORD)

    assert keystore.entries[0].alias == encryption.alias
    assert keystore.authentication.alias == "authentication"
    assert _public(keystore.authentication.private_key) == _public(authentication.certificate)
    assert keystore.encryption_entries == (keystore.entry(encryption.alias),)
    # What "the first key" would have given: cryptography's loader returns the encryption key.
    first = pkcs12.load_pkcs12(data, PASSWORD.encode())
    assert _public(first.key) == _public(encryption.certificate)
    # The authentication certificate, also in the encryption entry's chain, keeps its own alias.
    assert b"authentication" in {c.friendly_name for c in first.additional_certs}


def test_a_misleading_alias_does_not_fool_the_choice(authentication, encryption):
    entries = [_renamed(encryption, "authentication"), _renamed(authentication, "31415926")]

    keystore = load_keystore(dump_keystore(entries, PASSWORD), PASSWORD)

    assert keystore.authentication.alias == "31415926"
    assert keystore.authentication.certificate == authentication.certificate


def test_the_alias_authentication_decides_between_two_signing_certificates(ca, authentication):
    other = _signing_entry(ca, "signing")
    keystore = load_keystore(dump_keystore([other, authentication], PASSWORD), PASSWORD)
    assert keystore.authentication.certificate == authentication.certificate


def test_two_signing_certificates_without_the_alias_are_refused(ca, authentication):
    entries = [_signing_entry(ca, "first"), _renamed(authentication, "second")]
    keystore = load_keystore(dump_keystore(entries, PASSWORD), PASSWORD)
    with pytest.raises(KeystoreError, match="several certificates that could authenticate"):
        keystore.authentication


def test_a_keystore_without_authentication_certificate_says_so(encryption):
    keystore = load_keystore(dump_keystore([_renamed(encryption, "authentication")], PASSWORD), PASSWORD)
    with pytest.raises(KeystoreError, match="no authentication certificate"):
        keystore.authentication


def test_find_returns_the_entry_of_a_certificate_or_of_its_key(ca, authentication, encryption):
    keystore = load_keystore(dump_keystore([encryption, authentication], PASSWORD), PASSWORD)
    reissued = ca.issue(authentication.certificate.subject, authentication.private_key.public_key(),
                        usage=CertificateUsage.AUTHENTICATION, not_before=NOT_BEFORE, not_after=NOT_AFTER)

    assert keystore.find(authentication.certificate).alias == "authentication"
    assert keystore.find(encryption.certificate).alias == encryption.alias
    assert keystore.find(reissued).alias == "authentication"
    assert keystore.find(ca.certificate) is None


def test_an_empty_password_works(authentication, encryption):
    keystore = load_keystore(dump_keystore([authentication, encryption], ""), "")
    assert keystore.authentication.certificate == authentication.certificate


def _bare_pfx(entries: list[KeyEntry]) -> bytes:
    """A PFX with plain key bags, no friendlyName, no localKeyId and no MAC: certificates first,
    in the reverse order of the keys, so that only the public keys can pair them."""
    def der(entry: KeyEntry) -> bytes:
        return entry.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())

    bags = [asn1_pkcs12.SafeBag({"bag_id": "cert_bag", "bag_value": asn1_pkcs12.CertBag({
        "cert_id": "x509", "cert_value": core.ParsableOctetString(
            e.certificate.public_bytes(serialization.Encoding.DER))})}) for e in reversed(entries)]
    bags += [asn1_pkcs12.SafeBag({"bag_id": "key_bag", "bag_value": keys.PrivateKeyInfo.load(der(e))})
             for e in entries]
    safe = cms.ContentInfo({"content_type": "data",
                            "content": core.OctetString(asn1_pkcs12.SafeContents(bags).dump())})
    authenticated_safe = asn1_pkcs12.AuthenticatedSafe([safe]).dump()
    return asn1_pkcs12.Pfx({"version": "v3", "auth_safe": {"content_type": "data",
                                                          "content": core.OctetString(authenticated_safe)}}).dump()


def test_keys_without_local_key_id_are_paired_by_public_key(authentication, encryption):
    keystore = load_keystore(_bare_pfx([encryption, authentication]), "any")

    assert len(keystore) == 2
    for entry in keystore.entries:
        assert _public(entry.private_key) == _public(entry.certificate)
    assert keystore.authentication.certificate == authentication.certificate
    assert keystore.aliases == ("key-1", "key-2")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keystore_bytes(authentication, encryption) -> bytes:
    return dump_keystore([authentication, encryption], PASSWORD)


def test_a_wrong_password_is_reported_as_such(keystore_bytes):
    with pytest.raises(KeystoreError, match="^The keystore password is wrong"):
        load_keystore(keystore_bytes, "Correct horse")


@pytest.mark.parametrize("damage", ["truncated", "cut-short", "garbage", "trailing"])
def test_a_broken_file_is_not_taken_for_a_keystore(keystore_bytes, damage):
    data = {
        "truncated": keystore_bytes[: len(keystore_bytes) // 2],
        "cut-short": keystore_bytes[:-1],
        "garbage": bytes(range(256)) * 8,
        "trailing": keystore_bytes + b"\x00" * 3,
    }[damage]
    with pytest.raises(KeystoreError, match="not a PKCS#12 keystore"):
        load_keystore(data, PASSWORD)


def test_an_absurd_iteration_count_is_refused_rather_than_hanging(keystore_bytes):
    pfx = asn1_pkcs12.Pfx.load(keystore_bytes)
    mac_data = pfx["mac_data"].copy()
    mac_data["iterations"] = 10**9
    pfx["mac_data"] = mac_data
    with pytest.raises(KeystoreError, match="iterations"):
        load_keystore(pfx.dump(force=True), PASSWORD)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"\xfe\xed\xfe\xed\x00\x00\x00\x02", "Java keystore"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "PEM"),
])
def test_other_formats_are_named(data, message):
    with pytest.raises(KeystoreError, match=message):
        load_keystore(data, PASSWORD)


def test_read_keystore_names_the_file(tmp_path, keystore_bytes):
    path = tmp_path / "keystore.p12"
    path.write_bytes(keystore_bytes[:100])
    with pytest.raises(KeystoreError, match=r"keystore\.p12: This file is not a PKCS#12"):
        read_keystore(path, PASSWORD)
    with pytest.raises(KeystoreError, match="cannot be read"):
        read_keystore(tmp_path / "missing.p12", PASSWORD)


# ---------------------------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------------------------

def _name(*pairs: tuple) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def test_a_personal_ehealth_certificate_gives_the_ssin_and_the_name():
    """The layout of the certificate in eHealth's sample STS answer (reference/samples/sts)."""
    ou = NameOID.ORGANIZATIONAL_UNIT_NAME
    subject = _name((NameOID.COUNTRY_NAME, "BE"), (NameOID.ORGANIZATION_NAME, "Federal Government"),
                    (ou, f"SSIN={SSIN}"), (ou, "TEST PHYSIO"), (ou, "eHealth-platform Belgium"),
                    (NameOID.COMMON_NAME, f"SSIN={SSIN}"))

    identity = Identity.from_certificate(_certificate(subject))

    assert (identity.kind, identity.value, identity.quality, identity.name) == (
        IdentifierKind.SSIN, SSIN, None, "TEST PHYSIO")
    assert identity.not_before == NOT_BEFORE and identity.not_after == NOT_AFTER


def test_the_nurse_reads_as_a_person_with_the_nurse_quality(authentication):
    identity = authentication.identity
    assert (identity.kind, identity.value, identity.ssin, identity.nihii, identity.quality, identity.name) == (
        IdentifierKind.SSIN, SSIN, SSIN, NIHII, "nurse", "TEST NURSE")


@pytest.mark.parametrize(("identifier", "units", "application", "expected"), [
    ("NIHII-LABO=81234530", (), None, (IdentifierKind.NIHII, "81234530", "NIHII-LABO", "labo", "THE LAB")),
    ("NIHII-HOSPITAL=71089815", (), None, (IdentifierKind.NIHII, "71089815", "NIHII-HOSPITAL", "hospital", "THE LAB")),
    ("NIHII-GROUP=94123454", ("CBE=0812345691",), None,
     (IdentifierKind.NIHII, "94123454", "NIHII-GROUP", "groupofnurses", "THE LAB")),
    ("NIHII=10012345001", (), None, (IdentifierKind.NIHII, "10012345001", "NIHII", "doctor", "THE LAB")),
    ("CBE=0876543270", ("NIHII-GROUP=94123454",), "MYAPP",
     (IdentifierKind.CBE, "0876543270", "CBE", "groupofnurses", "THE LAB")),
])
def test_organisations_give_their_identifier_and_quality(identifier, units, application, expected):
    identity = Identity.from_certificate(_certificate(ehealth_subject(identifier, "THE LAB", *units,
                                                                      application=application)))
    assert (identity.kind, identity.value, identity.identifier_type, identity.quality, identity.name) == expected
    assert identity.application == application


def test_the_group_of_nurses_carries_its_cbe_too():
    identity = Identity.from_certificate(_certificate(ehealth_subject("NIHII-GROUP=94123454", "GROUP",
                                                                      "CBE=0812345691")))
    assert (identity.nihii, identity.cbe) == ("94123454", "0812345691")


def test_a_certificate_without_ehealth_identifier_is_refused():
    with pytest.raises(KeystoreError, match="does not name an eHealth identifier"):
        Identity.from_certificate(_certificate(_name((NameOID.COMMON_NAME, "server.example"))))


def test_no_full_ssin_and_no_key_material_in_reprs_messages_and_logs(ca, authentication, encryption, caplog):
    caplog.set_level(logging.DEBUG, logger="unified_messaging")
    entries = [_signing_entry(ca, SSIN), _renamed(authentication, "other")]
    keystore = load_keystore(dump_keystore(entries, PASSWORD), PASSWORD)
    with pytest.raises(KeystoreError) as refused:
        keystore.authentication
    expired = verify_chain(authentication.certificate, ca.certificate, NOT_AFTER + timedelta(days=1))

    texts = [repr(keystore), repr(keystore.entries[0]), repr(authentication.identity), str(authentication.identity),
             str(refused.value), expired, caplog.text]

    for text in texts:
        assert SSIN not in text
        assert "PRIVATE KEY" not in text and "private_numbers" not in text
    assert SSIN[:6] + "*****" in repr(authentication.identity)


# ---------------------------------------------------------------------------------------------
# Trust
# ---------------------------------------------------------------------------------------------

def test_a_certificate_of_the_trusted_ca_is_trusted(ca, authentication):
    assert verify_chain(authentication.certificate, ca.certificate, NOW) is None
    assert verify_chain(authentication.certificate, ca.certificate, NOW.replace(tzinfo=None)) is None


def test_an_expired_or_not_yet_valid_certificate_is_refused(ca, authentication):
    assert "expired on" in verify_chain(authentication.certificate, ca.certificate, NOT_AFTER + timedelta(days=1))
    assert "not valid yet" in verify_chain(authentication.certificate, ca.certificate, NOT_BEFORE - timedelta(days=1))


def test_a_certificate_of_another_ca_is_refused(authentication):
    other = DevCa.create("Another CA", not_before=NOT_BEFORE, not_after=NOT_AFTER)
    assert "not by the trusted CA" in verify_chain(authentication.certificate, other.certificate, NOW)


def test_a_ca_with_the_same_name_but_another_key_is_refused(ca, authentication):
    impostor = DevCa.create("Test eHealth CA", not_before=NOT_BEFORE, not_after=NOT_AFTER)
    assert impostor.certificate.subject == ca.certificate.subject
    assert "signature does not match" in verify_chain(authentication.certificate, impostor.certificate, NOW)


def test_an_intermediate_ca_is_followed(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    intermediate_expiry = NOW + timedelta(days=10)
    intermediate_certificate = ca.issue(_name((NameOID.COMMON_NAME, "Issuing CA")), key.public_key(),
                                        usage=CertificateUsage.CA, not_before=NOT_BEFORE, not_after=intermediate_expiry)
    intermediate = DevCa(intermediate_certificate, key)
    leaf = _signing_entry(intermediate, "leaf").certificate

    assert verify_chain(leaf, ca.certificate, NOW, intermediates=[intermediate_certificate]) is None
    assert "not by the trusted CA" in verify_chain(leaf, ca.certificate, NOW)
    assert "CA certificate CN=Issuing CA expired" in verify_chain(
        leaf, ca.certificate, intermediate_expiry + timedelta(days=1), intermediates=[intermediate_certificate])


# ---------------------------------------------------------------------------------------------
# Files written by other tools
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "bits", "plain", "cipher"), [
    ("0000000000000000", 63, "0000000000000000", "ebb773f993278eff"),
    ("ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"),
    ("3000000000000000", 64, "1000000000000001", "30649edf9be7d2c2"),
    ("88", 64, "0000000000000000", "61a8a244adacccf0"),
    ("88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"),
])
def test_rc2_matches_the_rfc_2268_test_vectors(key, bits, plain, cipher):
    assert Rc2(bytes.fromhex(key), bits).decrypt_block(bytes.fromhex(cipher)).hex() == plain


@pytest.mark.parametrize("encryption", ["aes", "legacy-3des", "none"])
def test_keystores_written_by_cryptography_are_read(ca, authentication, encryption):
    algorithm = {
        "aes": serialization.BestAvailableEncryption(PASSWORD.encode()),
        "legacy-3des": (serialization.PrivateFormat.PKCS12.encryption_builder()
                        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                        .hmac_hash(hashes.SHA1())
                        .build(PASSWORD.encode())),
        "none": serialization.NoEncryption(),
    }[encryption]
    data = pkcs12.serialize_key_and_certificates(b"authentication", authentication.private_key,
                                                 authentication.certificate, [ca.certificate], algorithm)
    password = "" if encryption == "none" else PASSWORD

    keystore = load_keystore(data, password)

    assert keystore.authentication.alias == "authentication"
    assert keystore.authentication.chain == (authentication.certificate, ca.certificate)


def _pem_files(tmp_path: Path, entry: KeyEntry, ca: DevCa) -> tuple[Path, Path, Path]:
    key, certificate, chain = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "ca.pem"
    key.write_bytes(entry.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    certificate.write_bytes(entry.certificate.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate, chain


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
@pytest.mark.parametrize(("options", "password"), [
    ([], PASSWORD),
    (["-legacy"], PASSWORD),
    (["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"], PASSWORD),
    (["-certpbe", "AES-128-CBC", "-keypbe", "AES-192-CBC", "-macalg", "sha512"], PASSWORD),
    (["-keypbe", "DES-EDE3-CBC", "-certpbe", "DES-EDE3-CBC"], PASSWORD),
    (["-legacy", "-keypbe", "PBE-SHA1-RC4-128", "-certpbe", "PBE-SHA1-RC2-128"], PASSWORD),
    (["-legacy", "-keypbe", "PBE-SHA1-2DES", "-certpbe", "PBE-SHA1-RC4-40"], PASSWORD),
    ([], ""),
], ids=["default", "legacy-rc2-40", "3des-sha1", "aes-sha512", "pbes2-3des", "rc4-rc2-128", "2des-rc4-40",
        "empty-password"])
def test_keystores_exported_by_openssl_are_read(tmp_path, ca, authentication, options, password):
    key, certificate, chain = _pem_files(tmp_path, authentication, ca)
    out = tmp_path / "openssl.p12"
    result = subprocess.run([OPENSSL, "pkcs12", "-export", "-inkey", key, "-in", certificate, "-certfile", chain,
                             "-name", "authentication", "-out", out, "-passout", f"pass:{password}", *options],
                            capture_output=True, text=True)
    if result.returncode and "-legacy" in options:
        pytest.skip(f"this openssl cannot write legacy keystores: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr

    keystore = read_keystore(out, password)

    assert keystore.aliases == ("authentication",)
    assert _public(keystore.authentication.private_key) == _public(authentication.certificate)
    assert keystore.authentication.chain == (authentication.certificate, ca.certificate)
    assert keystore.identity.value == SSIN


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_an_elliptic_curve_keystore_from_openssl_is_read(tmp_path, ca):
    """eHealth's newer certificates use EC P-384 keys."""
    entry = _signing_entry(ca, "authentication")
    key, certificate, chain = _pem_files(tmp_path, entry, ca)
    out = tmp_path / "ec.p12"
    subprocess.run([OPENSSL, "pkcs12", "-export", "-inkey", key, "-in", certificate, "-name", "authentication",
                    "-out", out, "-passout", f"pass:{PASSWORD}"], check=True, capture_output=True)

    keystore = read_keystore(out, PASSWORD)

    assert isinstance(keystore.authentication.private_key, ec.EllipticCurvePrivateKey)
    assert keystore.authentication.chain == (entry.certificate,)


@pytest.mark.skipif(KEYTOOL is None, reason="Java's keytool is not installed")
def test_java_keytool_reads_our_keystores_and_we_read_its_own(tmp_path, authentication, encryption):
    """eHealth's own tools are Java: keytool converts our two-key file into a file of its own making."""
    ours, theirs = tmp_path / "ours.p12", tmp_path / "java.p12"
    ours.write_bytes(dump_keystore([encryption, authentication], PASSWORD))
    result = subprocess.run([KEYTOOL, "-importkeystore", "-noprompt", "-srckeystore", ours, "-srcstoretype", "PKCS12",
                             "-srcstorepass", PASSWORD, "-destkeystore", theirs, "-deststoretype", "PKCS12",
                             "-deststorepass", "java-side"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

    keystore = read_keystore(theirs, "java-side")

    assert set(keystore.aliases) == {"authentication", encryption.alias}
    assert keystore.authentication.certificate == authentication.certificate
    assert keystore.entry(encryption.alias).chain[:2] == (encryption.certificate, authentication.certificate)
