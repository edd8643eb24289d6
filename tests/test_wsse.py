"""WS-Security for business calls: signing with a SAML holder-of-key token, and verifying.

libxmlsec1 (the ``xmlsec1`` command) is the independent check: what ``sign_envelope`` makes must
verify there, and a one-byte change in a signed part must make it fail, as it makes ours fail.
"""
from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import zeep
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from unified_messaging.mycarenet import wsse
from unified_messaging.simulator.devpki import NURSE_SSIN, CertificateUsage, DevPki, ehealth_subject
from unified_messaging.mycarenet.keystore import AUTHENTICATION_ALIAS, KeyEntry
from unified_messaging.mycarenet.wsse import (
    DS_NS, SAML_NS, SOAP11_NS, WSSE_NS, WSU_ID, WSU_NS, RefusalCode, SecurityRefusal, SigningCredential,
    WsseSigningPlugin, sign_envelope, verify_envelope,
)
from unified_messaging.mycarenet.wsse.utils import format_instant
from unified_messaging.simulator.sts import SimulatedSts
from unified_messaging.serving import serving
from tests.conftest import official_security_schema, reference_path as reference
from tests.support import change_one_byte

XMLSEC1 = shutil.which("xmlsec1")
SECURITY_SIGNATURE = ("/*[local-name()='Envelope']/*[local-name()='Header']/*[local-name()='Security']"
                      "/*[local-name()='Signature']")
ASSERTION_SIGNATURE = "//*[local-name()='Assertion']/*[local-name()='Signature']"
PAYLOAD = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
           '<x:Echo xmlns:x="urn:test:echo"><x:text>Hélène &amp; co</x:text></x:Echo>'
           '</soapenv:Body></soapenv:Envelope>')


@pytest.fixture(scope="module")
def sts(pki) -> SimulatedSts:
    return SimulatedSts(pki.ca_certificate(), pki.load("sts").entry("sts"))


@pytest.fixture(scope="module")
def nurse(pki) -> KeyEntry:
    return pki.load("nurse").authentication


