"""The simulator's security checks on business calls: each refusal has its own code."""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from lxml import etree

from unified_messaging.simulator.devpki import LAB_NIHII, NURSE_SSIN, DevPki
from unified_messaging.domain.errors import UpstreamFault
from unified_messaging.mycarenet.insurability import GenericInsurabilityClient
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.mycarenet.sts import StsClient, TokenCache, build_request, claims_for
from unified_messaging.mycarenet.wsse import SOAP11_NS, WsseSigningPlugin, sign_envelope
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.population import TEST_PATIENTS
from unified_messaging.simulator import security
from unified_messaging.simulator.security import CallerInfo, SecurityCheck, SimulatedFault
from unified_messaging.simulator.soap import SoapFault, fault_envelope
from unified_messaging.simulator.sts import SimulatedSts
from unified_messaging.serving import serving

NOW = datetime.now(timezone.utc).replace(microsecond=0)
LICENCES = {"unified-messaging-test": "licence-secret"}
GENINS = "urn:be:fgov:ehealth:genericinsurability:protocol:v1"
GENINS_CORE = "urn:be:fgov:ehealth:genericinsurability:core:v1"
GENASYNC = "urn:be:cin:nip:async:generic"
COMMON_V2 = "urn:be:cin:mycarenet:esb:common:v2"


def genins_request(username: str = "unified-messaging-test", password: str = "licence-secret") -> bytes:
    return f"""<soapenv:Envelope xmlns:soapenv="{SOAP11_NS}"><soapenv:Body>
<p:GetInsurabilityRequest xmlns:p="{GENINS}" xmlns:c="{GENINS_CORE}"><p:CommonInput>
<c:Request><c:IsTest>true</c:IsTest></c:Request><c:Origin><c:Package><c:Name>um</c:Name>
<c:License><c:Username>{username}</c:Username><c:Password>{password}</c:Password></c:License></c:Package>
<c:CareProvider><c:Nihii><c:Quality>labo</c:Quality><c:Value>{LAB_NIHII}</c:Value></c:Nihii></c:CareProvider>
</c:Origin><c:InputReference>1</c:InputReference></p:CommonInput>
<p:Request><c:CareReceiverId><c:Inss>{NURSE_SSIN}</c:Inss></c:CareReceiverId></p:Request>
</p:GetInsurabilityRequest></soapenv:Body></soapenv:Envelope>""".encode()


def genasync_get(username: str = "unified-messaging-test", password: str = "licence-secret") -> bytes:
    return f"""<soapenv:Envelope xmlns:soapenv="{SOAP11_NS}"><soapenv:Body>
<g:get xmlns:g="{GENASYNC}" xmlns:c="{COMMON_V2}"><g:Origin><c:Package>
<c:License><c:Username>{username}</c:Username><c:Password>{password}</c:Password></c:License></c:Package></g:Origin>
<g:MsgQuery Max="10" Include="true"><g:MessageName>HCPFAC</g:MessageName></g:MsgQuery>
</g:get></soapenv:Body></soapenv:Envelope>""".encode()


@pytest.fixture(scope="module")
def sts(pki) -> SimulatedSts:
    return SimulatedSts(pki.ca_certificate(), pki.load("sts").entry("sts"), now=lambda: NOW)


@pytest.fixture(scope="module")
def entries(pki) -> dict[str, KeyEntry]:
    return {name: pki.load(name).authentication for name in ("lab", "nurse", "expired", "untrusted")}


@pytest.fixture
def check(pki, sts) -> SecurityCheck:
    return SecurityCheck(pki.ca_certificate(), sts.certificate, licences=LICENCES, now=lambda: NOW)


def signed(entry: KeyEntry, assertion_xml: bytes, request: bytes | None = None, *, at: datetime = NOW) -> bytes:
    envelope = sign_envelope(etree.fromstring(request or genins_request()), assertion_xml=assertion_xml,
                             key=entry.private_key, certificate=entry.certificate, now=lambda: at)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def refused(check: SecurityCheck, document: bytes) -> SimulatedFault:
    with pytest.raises(SimulatedFault) as caught:
        check.check(document)
    assert caught.value.message
    return caught.value


