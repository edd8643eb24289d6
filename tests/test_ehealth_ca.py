"""``[upstream] ehealth_ca`` (issue 13 point 5): the eHealth CA bundle that uploads and STS tokens must chain to.

* an uploaded certificate must chain to the bundle (through the keystore's or the bundle's
  intermediates) and be valid at upload, else a catalogue refusal that says what to do;
* every STS token (SAML assertion) must carry a valid enveloped signature by a certificate that
  chains to the bundle: a token re-signed by another CA (the simulator's ``foreign-signer``
  fault), by an expired certificate, or altered after signing is refused;
* in remote mode without the key the start-up says plainly what is not checked; a file that
  cannot be read or holds no PEM certificate stops start-up naming the key.

Everything runs against the real simulator over real sockets, with real SQLite and real files.
"""
from __future__ import annotations

import html
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import zeep
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import make_config
from tests.support import (
    GENINS, LAB, LICENCE, OWNER_SSIN, add, change_one_byte, new_store, patient, running_platform, tampering_proxy,
)
from tests.web_support import login, post_form, start_mybox
from unified_messaging.config import ConfigError
from unified_messaging.domain.errors import UpstreamFault
from unified_messaging.gateway import Gateway
from unified_messaging.mycarenet.keystore import dump_keystore
from unified_messaging.mycarenet.sts import StsClient
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.serving import serving
from unified_messaging.simulator.chaos import FaultMode
from unified_messaging.simulator.devpki import (
    CA_NAME, LAB_NAME, PLATFORM_CBE, CertificateUsage, DevCa, ehealth_subject, new_key,
)
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.upstream import NOT_CHECKED_WITHOUT_EHEALTH_CA

NOW = datetime.now(timezone.utc)
WARNING = ("uploaded certificates are not chain-checked and STS assertions are not verified: "
           "set [upstream] ehealth_ca")


def pem(*certificates) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)


def other_ca(name: str = "Another eHealth-like CA (tests)") -> DevCa:
    return DevCa.create(name, not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=3650))


def keystore_from(ca: DevCa, password: str, *, not_before: datetime = NOW - timedelta(days=1),
                  not_after: datetime = NOW + timedelta(days=365), extra_chain=()) -> bytes:
    """An eHealth-like lab keystore whose certificate ``ca`` issued (its chain: ``extra_chain`` too)."""
    entries = ca.ehealth_entries(ehealth_subject("NIHII-LABO=81234530", LAB_NAME), not_before=not_before,
                                 not_after=not_after)
    entry = entries[0]
    chain = (entry.certificate, ca.certificate, *extra_chain)
    return dump_keystore([type(entry)(entry.alias, entry.private_key, entry.certificate, chain)], password)


@pytest.fixture(scope="module")
def bundle(pki, tmp_path_factory) -> Path:
    """A PEM bundle of two CAs: an unrelated one first, then the dev PKI's (the simulator's eHealth CA)."""
    path = tmp_path_factory.mktemp("trust") / "ehealth-ca.pem"
    path.write_bytes(pem(other_ca().certificate) + b"\n" + pki.ca_certificate_path.read_bytes())
    return path


@pytest.fixture()
def store(tmp_path):
    store = new_store(tmp_path)
    yield store
    store.close()


# ------------------------------------------------------------------------------ uploads

def test_a_certificate_of_the_ehealth_ca_is_accepted_on_upload(store, pki, bundle):
    from unified_messaging.trust import load_ehealth_ca

    anchors = load_ehealth_ca(str(bundle))
    assert len(anchors) == 2
    record = add(store, pki, "nurse", trusted_ca=anchors)
    assert record.holder_name == "ANNE DEVNURSE" and store.certificates() == [record]


def test_a_chain_through_an_intermediate_ca_is_followed(store, pki):
    root = other_ca("eHealth-like root CA (tests)")
    key = new_key()
    intermediate = DevCa(root.issue(ehealth_subject("CA=issuing", "eHealth-like issuing CA (tests)"),
                                    key.public_key(), usage=CertificateUsage.CA, not_before=NOW - timedelta(days=30),
                                    not_after=NOW + timedelta(days=900)), key)
    p12 = keystore_from(intermediate, pki.password, extra_chain=(root.certificate,))
    # the root alone is trusted: the keystore brings the intermediate
    assert store.add_certificate(p12, pki.password, responsible_login="admin", trusted_ca=[root.certificate])
    # the bundle may hold the intermediate alone as well (a keystore without its chain)
    other = keystore_from(intermediate, pki.password)
    assert store.add_certificate(other, pki.password, responsible_login="admin", trusted_ca=[intermediate.certificate])


