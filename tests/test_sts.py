"""The eHealth STS client, the simulator's STS, and the token cache, over real HTTP (waitress)."""
from __future__ import annotations

import io
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from lxml import etree

from unified_messaging.simulator.devpki import (
    GROUP_NUMBER, LAB_NIHII, NURSE_NIHII, NURSE_SSIN,
)
from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.sts import (
    HOLDER_SSIN, PERSON_SSIN, SOA_ERRORS_NS, WST_NS, Claim, SamlToken, StsClient, TokenCache, build_request,
    claims_for, parse_response,
)
from unified_messaging.mycarenet.wsse import (
    SAML_NS, SOAP11_NS, WSSE_NS, WSU_ID, WSU_NS, RefusalCode, SecurityRefusal, certificate_base64, sign_elements,
    sign_envelope, token_reference, verify_assertion, verify_envelope,
)
from unified_messaging.simulator import security
from unified_messaging.simulator.soap import fault_envelope
from unified_messaging.simulator.sts import ISSUER, SimulatedSts
from unified_messaging.serving import serving as serve_locally
from tests.conftest import official_security_schema
from tests.support import Clock, change_one_byte

XMLSEC1 = shutil.which("xmlsec1")
SECURITY_SIGNATURE = ("/*[local-name()='Envelope']/*[local-name()='Header']/*[local-name()='Security']"
                      "/*[local-name()='Signature']")
START = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def entries(pki) -> dict[str, KeyEntry]:
    return {name: pki.load(name).authentication for name in ("lab", "nurse", "nursing_group", "expired", "untrusted")}


@pytest.fixture
def clock() -> Clock:
    """A settable clock shared by the client, the STS and the cache."""
    return Clock(START)


@pytest.fixture
def simulated(pki, clock) -> SimulatedSts:
    return SimulatedSts(pki.ca_certificate(), pki.load("sts").entry("sts"), token_lifetime=timedelta(hours=8),
                        now=clock)


@contextmanager
def serving(app, threads: int = 8) -> Iterator[str]:
    with serve_locally(app, threads=threads) as url:
        yield url + "/IAM/SecurityTokenService/v1"


@pytest.fixture
def endpoint(simulated) -> Iterator[str]:
    with serving(simulated) as url:
        yield url


class RecordingSession(requests.Session):
    """A requests session that keeps the last answer's bytes."""

    last: bytes = b""

    def post(self, *args, **kwargs):
        response = super().post(*args, **kwargs)
        self.last = response.content
        return response


def xmlsec_verify(folder: Path, document: bytes, *arguments: str) -> subprocess.CompletedProcess:
    if XMLSEC1 is None:
        pytest.skip("xmlsec1 (libxmlsec1) is not installed")
    path = folder / f"document-{len(list(folder.iterdir()))}.xml"
    path.write_bytes(document)
    return subprocess.run([XMLSEC1, "--verify", *arguments, str(path)], capture_output=True, text=True, timeout=30)


def pem(folder: Path, certificate) -> Path:
    path = folder / f"certificate-{len(list(folder.iterdir()))}.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def request_bytes(entry: KeyEntry, now: datetime) -> bytes:
    envelope = build_request(entry, claims=claims_for(entry.identity), now=now)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def sts_request_arguments(holder_pem: Path) -> list[str]:
    """xmlsec1 options for the STS request: the signer's key; wsu:Id on Body, Timestamp and the token."""
    return ["--pubkey-cert-pem", str(holder_pem), "--id-attr:Id", f"{SOAP11_NS}:Body",
            "--id-attr:Id", f"{WSU_NS}:Timestamp", "--id-attr:Id", f"{WSSE_NS}:BinarySecurityToken",
            "--node-xpath", SECURITY_SIGNATURE]


# --------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------

