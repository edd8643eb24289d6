"""The development PKI: a simulated eHealth CA and eHealth-like multi-key keystores."""
from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from datetime import date, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization

from unified_messaging.identifiers import cbe_problem, nihii_problem, ssin_problem
from unified_messaging.simulator import devpki
from unified_messaging.simulator.devpki import DEFAULT_PASSWORD, DevPki, load_dev_pki, make_dev_pki
from unified_messaging.mycarenet.keystore import IdentifierKind, verify_chain

TODAY = date(2031, 3, 1)
AT = datetime(2031, 3, 1, 9, 30, tzinfo=timezone.utc)
HOLDERS = ("lab", "nurse", "nursing_group", "expired", "untrusted")
# The encryption aliases are fixed, like the identifiers, so that documentation can name them.
ENCRYPTION_ALIASES = {
    "lab": "864106493366203920447496534287501464",
    "nurse": "864421721283343179474514797130127688",
    "nursing_group": "406843214555229921307194280109117319",
}
OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def dated_pki(tmp_path_factory) -> DevPki:
    """A PKI of its own, made as on ``TODAY``, so that validity dates are fixed (the shared ``pki`` follows
    the real date)."""
    return make_dev_pki(tmp_path_factory.mktemp("devpki"), today=TODAY)


def _public(key_or_certificate) -> bytes:
    return key_or_certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_files_are_written_and_the_keys_kept_out_of_git(dated_pki):
    names = {path.name for path in dated_pki.folder.iterdir()}
    assert names == {".gitignore", "ca.pem", "ca.p12", "untrusted-ca.pem", "manifest.json", "lab.p12", "nurse.p12",
                     "nursing-group.p12", "expired-nurse.p12", "untrusted-lab.p12", "sts.p12"}
    assert "*" in (dated_pki.folder / ".gitignore").read_text().splitlines()
    for path in dated_pki.folder.glob("*.p12"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize("name", HOLDERS)
def test_each_holder_has_an_authentication_key_and_an_encryption_key(dated_pki, name):
    keystore = dated_pki.load(name)
    encryption_alias = dated_pki.keystores[name].encryption_alias

    assert keystore.aliases == ("authentication", encryption_alias)
    assert encryption_alias.isdigit()
    assert int(encryption_alias) == keystore.entry(encryption_alias).certificate.serial_number
    assert keystore.authentication.alias == "authentication"
    assert [e.alias for e in keystore.encryption_entries] == [encryption_alias]
    encryption = keystore.entry(encryption_alias)
    encryption.certificate.verify_directly_issued_by(keystore.authentication.certificate)
    for entry in keystore.entries:
        assert _public(entry.private_key) == _public(entry.certificate)


def test_the_identifiers_and_aliases_are_fixed(dated_pki):
    for name, alias in ENCRYPTION_ALIASES.items():
        assert dated_pki.keystores[name].encryption_alias == alias
    assert dated_pki.lab.identity.value == devpki.LAB_NIHII[:8]
    assert dated_pki.nurse.identity.value == devpki.NURSE_SSIN
    assert dated_pki.nursing_group.identity.value == devpki.GROUP_NUMBER


def test_the_lab_is_a_nihii_labo(dated_pki):
    identity = dated_pki.load("lab").identity
    assert (identity.kind, identity.identifier_type, identity.quality, identity.name) == (
        IdentifierKind.NIHII, "NIHII-LABO", "labo", devpki.LAB_NAME)
    assert identity.value == dated_pki.lab.nihii11[:8]
    assert dated_pki.lab.nihii11.startswith("8") and nihii_problem(dated_pki.lab.nihii11) is None
    assert dated_pki.lab.nihii11[6:8] == f"{97 - int(dated_pki.lab.nihii11[:6]) % 97:02d}"


def test_the_nurse_is_a_person_with_a_nurse_nihii(dated_pki):
    identity = dated_pki.load("nurse").identity
    assert (identity.kind, identity.quality, identity.name) == (IdentifierKind.SSIN, "nurse", devpki.NURSE_NAME)
    assert ssin_problem(identity.value) is None
    assert identity.nihii == dated_pki.nurse.nihii11 == devpki.NURSE_NIHII
    assert identity.nihii.startswith("4") and nihii_problem(identity.nihii) is None


def test_the_nursing_group_has_a_third_party_number_and_a_cbe(dated_pki):
    identity = dated_pki.load("nursing_group").identity
    assert (identity.kind, identity.identifier_type, identity.quality, identity.name) == (
        IdentifierKind.NIHII, "NIHII-GROUP", "groupofnurses", devpki.GROUP_NAME)
    assert re.fullmatch(r"94[0-9]{6}", identity.value)
    assert identity.cbe == devpki.GROUP_CBE and cbe_problem(identity.cbe) is None


@pytest.mark.parametrize("name", ["lab", "nurse", "nursing_group", "sts"])
def test_the_trusted_keystores_are_trusted(dated_pki, name):
    keystore = dated_pki.load(name)
    assert verify_chain(keystore.authentication.certificate, dated_pki.ca_certificate(), AT) is None


def test_the_expired_keystore_is_detected(dated_pki):
    certificate = dated_pki.load("expired").authentication.certificate
    reason = verify_chain(certificate, dated_pki.ca_certificate(), AT)
    assert reason and "expired on 2031-01-30" in reason
    assert dated_pki.expired.identity.not_after == datetime(2031, 1, 30, tzinfo=timezone.utc)


def test_the_untrusted_keystore_is_detected(dated_pki):
    certificate = dated_pki.load("untrusted").authentication.certificate
    assert "not by the trusted CA" in verify_chain(certificate, dated_pki.ca_certificate(), AT)
    assert verify_chain(certificate, dated_pki.untrusted_ca_certificate(), AT) is None


def test_the_validity_follows_today(dated_pki):
    assert dated_pki.lab.identity.not_before == datetime(2031, 1, 30, tzinfo=timezone.utc)
    assert dated_pki.lab.identity.not_after - dated_pki.lab.identity.not_before == timedelta(days=3 * 365 + 30)
    ca = dated_pki.ca_certificate()
    assert ca.not_valid_before_utc < AT < ca.not_valid_after_utc


def test_the_sts_keystore_holds_the_platform_signing_key(dated_pki):
    keystore = dated_pki.load("sts")
    assert keystore.aliases == ("sts",)
    assert keystore.authentication.alias == "sts"
    assert keystore.identity.kind is IdentifierKind.CBE and keystore.identity.value == devpki.PLATFORM_CBE
    assert keystore.authentication.chain == (keystore.authentication.certificate, dated_pki.ca_certificate())


def test_the_ca_can_issue_more_certificates(dated_pki):
    ca = dated_pki.ca()
    assert ca.certificate == dated_pki.ca_certificate()
    assert _public(ca.private_key) == _public(ca.certificate)


def test_the_manifest_lists_every_keystore_with_identity_and_validity(dated_pki):
    manifest = json.loads(dated_pki.manifest_path.read_text())

    assert manifest["generated_for"] == "2031-03-01"
    assert set(manifest["keystores"]) == set(HOLDERS) | {"sts"}
    lab = manifest["keystores"]["lab"]
    assert lab["file"] == "lab.p12" and lab["aliases"] == ["authentication", ENCRYPTION_ALIASES["lab"]]
    assert lab["identity"]["quality"] == "labo" and lab["nihii11"] == devpki.LAB_NIHII
    assert lab["not_after"].startswith("2034-02-28")
    assert manifest["keystores"]["expired"]["expired"] is True
    assert manifest["keystores"]["untrusted"]["trusted"] is False
    assert DEFAULT_PASSWORD not in dated_pki.manifest_path.read_text()


def test_load_dev_pki_reads_the_manifest_back(dated_pki):
    assert load_dev_pki(dated_pki.folder) == dated_pki


def test_the_password_is_not_in_the_repr(dated_pki):
    assert DEFAULT_PASSWORD not in repr(dated_pki)
    assert devpki.NURSE_SSIN not in repr(dated_pki)


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
@pytest.mark.parametrize("name", ["lab", "nurse", "nursing_group"])
def test_openssl_reads_both_keys(dated_pki, tmp_path, name):
    out = tmp_path / "out.pem"
    result = subprocess.run([OPENSSL, "pkcs12", "-info", "-in", dated_pki.keystores[name].path, "-passin",
                             f"pass:{dated_pki.password}", "-nodes", "-out", out], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC") == 2
    assert "MAC: sha256" in result.stderr
    text = out.read_text()
    assert "friendlyName: authentication" in text
    assert f"friendlyName: {dated_pki.keystores[name].encryption_alias}" in text

    openssl_keys = [serialization.load_pem_private_key(block.encode(), None) for block in
                    re.findall(r"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----", text, re.S)]
    ours = dated_pki.load(name)
    assert sorted(map(_public, openssl_keys)) == sorted(_public(e.private_key) for e in ours.entries)