# --------------------------------------------------------------------------------------------
# Accepted calls
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("request_bytes", [genins_request(), genasync_get()], ids=["GenericInsurability", "GenAsync"])
def test_a_signed_call_with_a_licence_is_accepted(check, sts, entries, request_bytes):
    lab = entries["lab"]
    caller = check.check(signed(lab, sts.issue_assertion(lab.certificate), request_bytes))
    assert isinstance(caller, CallerInfo)
    assert caller.identity.quality == "labo" and caller.licence_username == "unified-messaging-test"
    assert caller.attributes["urn:be:fgov:ehealth:1.0:labo:nihii-number:recognisedlabo:boolean"] == ("true",)
    assert check.counters["security.accepted"] == 1


def test_the_check_is_a_simulator_interceptor(check, sts, entries):
    nurse = entries["nurse"]
    request = SimpleNamespace(raw=signed(nurse, sts.issue_assertion(nurse.certificate)), context={})
    check(request)
    assert request.context["caller"].identity.ssin == NURSE_SSIN
    assert NURSE_SSIN not in repr(request.context["caller"])


# --------------------------------------------------------------------------------------------
# Refusals, one code each
# --------------------------------------------------------------------------------------------

def refusal_cases(pki: DevPki, sts: SimulatedSts, entries: dict[str, KeyEntry]) -> dict[str, tuple[bytes, str]]:
    lab, nurse, untrusted = entries["lab"], entries["nurse"], entries["untrusted"]
    token = sts.issue_assertion(lab.certificate)
    good = signed(lab, token)
    foreign_sts = SimulatedSts(pki.ca_certificate(), pki.load("untrusted").authentication, now=lambda: NOW)
    return {
        "unsigned": (genins_request(), security.UNSIGNED),
        "tampered body": (good.replace(NURSE_SSIN.encode(), b"00010100123"), security.TAMPERED),
        "expired timestamp": (signed(lab, token, at=NOW - timedelta(minutes=10)), security.TIMESTAMP_EXPIRED),
        "timestamp in the future": (signed(lab, token, at=NOW + timedelta(minutes=10)),
                                    security.TIMESTAMP_NOT_YET_VALID),
        "foreign assertion": (signed(lab, foreign_sts.issue_assertion(lab.certificate)), security.ASSERTION_FOREIGN),
        "expired assertion": (signed(lab, sts.issue_assertion(lab.certificate,
                                                              issue_instant=NOW - timedelta(hours=25))),
                              security.ASSERTION_EXPIRED),
        "untrusted CA certificate": (signed(untrusted, sts.issue_assertion(untrusted.certificate)),
                                     security.CERTIFICATE_UNTRUSTED),
        "expired certificate": (signed(entries["expired"], sts.issue_assertion(entries["expired"].certificate)),
                                security.CERTIFICATE_EXPIRED),
        "wrong licence": (signed(nurse, sts.issue_assertion(nurse.certificate), genins_request(password="guess")),
                          security.LICENCE_REFUSED),
        "unknown licence": (signed(nurse, sts.issue_assertion(nurse.certificate), genasync_get(username="someone")),
                            security.LICENCE_REFUSED),
        "no licence": (signed(nurse, sts.issue_assertion(nurse.certificate), genins_request().replace(
            b"<c:License>", b"<c:Licence>").replace(b"</c:License>", b"</c:Licence>")), security.LICENCE_MISSING),
        "not XML": (b"<soapenv:Envelope", security.MALFORMED),
    }


def test_every_refusal_has_its_code_and_the_mechanics_one_each(pki, sts, entries, check, caplog):
    """The catalogue's "user not recognised" (SOA-01001) covers the licence and a certificate of another
    CA, told apart by their message; each WS-Security refusal has a code of its own (SIM-SEC-nn)."""
    cases = refusal_cases(pki, sts, entries)
    messages = {}
    for name, (document, code) in cases.items():
        fault = refused(check, document)
        assert fault.code == code, f"{name}: {fault.code} {fault.message}"
        assert isinstance(fault, SoapFault) and fault.side == "Client"
        messages[name] = fault.message
    mechanics = ["unsigned", "tampered body", "expired timestamp", "foreign assertion", "expired assertion",
                 "expired certificate"]
    assert len({cases[name][1] for name in mechanics}) == len(mechanics)
    assert all(cases[name][1].startswith(security.NON_CATALOGUE_PREFIX) for name in mechanics)
    not_recognised = ["untrusted CA certificate", "wrong licence", "unknown licence", "no licence"]
    assert {cases[name][1] for name in not_recognised} == {"SOA-01001"}
    assert "licence" in messages["wrong licence"] and "licence" not in messages["untrusted CA certificate"]
    assert check.counters["security.refused.SOA-01001"] == len(not_recognised)
    assert "licence-secret" not in caplog.text and "guess" not in caplog.text
    assert NURSE_SSIN not in caplog.text