def test_claims_follow_the_ehealth_convention(entries):
    assert claims_for(entries["nurse"].identity) == (
        Claim(HOLDER_SSIN, NURSE_SSIN), Claim(PERSON_SSIN, NURSE_SSIN),
        Claim("urn:be:fgov:person:ssin:ehealth:1.0:professional:nurse:boolean"),
        Claim("urn:be:fgov:person:ssin:ehealth:1.0:nihii:nurse:nihii11"))
    assert claims_for(entries["lab"].identity) == (
        Claim("urn:be:fgov:ehealth:1.0:labo:nihii-number", LAB_NIHII[:8]),
        Claim("urn:be:fgov:ehealth:1.0:labo:nihii-number:recognisedlabo:boolean"))
    assert claims_for(entries["nursing_group"].identity)[0] == Claim(
        "urn:be:fgov:ehealth:1.0:groupofnurses:nihii-number", GROUP_NUMBER)
    assert NURSE_SSIN not in repr(claims_for(entries["nurse"].identity))


def test_the_request_is_a_signed_ws_trust_issue(entries):
    envelope = build_request(entries["nurse"], claims=claims_for(entries["nurse"].identity), now=START)
    security = envelope.find(f"{{{SOAP11_NS}}}Header/{{{WSSE_NS}}}Security")
    assert [etree.QName(child).localname for child in security] == ["Timestamp", "BinarySecurityToken", "Signature"]
    rst = envelope.find(f"{{{SOAP11_NS}}}Body/{{{WST_NS}}}RequestSecurityToken")
    wst = {"wst": WST_NS}
    assert rst.findtext("wst:TokenType", namespaces=wst) == \
        "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
    assert rst.findtext("wst:RequestType", namespaces=wst) == f"{WST_NS}/Issue"
    assert rst.findtext("wst:KeyType", namespaces=wst) == f"{WST_NS}/PublicKey"
    assert rst.find("wst:UseKey", wst)[0].text == security[1].text
    references = envelope.findall(".//{http://www.w3.org/2000/09/xmldsig#}Reference")
    assert len(references) == 3


def test_the_request_and_its_header_are_valid_against_the_official_schemas(entries):
    schema = official_security_schema()
    envelope = build_request(entries["lab"], claims=claims_for(entries["lab"].identity), now=START)
    rst = envelope.find(f"{{{SOAP11_NS}}}Body/{{{WST_NS}}}RequestSecurityToken")
    assert schema.validate(rst), schema.error_log
    assert schema.validate(envelope.find(f"{{{SOAP11_NS}}}Header/{{{WSSE_NS}}}Security")), schema.error_log


@pytest.mark.parametrize("part, pattern", [
    ("claim value", rb"<auth:Value>[0-9]+"),
    ("timestamp expires", rb"<wsu:Expires>[0-9T:.-]+"),
    ("binary security token", rb'<wsse:BinarySecurityToken [^>]*wsu:Id="[^"]+">MII[A-Za-z0-9+/]{20}'),
])
def test_xmlsec1_verifies_the_request_and_a_one_byte_change_fails(pki, entries, tmp_path, part, pattern):
    nurse = entries["nurse"]
    document = request_bytes(nurse, datetime.now(timezone.utc))
    arguments = sts_request_arguments(pem(tmp_path, nurse.certificate))
    good = xmlsec_verify(tmp_path, document, *arguments)
    assert good.returncode == 0, good.stderr
    assert "SignedInfo References (ok/all): 3/3" in good.stderr + good.stdout
    altered = change_one_byte(document, pattern)
    assert xmlsec_verify(tmp_path, altered, *arguments).returncode != 0
    verify_envelope(document, trusted_ca=pki.ca_certificate(), require_signed_token=True)
    with pytest.raises(SecurityRefusal) as refused:
        verify_envelope(altered, trusted_ca=pki.ca_certificate(), require_signed_token=True)
    assert refused.value.code in (RefusalCode.DIGEST_MISMATCH, RefusalCode.TOKEN_MISSING,
                                  RefusalCode.SIGNATURE_INVALID)