def test_a_certificate_of_another_ca_is_refused_with_the_code_and_what_to_do(store, pki, bundle):
    from unified_messaging.trust import load_ehealth_ca

    anchors = load_ehealth_ca(str(bundle))
    with pytest.raises(Refusal) as refused:
        add(store, pki, "untrusted", trusted_ca=anchors)
    refusal = refused.value
    assert refusal.code == "SS-CERT-UNTRUSTED"
    assert "Untrusted test CA" in refusal.cause and "not by the trusted CA" in refusal.cause
    assert "Use a keystore issued by eHealth for this environment" in refusal.remedy
    assert "[upstream] ehealth_ca" in refusal.remedy
    # a CA that takes the eHealth CA's very name, with another key, is no better
    impostor = keystore_from(other_ca(CA_NAME), pki.password)
    with pytest.raises(Refusal, match="SS-CERT-UNTRUSTED") as refused:
        store.add_certificate(impostor, pki.password, responsible_login="admin", trusted_ca=anchors)
    assert "signature does not match that CA's key" in refused.value.cause
    assert store.certificates() == []


def test_an_expired_or_not_yet_valid_certificate_is_refused_when_checked(store, pki):
    with pytest.raises(Refusal) as refused:
        add(store, pki, "expired", trusted_ca=[pki.ca_certificate()])
    expiry = pki.expired.identity.not_after
    assert refused.value.code == "SS-CERT-EXPIRED"
    assert f"It expired on {expiry:%Y-%m-%d}" in refused.value.cause
    assert refused.value.remedy.startswith("Renew it with the eHealth certificate manager")
    starts = NOW + timedelta(days=2)
    later = keystore_from(pki.ca(), pki.password, not_before=starts, not_after=starts + timedelta(days=365))
    with pytest.raises(Refusal, match="SS-CERT-NOT-YET-VALID") as refused:
        store.add_certificate(later, pki.password, responsible_login="admin", trusted_ca=[pki.ca_certificate()])
    assert f"{starts:%Y-%m-%d}" in refused.value.cause
    assert store.certificates() == []


def _upload(stack, session, pki, name: str) -> str:
    answer = post_form(session, stack, "/certificates", "/certificates", {"password": pki.password, "label": name},
                       {"p12": (f"{name}.p12", pki.keystores[name].path.read_bytes())})
    flashes = re.findall(r'<p class="flash (\w+)"[^>]*>(.*?)</p>', answer.text, re.S)
    return " ".join(kind + ": " + html.unescape(" ".join(text.split())) for kind, text in flashes)


def test_mybox_in_remote_mode_checks_uploads_against_the_bundle(tmp_path, pki, bundle):
    with running_platform(pki) as (_, url):
        stack = start_mybox(tmp_path, **_remote(url, pki, ehealth_ca=str(bundle)))
        try:
            assert len(stack.gateway.mybox.services.trusted_ca) == 2
            session = login(stack, "admin")
            assert _upload(stack, session, pki, "lab").startswith("ok: Certificate #")
            shown = _upload(stack, session, pki, "untrusted")
            assert "error: SS-CERT-UNTRUSTED" in shown and "[upstream] ehealth_ca" in shown
            assert "error: SS-CERT-EXPIRED" in _upload(stack, session, pki, "expired")
            assert [c.label for c in stack.gateway.securespace.certificates()] == ["lab"]
        finally:
            stack.gateway.stop()


def test_with_the_simulator_the_demo_ca_is_the_ehealth_ca(tmp_path, pki):
    stack = start_mybox(tmp_path)
    try:
        demo_ca = stack.gateway.upstream.plan.ehealth_ca
        assert [c.subject for c in demo_ca] == [c.subject for c in stack.gateway.mybox.services.trusted_ca]
        assert CA_NAME in demo_ca[0].subject.rfc4514_string()
        demo = Path(stack.data) / "demo-pki"
        session = login(stack, "admin")
        answer = post_form(session, stack, "/certificates", "/certificates", {"password": pki.password},
                           {"p12": ("rogue.p12", (demo / "untrusted-lab.p12").read_bytes())})
        assert "SS-CERT-UNTRUSTED" in answer.text
    finally:
        stack.gateway.stop()


# ------------------------------------------------------------------------------ STS tokens

def _sts(url: str, pki, **options) -> StsClient:
    return StsClient(url + STS_PATH, timeout=10, **options)


def test_a_token_signed_by_the_ehealth_ca_s_sts_is_accepted(pki):
    with running_platform(pki) as (simulator, url):
        token = _sts(url, pki, ehealth_ca=[pki.ca_certificate()]).request_token(pki.load("lab").authentication)
    assert token.not_after > NOW and simulator.counters["sts.issued"] == 1