def test_a_call_signed_with_a_certificate_instead_of_a_token_is_refused(pki, check, entries):
    lab = entries["lab"]
    document = etree.tostring(build_request(lab, claims=claims_for(lab.identity), now=NOW))
    assert refused(check, document).code == security.TOKEN_MISSING


def test_a_message_without_timestamp_is_refused(check, sts, entries):
    lab = entries["lab"]
    document = etree.fromstring(signed(lab, sts.issue_assertion(lab.certificate)))
    timestamp = document.find(".//{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}"
                              "Timestamp")
    timestamp.getparent().remove(timestamp)
    assert refused(check, etree.tostring(document)).code == security.TIMESTAMP_MISSING


def test_the_fault_is_the_platform_style_fault(check):
    fault = refused(check, genins_request())
    answer = etree.fromstring(fault_envelope(fault))
    assert answer.findtext(".//faultcode") == "soapenv:Client"
    assert answer.findtext(".//{urn:be:fgov:ehealth:errors:soa:v1}SystemError/Code") == security.UNSIGNED
    assert "not signed" in answer.findtext(".//faultstring")


def test_the_codes_table_is_documented():
    documented = security.__doc__
    codes = {value for name, value in vars(security).items() if name.isupper() and isinstance(value, str)
             and value.startswith("SOA-")}
    assert codes and all(code in documented for code in codes)
    assert len(set(security.CODES.values())) == len(security.CODES)


# --------------------------------------------------------------------------------------------
# In the simulator, and end to end with the GenericInsurability client
# --------------------------------------------------------------------------------------------

def test_the_simulator_answers_a_refusal_as_a_platform_fault(check):
    simulator = Simulator()
    simulator.interceptors.append(check)
    request = genins_request()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": Simulator.GENERICINSURABILITY_PATH,
               "CONTENT_LENGTH": str(len(request)), "CONTENT_TYPE": "text/xml; charset=utf-8",
               "wsgi.input": io.BytesIO(request)}
    statuses = []
    answer = b"".join(simulator(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["500 Internal Server Error"]
    assert f"<Code>{security.UNSIGNED}</Code>".encode() in answer


def test_signed_insurability_calls_end_to_end(pki, entries):
    """STS token, zeep plugin, GenericInsurability client, simulator with the security check."""
    sts = SimulatedSts(pki.ca_certificate(), pki.load("sts").entry("sts"))
    simulator = Simulator()
    check = SecurityCheck(pki.ca_certificate(), sts.certificate, licences=LICENCES)
    simulator.interceptors.append(check)
    lab = entries["lab"]
    query = InsurabilityQuery(CareProvider(LAB_NIHII, "labo"), date.today(), date.today(), ssin=TEST_PATIENTS[0].ssin)
    with serving(sts) as sts_url, serving(simulator) as simulator_url:
        plugin = WsseSigningPlugin(TokenCache(StsClient(f"{sts_url}/sts")).token_provider(lab))
        address = f"{simulator_url}{Simulator.GENERICINSURABILITY_PATH}"
        for password, expected in (("licence-secret", None), ("wrong", security.LICENCE_REFUSED)):
            client = GenericInsurabilityClient(address, licence_username="unified-messaging-test",
                                               licence_password=password, plugins=[plugin])
            try:
                if expected is None:
                    assert client.get_insurability(query).insurabilities
                else:
                    with pytest.raises(UpstreamFault) as refused_call:
                        client.get_insurability(query)
                    assert refused_call.value.code == expected
            finally:
                client.close()
    assert check.counters["security.accepted"] == 1
    assert sts.counters["sts.issued"] == 1


@pytest.mark.parametrize("xml, expected", [
    (b"<o:Origin xmlns:o='urn:x'><o:Package><o:License/></o:Package></o:Origin>", [True]),
    (b"<Origin><Package><License/></Package></Origin>", [True]),
    (b"<Origin><Package><Licence/><XLicense/></Package></Origin>", [False, False]),
    (b"<Other><Package><License/></Package></Other>", [False]),
    (b"<o:Origin xmlns:o='urn:x'><o:License/></o:Origin>", [False]),
])
def test_the_licence_is_found_by_its_local_name_and_place(xml, expected):
    """``_is_licence`` tests the tag's text first (the fast path for every element of the body):
    the answers are those of the local names, whatever the namespace."""
    root = etree.fromstring(xml)
    leaves = [element for element in root.iter() if len(element) == 0]
    assert [security._is_licence(leaf) for leaf in leaves] == expected