# --------------------------------------------------------------------------------------------
# Getting a token from the simulated STS
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, attribute, value", [
    ("nurse", PERSON_SSIN, NURSE_SSIN),
    ("nurse", "urn:be:fgov:person:ssin:ehealth:1.0:nihii:nurse:nihii11", NURSE_NIHII),
    ("lab", "urn:be:fgov:ehealth:1.0:labo:nihii-number:recognisedlabo:boolean", "true"),
    ("nursing_group", "urn:be:fgov:ehealth:1.0:groupofnurses:nihii-number", GROUP_NUMBER),
])
def test_the_sts_issues_a_token_with_the_holders_attributes(pki, entries, clock, simulated, endpoint, name,
                                                           attribute, value):
    client = StsClient(endpoint, now=clock, sts_certificate=simulated.certificate)
    token = client.request_token(entries[name])
    assert token.attribute(attribute) == value
    assert token.not_after == START + timedelta(hours=8)
    assert token.not_before == START - timedelta(minutes=5)
    assert simulated.counters["sts.issued"] == 1
    assertion = verify_assertion(etree.fromstring(token.assertion_xml), sts_certificate=simulated.certificate,
                                 now=START)
    assert assertion.holder_certificate == entries[name].certificate and assertion.issuer == ISSUER


def test_the_token_keeps_the_bytes_received_and_they_verify_with_xmlsec1(pki, entries, clock, simulated, endpoint,
                                                                        tmp_path):
    clock.set(datetime.now(timezone.utc))
    session = RecordingSession()
    token = StsClient(endpoint, session=session, now=clock).request_token(entries["nurse"])
    assert token.assertion_xml in session.last
    assert token.assertion_xml.startswith(b"<Assertion ") and b"soapenv" not in token.assertion_xml
    arguments = ["--trusted-pem", str(pki.ca_certificate_path), "--id-attr:AssertionID", f"{SAML_NS}:Assertion"]
    result = xmlsec_verify(tmp_path, token.assertion_xml, *arguments)
    assert result.returncode == 0, result.stderr
    in_answer = xmlsec_verify(tmp_path, session.last, *arguments)
    assert in_answer.returncode == 0, in_answer.stderr
    altered = change_one_byte(token.assertion_xml, rb"<AttributeValue>[0-9]+")
    assert xmlsec_verify(tmp_path, altered, *arguments).returncode != 0
    with pytest.raises(SecurityRefusal):
        verify_assertion(etree.fromstring(altered), sts_certificate=simulated.certificate, now=clock())


def test_the_answer_and_the_assertion_are_valid_against_the_official_schemas(entries, clock, endpoint):
    schema = official_security_schema()
    session = RecordingSession()
    StsClient(endpoint, session=session, now=clock).request_token(entries["lab"])
    answer = etree.fromstring(session.last)
    response = answer.find(f"{{{SOAP11_NS}}}Body/{{{WST_NS}}}RequestSecurityTokenResponse")
    assert schema.validate(response), schema.error_log
    assertion = response.find(f".//{{{SAML_NS}}}Assertion")
    assert schema.validate(assertion), schema.error_log


def test_the_lab_token_signs_business_calls(pki, entries, clock, simulated, endpoint):
    lab = entries["lab"]
    token = StsClient(endpoint, now=clock).request_token(lab)
    message = etree.fromstring(f'<e:Envelope xmlns:e="{SOAP11_NS}"><e:Body><p/></e:Body></e:Envelope>'.encode())
    message = sign_envelope(message, assertion_xml=token.assertion_xml, key=lab.private_key,
                            certificate=lab.certificate, now=clock)
    caller = verify_envelope(etree.tostring(message), trusted_ca=pki.ca_certificate(), now=clock,
                             sts_certificate=simulated.certificate)
    assert caller.assertion.assertion_id == token.assertion_id


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, client_shift, code", [
    ("untrusted", timedelta(0), security.CERTIFICATE_UNTRUSTED),
    ("expired", timedelta(0), security.CERTIFICATE_EXPIRED),
    ("nurse", timedelta(minutes=-10), security.TIMESTAMP_EXPIRED),
])
def test_the_sts_refuses_with_a_code_and_a_message(entries, clock, simulated, endpoint, name, client_shift, code):
    client = StsClient(endpoint, now=lambda: clock() + client_shift)
    with pytest.raises(UpstreamFault) as refused:
        client.request_token(entries[name])
    assert refused.value.code == code
    assert refused.value.message and refused.value.advice
    assert simulated.counters[f"sts.refused.{code}"] == 1
    assert simulated.counters["sts.issued"] == 0