@pytest.mark.parametrize("mode, words", [
    (FaultMode.FOREIGN_SIGNER, ["not vouched for by the trusted eHealth CA", "Another CA (simulated fault)"]),
    (FaultMode.EXPIRED_SIGNER, ["not vouched for by the trusted eHealth CA", "expired on"]),
], ids=lambda v: v.value if isinstance(v, FaultMode) else "")
def test_a_token_signed_by_a_certificate_the_ehealth_ca_does_not_vouch_for_is_refused(pki, mode, words):
    lab = pki.load("lab").authentication
    with running_platform(pki, faults={"sts": mode.value}) as (simulator, url):
        with pytest.raises(UpstreamFault) as refused:
            _sts(url, pki, ehealth_ca=[pki.ca_certificate()]).request_token(lab)
        assert simulator.faults.injected == {f"sts.{mode.value}": 1}
        # what is not checked without the key: the same token is taken as it is
        assert _sts(url, pki).request_token(lab).not_after > NOW
    fault = refused.value
    assert fault.code == "UM-STS-BAD-TOKEN"
    for word in words:
        assert word in fault.message, fault.message
    assert "[upstream] ehealth_ca" in fault.advice and "not used" in fault.advice


def test_a_token_altered_after_signing_is_refused(pki):
    lab = pki.load("lab").authentication

    def alter(answer: bytes) -> bytes:
        return change_one_byte(answer, rb"<AttributeValue>[0-9]+")  # the lab's number, in the signed token
    with running_platform(pki) as (_, url):
        with serving(tampering_proxy(url, change_answer=alter)) as proxy:
            with pytest.raises(UpstreamFault) as refused:
                _sts(proxy, pki, ehealth_ca=[pki.ca_certificate()]).request_token(lab)
            unchecked = _sts(proxy, pki).request_token(lab)  # without the key, the altered token passes
    assert refused.value.code == "UM-STS-BAD-TOKEN"
    assert "was altered" in refused.value.message and "was changed after it was signed" in refused.value.message
    assert unchecked.attributes and unchecked.not_after > NOW


def test_the_gateway_in_remote_mode_refuses_a_foreign_token_and_says_what_to_check(tmp_path, pki, bundle):
    with running_platform(pki, faults={"sts": FaultMode.FOREIGN_SIGNER.value}) as (simulator, url):
        with Gateway(make_config(tmp_path, **_remote(url, pki, ehealth_ca=str(bundle)))) as gateway:
            client = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl")
            result = client.service.GetInsurability(request={"CareProvider": LAB, "Ssin": patient("insured").ssin,
                                                             "PeriodStart": NOW.date()})
            assert simulator.counters["sts.issued"] >= 1  # issued (and re-signed by the fault), then refused
            assert simulator.counters["genericinsurability.getInsurability"] == 0  # never used upstream
    assert result.Status == "ERROR" and result.Insurabilities is None
    message = result.Messages.Message[0]
    assert message.Code == "UM-STS-BAD-TOKEN"
    for words in ("signer is not vouched for by the trusted eHealth CA", "Another CA (simulated fault)",
                  "[upstream] ehealth_ca", "the token is not used"):
        assert words in message.Text, message.Text
    assert "Use a keystore" not in message.Text  # that advice is for uploads, not for the STS's signer


def test_the_configuration_check_verifies_its_probe_token_too(tmp_path, pki, bundle):
    with running_platform(pki) as (simulator, url):
        with Gateway(make_config(tmp_path, **_remote(url, pki, ehealth_ca=str(bundle)))) as gateway:
            store = gateway.securespace
            store.create_space("Space", "Olivia Owner", OWNER_SSIN, "Olivia Owner", OWNER_SSIN)
            store.add_user("admin", "Olivia Owner", OWNER_SSIN, ["administrator"], "admin-password-1")
            record = add(store, pki, "lab", trusted_ca=gateway.upstream.plan.ehealth_ca)
            assert gateway.configuration_check([record.id])[0].token.startswith("issued")
            simulator.faults.set("sts", FaultMode.FOREIGN_SIGNER)
            check = gateway.configuration_check([record.id])[0]
    assert check.token == "refused (UM-STS-BAD-TOKEN)"
    reasons = check.service("INSURABILITY").reasons
    assert reasons[0].code == "SS-STS-REFUSED" and "not vouched for by the trusted eHealth CA" in reasons[0].cause


# ------------------------------------------------------------------------------ start-up and configuration

def _remote(url: str, pki, **upstream) -> dict:
    return {
        "upstream": {"mode": "remote", "sts_url": url + STS_PATH, "genericinsurability_url": url + GENINS,
                     "timeout_seconds": 5.0, "platform_ca": str(pki.ca_certificate_path),
                     "platform_signer_cbe": PLATFORM_CBE, **upstream},
        "invoicing": {"enabled": False}, "folders": {"insurability": False},
        "identity": {"keystore": str(pki.lab.path), "keystore_password": pki.password},
        "licence": {"username": LICENCE[0], "password": LICENCE[1]},
    }