@pytest.fixture(scope="module")
def pem_files(pki, sts, nurse, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pem")
    files = {}
    for name, certificate in {"ca": pki.ca_certificate(), "sts": sts.certificate, "nurse": nurse.certificate,
                              "lab": pki.load("lab").authentication.certificate}.items():
        files[name] = folder / f"{name}.pem"
        files[name].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return files


def envelope() -> etree._Element:
    return etree.fromstring(PAYLOAD.encode())


def signed(entry: KeyEntry, assertion_xml: bytes, *, now: datetime | None = None, ttl_seconds: int = 60) -> bytes:
    moment = now or datetime.now(timezone.utc)
    document = sign_envelope(envelope(), assertion_xml=assertion_xml, key=entry.private_key,
                             certificate=entry.certificate, ttl_seconds=ttl_seconds, now=lambda: moment)
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


def xmlsec_verify(folder: Path, document: bytes, *arguments: str) -> subprocess.CompletedProcess:
    if XMLSEC1 is None:
        pytest.skip("xmlsec1 (libxmlsec1) is not installed")
    path = folder / f"document-{threading.get_ident()}-{len(list(folder.iterdir()))}.xml"
    path.write_bytes(document)
    return subprocess.run([XMLSEC1, "--verify", *arguments, str(path)], capture_output=True, text=True, timeout=30)


def business_signature_arguments(holder_pem: Path) -> list[str]:
    """The xmlsec1 options for our signature: the holder's key, wsu:Id on Body and Timestamp."""
    return ["--pubkey-cert-pem", str(holder_pem), "--id-attr:Id", f"{SOAP11_NS}:Body",
            "--id-attr:Id", f"{WSU_NS}:Timestamp", "--node-xpath", SECURITY_SIGNATURE]


def assertion_signature_arguments(ca_pem: Path) -> list[str]:
    """The xmlsec1 options for the assertion's own signature: its certificate must chain to the CA."""
    return ["--trusted-pem", str(ca_pem), "--id-attr:AssertionID", f"{SAML_NS}:Assertion",
            "--node-xpath", ASSERTION_SIGNATURE]


# --------------------------------------------------------------------------------------------
# What the signed message looks like
# --------------------------------------------------------------------------------------------

def test_the_security_header_follows_the_profile(sts, nurse):
    moment = datetime(2031, 3, 1, 9, 30, 0, 123000, tzinfo=timezone.utc)
    assertion_xml = sts.issue_assertion(nurse.certificate, issue_instant=moment)
    document = etree.fromstring(signed(nurse, assertion_xml, now=moment))

    security = document.find(f"{{{SOAP11_NS}}}Header/{{{WSSE_NS}}}Security")
    assert security.get(f"{{{SOAP11_NS}}}mustUnderstand") == "1"
    assert [etree.QName(child).localname for child in security] == ["Timestamp", "Assertion", "Signature"]
    timestamp, assertion, signature = security
    assert timestamp.findtext(f"{{{WSU_NS}}}Created") == "2031-03-01T09:30:00.123Z"
    assert timestamp.findtext(f"{{{WSU_NS}}}Expires") == "2031-03-01T09:31:00.123Z"
    body = document.find(f"{{{SOAP11_NS}}}Body")
    assert body.nsmap["wsu"] == WSU_NS and body.get(WSU_ID).startswith("id-")
    ds = {"ds": DS_NS, "wsse": WSSE_NS}
    assert signature.find("ds:SignedInfo/ds:CanonicalizationMethod", ds).get("Algorithm") == wsse.EXC_C14N
    assert signature.find("ds:SignedInfo/ds:SignatureMethod", ds).get("Algorithm") == wsse.RSA_SHA256
    references = signature.findall("ds:SignedInfo/ds:Reference", ds)
    assert [r.get("URI") for r in references] == [f"#{body.get(WSU_ID)}", f"#{timestamp.get(WSU_ID)}"]
    for ref in references:
        assert [t.get("Algorithm") for t in ref.findall("ds:Transforms/ds:Transform", ds)] == [wsse.EXC_C14N]
        assert ref.find("ds:DigestMethod", ds).get("Algorithm") == wsse.DIGEST_SHA256
    identifier = signature.find("ds:KeyInfo/wsse:SecurityTokenReference/wsse:KeyIdentifier", ds)
    assert identifier.get("ValueType") == wsse.SAML_ASSERTION_ID
    assert identifier.text == assertion.get("AssertionID")


def test_the_assertion_is_inserted_byte_for_byte(sts, nurse):
    assertion_xml = sts.issue_assertion(nurse.certificate)
    assert assertion_xml in signed(nurse, assertion_xml)


def test_the_assertion_keeps_its_bytes_when_the_envelope_declares_its_namespaces(sts, nurse, pem_files, tmp_path):
    """Tools that extract the assertion from the RSTR copy the namespaces it inherited (the eHealth
    sample shows ``xmlns:SOAP-ENV`` and ``xmlns:wst``); lxml would drop those that the envelope
    declares too if the element were moved in.  The bytes must survive, and both signatures hold."""
    issued = sts.issue_assertion(nurse.certificate)
    extracted = issued.replace(b"<Assertion ", f'<Assertion xmlns:soapenv="{SOAP11_NS}" xmlns:wst="urn:x" '.encode(), 1)
    original = envelope()
    before = etree.tostring(original)
    with_declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n' + extracted
    document = etree.tostring(sign_envelope(original, assertion_xml=with_declaration, key=nurse.private_key,
                                            certificate=nurse.certificate))
    assert extracted in document
    assert etree.tostring(original) == before
    for arguments in (business_signature_arguments(pem_files["nurse"]), assertion_signature_arguments(pem_files["ca"])):
        result = xmlsec_verify(tmp_path, document, *arguments)
        assert result.returncode == 0, result.stderr


def test_signing_refuses_a_token_or_key_of_someone_else(pki, sts, nurse):
    lab = pki.load("lab").authentication
    with pytest.raises(ValueError, match="issued for"):
        signed(lab, sts.issue_assertion(nurse.certificate))
    with pytest.raises(ValueError, match="does not belong"):
        sign_envelope(envelope(), assertion_xml=sts.issue_assertion(nurse.certificate), key=lab.private_key,
                      certificate=nurse.certificate)


def test_the_security_header_is_valid_against_the_official_schemas(sts, nurse):
    schema = official_security_schema()
    document = etree.fromstring(signed(nurse, sts.issue_assertion(nurse.certificate)))
    security = document.find(f"{{{SOAP11_NS}}}Header/{{{WSSE_NS}}}Security")
    assert schema.validate(security), schema.error_log
    assert schema.validate(security.find(f"{{{SAML_NS}}}Assertion")), schema.error_log
    etree.SubElement(security.find(f"{{{WSU_NS}}}Timestamp"), f"{{{WSU_NS}}}Bogus")
    assert not schema.validate(security), "the schema check must be able to fail"


# --------------------------------------------------------------------------------------------
# libxmlsec1 agrees, and a one-byte change breaks both
# --------------------------------------------------------------------------------------------

def test_xmlsec1_verifies_the_business_signature_and_the_assertion_in_place(sts, nurse, pem_files, tmp_path):
    document = signed(nurse, sts.issue_assertion(nurse.certificate))
    ours = xmlsec_verify(tmp_path, document, *business_signature_arguments(pem_files["nurse"]))
    assert ours.returncode == 0, ours.stderr
    assert "SignedInfo References (ok/all): 2/2" in ours.stderr + ours.stdout
    theirs = xmlsec_verify(tmp_path, document, *assertion_signature_arguments(pem_files["ca"]))
    assert theirs.returncode == 0, theirs.stderr
    wrong_key = xmlsec_verify(tmp_path, document, *business_signature_arguments(pem_files["lab"]))
    assert wrong_key.returncode != 0


@pytest.mark.parametrize("part, pattern, arguments, code", [
    ("body text", rb"<x:text>H", "business", RefusalCode.DIGEST_MISMATCH),
    ("timestamp expires", rb"<wsu:Expires>[0-9T:.-]+", "business", RefusalCode.DIGEST_MISMATCH),
    ("assertion validity", rb'NotOnOrAfter="[0-9T:.-]+', "assertion", RefusalCode.ASSERTION_SIGNATURE_INVALID),
])
def test_a_one_byte_change_in_a_signed_part_fails_everywhere(sts, nurse, pki, pem_files, tmp_path, part, pattern,
                                                             arguments, code):
    document = signed(nurse, sts.issue_assertion(nurse.certificate))
    altered = change_one_byte(document, pattern)
    assert altered != document
    options = (business_signature_arguments(pem_files["nurse"]) if arguments == "business"
               else assertion_signature_arguments(pem_files["ca"]))
    assert xmlsec_verify(tmp_path, document, *options).returncode == 0
    assert xmlsec_verify(tmp_path, altered, *options).returncode != 0
    verify_envelope(document, trusted_ca=pki.ca_certificate(), sts_certificate=sts.certificate)
    with pytest.raises(SecurityRefusal) as refused:
        verify_envelope(altered, trusted_ca=pki.ca_certificate(), sts_certificate=sts.certificate)
    assert refused.value.code is code


@pytest.mark.parametrize("curve, method", [(ec.SECP256R1(), wsse.ECDSA_SHA256), (ec.SECP384R1(), wsse.ECDSA_SHA384)])
def test_ec_keys_sign_with_ecdsa(pki, sts, tmp_path, curve, method):
    entry = ec_entry(pki, curve)
    document = signed(entry, sts.issue_assertion(entry.certificate))
    assert f'Algorithm="{method}"'.encode() in document
    holder_pem = tmp_path / "holder.pem"
    holder_pem.write_bytes(entry.certificate.public_bytes(serialization.Encoding.PEM))
    result = xmlsec_verify(tmp_path, document, *business_signature_arguments(holder_pem))
    assert result.returncode == 0, result.stderr
    caller = verify_envelope(document, trusted_ca=pki.ca_certificate(), sts_certificate=sts.certificate)
    assert caller.certificate == entry.certificate


def ec_entry(pki: DevPki, curve: ec.EllipticCurve) -> KeyEntry:
    """An eHealth-like person certificate with an EC key, as eHealth now issues them."""
    key = ec.generate_private_key(curve)
    now = datetime.now(timezone.utc)
    certificate = pki.ca().issue(ehealth_subject(f"SSIN={NURSE_SSIN}", "EC DEVNURSE"), key.public_key(),
                                 usage=CertificateUsage.AUTHENTICATION, not_before=now - timedelta(days=1),
                                 not_after=now + timedelta(days=30))
    return KeyEntry(AUTHENTICATION_ALIAS, key, certificate)


# --------------------------------------------------------------------------------------------
# verify_envelope
# --------------------------------------------------------------------------------------------

def test_a_verified_call_names_its_caller_and_token(pki, sts, nurse):
    assertion_xml = sts.issue_assertion(nurse.certificate)
    caller = verify_envelope(signed(nurse, assertion_xml), trusted_ca=pki.ca_certificate(),
                             sts_certificate=sts.certificate)
    assert caller.identity.ssin == NURSE_SSIN and caller.identity.quality == "nurse"
    assert caller.assertion.assertion_id == etree.fromstring(assertion_xml).get("AssertionID")
    assert caller.assertion.attribute("urn:be:fgov:person:ssin") == NURSE_SSIN
    assert caller.body.tag == f"{{{SOAP11_NS}}}Body"
    assert NURSE_SSIN not in repr(caller) and NURSE_SSIN not in repr(caller.assertion)


@pytest.mark.parametrize("shift, code", [(timedelta(minutes=-10), RefusalCode.TIMESTAMP_EXPIRED),
                                         (timedelta(minutes=10), RefusalCode.TIMESTAMP_NOT_YET_VALID)])
def test_the_timestamp_must_be_current(pki, sts, nurse, shift, code):
    now = datetime.now(timezone.utc)
    document = signed(nurse, sts.issue_assertion(nurse.certificate), now=now + shift)
    with pytest.raises(SecurityRefusal) as refused:
        verify_envelope(document, trusted_ca=pki.ca_certificate(), now=now)
    assert refused.value.code is code
    verify_envelope(document, trusted_ca=pki.ca_certificate(), now=now + shift)


def test_an_assertion_from_another_sts_is_foreign(pki, sts, nurse):
    document = signed(nurse, sts.issue_assertion(nurse.certificate))
    with pytest.raises(SecurityRefusal) as refused:
        verify_envelope(document, trusted_ca=pki.ca_certificate(),
                        sts_certificate=pki.load("lab").authentication.certificate)
    assert refused.value.code is RefusalCode.ASSERTION_FOREIGN


def wrapped(document: bytes, *, keep_id_on_new_body: bool, directly_in_header: bool) -> bytes:
    """The classic wrapping attack: the signed Body moved into the header, another Body in its place."""
    tree = etree.fromstring(document)
    header = tree.find(f"{{{SOAP11_NS}}}Header")
    body = tree.find(f"{{{SOAP11_NS}}}Body")
    tree.remove(body)
    if directly_in_header:
        header.append(body)
    else:
        etree.SubElement(header, "{urn:attacker}Wrapper").append(body)
    evil = etree.SubElement(tree, f"{{{SOAP11_NS}}}Body")
    if keep_id_on_new_body:
        evil.set(WSU_ID, body.get(WSU_ID))
    etree.SubElement(evil, "{urn:test:echo}Echo").text = "something else"
    return etree.tostring(tree)


@pytest.mark.parametrize("keep_id, directly, code", [
    (False, False, RefusalCode.AMBIGUOUS_REFERENCE),
    (False, True, RefusalCode.PART_NOT_SIGNED),
    (True, False, RefusalCode.AMBIGUOUS_REFERENCE),
    (True, True, RefusalCode.AMBIGUOUS_REFERENCE),
])
def test_signature_wrapping_is_refused(pki, sts, nurse, keep_id, directly, code):
    document = wrapped(signed(nurse, sts.issue_assertion(nurse.certificate)), keep_id_on_new_body=keep_id,
                       directly_in_header=directly)
    with pytest.raises(SecurityRefusal) as refused:
        verify_envelope(document, trusted_ca=pki.ca_certificate(), sts_certificate=sts.certificate)
    assert refused.value.code is code


def test_sha1_signatures_are_refused():
    """The e-Contract sample (RSA-SHA1, SHA-1 digests) is refused for its algorithms, at its own time."""
    sample = reference("samples", "ws-security", "mycarenet-ehealth-saml-sts__ws-security-example.xml").read_bytes()
    with pytest.raises(SecurityRefusal) as refused:
        verify_envelope(sample, trusted_ca=_any_certificate(sample),
                        now=datetime(2023, 12, 12, 6, 58, 30, tzinfo=timezone.utc))
    assert refused.value.code is RefusalCode.ALGORITHM_REFUSED


def _any_certificate(document: bytes) -> x509.Certificate:
    token = etree.fromstring(document).find(f".//{{{WSSE_NS}}}BinarySecurityToken")
    return wsse.certificate_from_base64(token.text)


def test_the_ehealth_token_sample_is_read():
    """The eHealth STS sample: SAML 1.1, EC holder-of-key certificate; its names were replaced by
    synthetic ones in the reference pack, so its signature no longer verifies (see SOURCES.md)."""
    sample = reference("samples", "sts", "response_token.xml").read_bytes()
    info = wsse.read_assertion(sample)
    assert info.assertion_id == "_a5cf74ce5972db9f53577c98c01113c8"
    assert info.issuer == "urn:be:fgov:ehealth:sts:1_0"
    assert info.not_on_or_after == datetime(2026, 4, 16, 7, 50, 57, 585000, tzinfo=timezone.utc)
    assert info.attribute("urn:be:fgov:person:ssin") == "85073003328"
    assert isinstance(info.holder_certificate.public_key(), ec.EllipticCurvePublicKey)
    with pytest.raises(SecurityRefusal) as refused:
        wsse.verify_assertion(info.element, sts_certificate=None, now=info.not_before)
    assert refused.value.code is RefusalCode.ASSERTION_SIGNATURE_INVALID


def test_nothing_personal_is_logged(pki, sts, nurse, caplog):
    caplog.set_level(logging.DEBUG)
    assertion_xml = sts.issue_assertion(nurse.certificate)
    verify_envelope(signed(nurse, assertion_xml), trusted_ca=pki.ca_certificate(), sts_certificate=sts.certificate)
    assert NURSE_SSIN not in caplog.text
    assert "X509Certificate" not in caplog.text and "SignatureValue" not in caplog.text


# --------------------------------------------------------------------------------------------
# Through zeep, to a server that verifies
# --------------------------------------------------------------------------------------------

ECHO_WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:tns="urn:test:echo" xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:test:echo" name="Echo">
  <types><xs:schema targetNamespace="urn:test:echo" elementFormDefault="qualified">
    <xs:element name="Echo"><xs:complexType><xs:sequence>
      <xs:element name="text" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
    <xs:element name="EchoResponse"><xs:complexType><xs:sequence>
      <xs:element name="text" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
  </xs:schema></types>
  <message name="EchoIn"><part name="parameters" element="tns:Echo"/></message>
  <message name="EchoOut"><part name="parameters" element="tns:EchoResponse"/></message>
  <portType name="EchoPort"><operation name="Echo"><input message="tns:EchoIn"/><output message="tns:EchoOut"/>
  </operation></portType>
  <binding name="EchoBinding" type="tns:EchoPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Echo"><soap:operation soapAction="urn:test:echo:Echo"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
  </binding>
  <service name="EchoService"><port name="EchoPort" binding="tns:EchoBinding">
    <soap:address location="http://127.0.0.1:9/echo"/></port></service>
</definitions>
"""


class VerifyingEcho:
    """A WSGI service that verifies each call's signature and echoes the text it was sent."""

    def __init__(self, ca: x509.Certificate, sts_certificate: x509.Certificate) -> None:
        self.ca, self.sts_certificate = ca, sts_certificate
        self.received: list[bytes] = []

    def __call__(self, environ, start_response):
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.received.append(raw)
        try:
            caller = verify_envelope(raw, trusted_ca=self.ca, sts_certificate=self.sts_certificate)
        except SecurityRefusal as refusal:
            body = (f'<soapenv:Envelope xmlns:soapenv="{SOAP11_NS}"><soapenv:Body><soapenv:Fault>'
                    f'<faultcode>soapenv:Client</faultcode><faultstring>{refusal.code.value}</faultstring>'
                    '</soapenv:Fault></soapenv:Body></soapenv:Envelope>').encode()
            start_response("500 Internal Server Error", [("Content-Type", "text/xml; charset=utf-8")])
            return [body]
        text = caller.body.findtext("{urn:test:echo}Echo/{urn:test:echo}text")
        answer = etree.Element(f"{{{SOAP11_NS}}}Envelope", nsmap={"soapenv": SOAP11_NS})
        response = etree.SubElement(etree.SubElement(answer, f"{{{SOAP11_NS}}}Body"), "{urn:test:echo}EchoResponse")
        etree.SubElement(response, "{urn:test:echo}text").text = f"{text} ({caller.identity.quality})"
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
        return [etree.tostring(answer, xml_declaration=True, encoding="UTF-8")]


def test_the_zeep_plugin_signs_what_zeep_sends(pki, sts, nurse, pem_files, tmp_path):
    wsdl = tmp_path / "echo.wsdl"
    wsdl.write_text(ECHO_WSDL, encoding="utf-8")
    assertion_xml = sts.issue_assertion(nurse.certificate)
    provided = []

    def token_provider() -> SigningCredential:
        provided.append(1)
        return SigningCredential(assertion_xml, nurse.private_key, nurse.certificate)

    app = VerifyingEcho(pki.ca_certificate(), sts.certificate)
    with serving(app) as url:
        client = zeep.Client(str(wsdl), plugins=[WsseSigningPlugin(token_provider)])
        service = client.create_service("{urn:test:echo}EchoBinding", f"{url}/echo")
        assert service.Echo(text="Hélène <&> co") == "Hélène <&> co (nurse)"
        assert service.Echo(text="again") == "again (nurse)"
    assert len(provided) == 2 and len(app.received) == 2
    assert assertion_xml in app.received[0]
    result = xmlsec_verify(tmp_path, app.received[0], *business_signature_arguments(pem_files["nurse"]))
    assert result.returncode == 0, result.stderr


def test_an_assertion_in_another_encoding_is_inserted_in_utf8(pki, sts, nurse):
    issued = sts.issue_assertion(nurse.certificate)
    latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?>\n" + issued
    document = etree.tostring(sign_envelope(envelope(), assertion_xml=latin1, key=nurse.private_key,
                                            certificate=nurse.certificate), encoding="UTF-8")
    assert issued in document
    verify_envelope(document, trusted_ca=pki.ca_certificate(), sts_certificate=sts.certificate)


def test_the_remembered_certificate_base64_is_the_certificate_s_der(pki, nurse):
    """``certificate_base64`` is remembered per certificate: each certificate still gets its own DER."""
    for certificate in (nurse.certificate, pki.ca_certificate(), nurse.certificate):
        text = wsse.certificate_base64(certificate)
        assert base64.b64decode(text) == certificate.public_bytes(serialization.Encoding.DER)
        assert wsse.certificate_from_base64(text) == certificate
    assert wsse.certificate_base64(nurse.certificate) != wsse.certificate_base64(pki.ca_certificate())


@pytest.mark.parametrize(("moment", "written"), [
    (datetime(2031, 3, 1, 9, 30, 0, 123999, tzinfo=timezone.utc), "2031-03-01T09:30:00.123Z"),
    (datetime(2026, 1, 1, 0, 59, 59, 999, tzinfo=timezone(timedelta(hours=1))), "2025-12-31T23:59:59.000Z"),
    (datetime(2026, 7, 4, 23, 5, 6, 7000, tzinfo=timezone(timedelta(hours=-5))), "2026-07-05T04:05:06.007Z"),
    (datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "0999-01-02T03:04:05.000Z"),
])
def test_instants_are_written_in_utc_with_milliseconds(moment: datetime, written: str) -> None:
    assert format_instant(moment) == written