def test_the_sts_refuses_an_altered_request(entries, clock, simulated, endpoint):
    document = change_one_byte(request_bytes(entries["nurse"], clock()), rb"<auth:Value>[0-9]+")
    response = requests.post(endpoint, data=document, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=10)
    assert response.status_code == 500
    with pytest.raises(UpstreamFault) as refused:
        parse_response(response.content, status=response.status_code)
    assert refused.value.code == security.TAMPERED


def test_the_sts_refuses_a_token_for_another_key(entries, clock, simulated, endpoint):
    """A request whose UseKey names the lab while the nurse signs it: refused, never issued."""
    nurse, lab = entries["nurse"], entries["lab"]
    envelope = build_request(nurse, claims=claims_for(nurse.identity), now=clock())
    security_header = envelope.find(f"{{{SOAP11_NS}}}Header/{{{WSSE_NS}}}Security")
    timestamp, token, signature = security_header
    security_header.remove(signature)
    body = envelope.find(f"{{{SOAP11_NS}}}Body")
    body.find(f".//{{{WST_NS}}}UseKey/{{{WSSE_NS}}}BinarySecurityToken").text = certificate_base64(lab.certificate)
    sign_elements(security_header, [(e.get(WSU_ID), e) for e in (timestamp, token, body)], key=nurse.private_key,
                  key_info=token_reference(token))
    answer = requests.post(endpoint, data=etree.tostring(envelope), timeout=10)
    with pytest.raises(UpstreamFault) as refused:
        parse_response(answer.content, status=answer.status_code)
    assert refused.value.code == security.STS_INVALID_REQUEST
    assert "UseKey" in refused.value.message
    assert simulated.counters["sts.issued"] == 0


def test_a_token_for_another_certificate_is_not_accepted(pki, entries, clock, simulated):
    lab = entries["lab"]

    def wrong_sts(environ, start_response):
        envelope = (f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><wst:RequestSecurityTokenResponse xmlns:wst="{WST_NS}">'
                    '<wst:RequestedSecurityToken>').encode() + simulated.issue_assertion(lab.certificate) + \
            b"</wst:RequestedSecurityToken></wst:RequestSecurityTokenResponse></s:Body></s:Envelope>"
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [envelope]

    with serving(wrong_sts) as url:
        with pytest.raises(UpstreamFault) as refused:
            StsClient(url, now=clock).request_token(entries["nurse"])
    assert refused.value.code == "UM-STS-BAD-TOKEN"


def test_a_token_from_an_untrusted_sts_is_not_accepted(entries, clock, endpoint):
    client = StsClient(endpoint, now=clock, sts_certificate=entries["lab"].certificate)
    with pytest.raises(UpstreamFault) as refused:
        client.request_token(entries["nurse"])
    assert refused.value.code == "UM-STS-BAD-TOKEN"


def test_an_unreachable_sts_is_unavailable(entries, clock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UpstreamUnavailable):
        StsClient(f"http://127.0.0.1:{port}/sts", now=clock, timeout=2).request_token(entries["nurse"])


def test_a_fault_without_the_ehealth_detail_keeps_the_soap_faultcode():
    fault = (f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><s:Fault><faultcode>s:Server</faultcode>'
             '<faultstring>down for maintenance</faultstring></s:Fault></s:Body></s:Envelope>').encode()
    with pytest.raises(UpstreamFault) as refused:
        parse_response(fault, status=500)
    assert (refused.value.code, refused.value.message) == ("Server", "down for maintenance")
    with pytest.raises(UpstreamUnavailable):
        parse_response(b"<html>proxy error</html>", status=502)


# --------------------------------------------------------------------------------------------
# The token cache
# --------------------------------------------------------------------------------------------