def test_remote_start_up_says_plainly_what_is_not_checked_without_the_key(tmp_path, pki, bundle, caplog):
    caplog.set_level(logging.WARNING)
    with running_platform(pki) as (_, url):
        with Gateway(make_config(tmp_path / "without", **_remote(url, pki))) as gateway:
            assert gateway.upstream.plan.ehealth_ca == () and gateway.mybox.services.trusted_ca is None
        warned = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
        assert warned == [NOT_CHECKED_WITHOUT_EHEALTH_CA]
        caplog.clear()
        with Gateway(make_config(tmp_path / "with", **_remote(url, pki, ehealth_ca=str(bundle)))):
            pass
        assert not [r for r in caplog.records if "ehealth_ca" in r.getMessage()]
        caplog.clear()
        with Gateway(make_config(tmp_path / "simulated", folders={"insurability": False},
                                 invoicing={"enabled": False})):
            pass  # the simulator's own demo CA is checked against: nothing to warn about
        assert not [r for r in caplog.records if "ehealth_ca" in r.getMessage()]


@pytest.mark.parametrize("content, words", [
    (None, ["readable PEM", "No such file"]),
    (b"not a certificate at all\n", ["PEM bundle of the eHealth CA certificates", "holds no PEM certificate"]),
    (b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
     ["PEM bundle of the eHealth CA certificates", "damaged and cannot be read"]),
], ids=["missing", "not-pem", "damaged"])
@pytest.mark.parametrize("mode", ["remote", "simulator"])
def test_an_unusable_ehealth_ca_file_stops_start_up_naming_the_key(tmp_path, pki, content, words, mode):
    path = tmp_path / "ehealth-ca.pem"
    if content is not None:
        path.write_bytes(content)
    sections = (_remote("http://127.0.0.1:9", pki, ehealth_ca=str(path)) if mode == "remote" else
                {"upstream": {"ehealth_ca": str(path)}, "invoicing": {"enabled": False},
                 "folders": {"insurability": False}})
    with pytest.raises(ConfigError) as caught:
        Gateway(make_config(tmp_path, **sections)).start()
    message = str(caught.value)
    assert message.startswith(f"[upstream] ehealth_ca = {str(path)!r} is not valid")
    for word in words:
        assert word in message, message



# ------------------------------------------------------------------------------ the command line

def _cli_add(data: Path, pki, name: str, upstream: str, *options: str) -> tuple[int, str]:
    """``unified-messaging certificates add`` with a configuration whose [upstream] section is ``upstream``."""
    from click.testing import CliRunner

    from tests.support import MASTER
    from unified_messaging.securespace import cli
    from unified_messaging.securespace.crypto import PasswordHasher
    from unified_messaging.securespace.store import SecureSpaceStore

    config = data.parent / "um.toml"
    config.write_text(f'[data]\nfolder = "{data}"\n\n[upstream]\n{upstream}\n', encoding="utf-8")
    result = CliRunner().invoke(
        cli.certificates, ["--config", str(config), "add", str(pki.keystores[name].path), "--responsible", "admin",
                           "--password-stdin", *options],
        input=f"{pki.password}\n", catch_exceptions=False,
        obj={"store_factory": lambda cfg: SecureSpaceStore.in_data_folder(data, MASTER, hasher=PasswordHasher(16))})
    return result.exit_code, result.output


def test_the_command_line_checks_uploads_against_the_configured_bundle(tmp_path, pki, bundle):
    data = tmp_path / "um-data"
    new_store(data).close()
    with_key = f'mode = "remote"\nehealth_ca = "{bundle}"'
    code, out = _cli_add(data, pki, "lab", with_key)
    assert code == 0 and "Certificate #1 added" in out and "Warning" not in out
    code, out = _cli_add(data, pki, "untrusted", with_key)
    assert code == 1 and "Refused: SS-CERT-UNTRUSTED" in out and "[upstream] ehealth_ca" in out
    code, out = _cli_add(data, pki, "expired", with_key)
    assert code == 1 and "Refused: SS-CERT-EXPIRED" in out
    code, out = _cli_add(data, pki, "expired", 'mode = "remote"', "--trusted-ca", str(pki.lab.path))
    assert code == 1 and f"--trusted-ca = {str(pki.lab.path)!r} is not valid" in out and "no PEM certificate" in out
    code, out = _cli_add(data, pki, "untrusted", 'mode = "remote"')  # without the key: kept, and said so
    assert code == 0 and WARNING in out and "Certificate #2 added" in out