def run_together(count: int, work) -> list:
    """Run ``work`` in ``count`` threads released at once; return results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_32_concurrent_callers_cause_one_sts_call_and_renewal_comes_before_expiry(entries, clock, simulated,
                                                                                 endpoint):
    cache = TokenCache(StsClient(endpoint, now=clock), renew_before=timedelta(minutes=5), now=clock)
    tokens = run_together(32, lambda: cache.get(entries["nurse"]))
    assert all(isinstance(token, SamlToken) for token in tokens)
    assert len({token.assertion_id for token in tokens}) == 1
    assert simulated.counters["sts.issued"] == 1

    clock.set(tokens[0].not_after - timedelta(minutes=6))
    assert cache.get(entries["nurse"]).assertion_id == tokens[0].assertion_id
    assert simulated.counters["sts.issued"] == 1
    clock.set(tokens[0].not_after - timedelta(minutes=4))
    renewed = run_together(32, lambda: cache.get(entries["nurse"]))
    assert len({token.assertion_id for token in renewed}) == 1
    assert renewed[0].assertion_id != tokens[0].assertion_id
    assert simulated.counters["sts.issued"] == 2


def test_different_certificates_do_not_wait_for_each_other(entries, clock, simulated):
    nurse_certificate = entries["nurse"].certificate
    release = threading.Event()
    nurse_marker = certificate_base64(nurse_certificate)[-40:].encode()

    def gated(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if nurse_marker in body:
            release.wait(timeout=10)
        environ["wsgi.input"] = io.BytesIO(body)
        return simulated(environ, start_response)

    with serving(gated) as url:
        cache = TokenCache(StsClient(url, now=clock), now=clock)
        slow = threading.Thread(target=cache.get, args=(entries["nurse"],))
        slow.start()
        time.sleep(0.2)
        started = time.monotonic()
        cache.get(entries["lab"])
        assert time.monotonic() - started < 5
        assert slow.is_alive()
        release.set()
        slow.join(timeout=10)
    assert simulated.counters["sts.issued"] == 2


def test_waiting_callers_share_a_failed_renewal(entries, clock):
    calls = []

    def refusing(environ, start_response):
        calls.append(1)
        time.sleep(0.3)
        fault = security.SimulatedFault(security.CERTIFICATE_EXPIRED, "expired")
        start_response("500 Internal Server Error", [("Content-Type", "text/xml")])
        return [fault_envelope(fault)]

    with serving(refusing) as url:
        cache = TokenCache(StsClient(url, now=clock), now=clock)
        results = run_together(16, lambda: cache.get(entries["nurse"]))
    assert all(isinstance(result, UpstreamFault) and result.code == security.CERTIFICATE_EXPIRED for result in results)
    assert len(calls) == 1


def test_a_failed_renewal_keeps_the_current_token_while_it_is_valid(entries, clock, simulated):
    with serving(simulated) as url:
        cache = TokenCache(StsClient(url, now=clock, timeout=2), now=clock)
        token = cache.get(entries["nurse"])
    clock.set(token.not_after - timedelta(minutes=3))
    assert cache.get(entries["nurse"]) is token
    clock.set(token.not_after - timedelta(seconds=30))
    with pytest.raises(UpstreamUnavailable):
        cache.get(entries["nurse"])


def test_the_provider_gives_what_the_signing_plugin_needs(entries, clock, endpoint):
    cache = TokenCache(StsClient(endpoint, now=clock), now=clock)
    credential = cache.token_provider(entries["nurse"])()
    assert credential.private_key is entries["nurse"].private_key
    assert credential.assertion_xml == cache.get(entries["nurse"]).assertion_xml
    cache.invalidate(entries["nurse"])
    assert cache.get(entries["nurse"]).assertion_xml != credential.assertion_xml


def test_an_ehealth_style_fault_detail_is_read():
    fault = security.SimulatedFault(security.CERTIFICATE_UNTRUSTED, "not our CA")
    document = fault_envelope(fault)
    assert SOA_ERRORS_NS.encode() in document
    with pytest.raises(UpstreamFault) as refused:
        parse_response(document, status=500)
    assert (refused.value.code, refused.value.message) == (security.CERTIFICATE_UNTRUSTED, "not our CA")
