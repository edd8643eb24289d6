"""The gateway trusts only the platform's own, unchanged, matching answers; the platform refuses replays.

Each test was first a reproducer of a defect found in review (forged unsigned answer accepted,
answer signed by a care provider's certificate accepted, comments truncating signed values,
another patient's answer replayed, a replayed request accepted, a ten-year Timestamp accepted).
"""
from __future__ import annotations

import datetime as dt
import re

import requests
import zeep
from lxml import etree

from tests.conftest import gateway_against
from tests.support import GENINS, LAB, consult, patient, tampering_proxy
from unified_messaging.mycarenet.wsse import sign_with_certificate
from unified_messaging.serving import serving
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.simulator.population import TEST_PATIENTS

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"


def _ask(gateway, ssin: str):
    client = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl")
    return client.service.GetInsurability(request={"CareProvider": LAB, "Ssin": ssin, "PeriodStart": dt.date.today()})


def _refused(result, code: str) -> None:
    assert result.Status == "ERROR", result
    assert result.Messages.Message[0].Code == code, result.Messages


def test_an_unsigned_forged_answer_is_refused(tmp_path, pki, platform):
    _, url, _ = platform

    def forge(answer: bytes) -> bytes:
        stripped = re.sub(rb"<soapenv:Header>.*?</soapenv:Header>", b"", answer, flags=re.S)
        assert stripped != answer
        return stripped.replace(b"Voorbeeld", b"FORGED")

    with serving(tampering_proxy(url, change_answer=forge)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        _refused(consult(gateway), "UM-ANSWER-UNSIGNED")


def test_an_answer_signed_by_a_care_providers_certificate_is_refused(tmp_path, pki, platform):
    _, url, _ = platform
    nurse = pki.load("nurse").authentication

    def resign(answer: bytes) -> bytes:
        envelope = etree.fromstring(answer)
        envelope.remove(envelope.find(f"{SOAP}Header"))
        envelope = etree.fromstring(etree.tostring(envelope).replace(b"Voorbeeld", b"FORGED"))
        sign_with_certificate(envelope, key=nurse.private_key, certificate=nurse.certificate,
                              now=dt.datetime.now(dt.timezone.utc), ttl=dt.timedelta(minutes=5))
        return etree.tostring(envelope)

    with serving(tampering_proxy(url, change_answer=resign)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        _refused(consult(gateway), "UM-ANSWER-SIGNER")


def test_comments_in_a_signed_answer_do_not_truncate_values(tmp_path, pki, platform):
    _, url, _ = platform
    patient = next(p for p in TEST_PATIENTS if p.scenario == "preferential_rate" and p.last_name == "Proef")

    def inject(answer: bytes) -> bytes:
        changed = re.sub(rb"(CT1>1)(\d\d</)", rb"\1<!---->\2", answer).replace(b"Proef<", b"Pr<!---->oef<")
        assert changed != answer
        return changed

    with serving(tampering_proxy(url, change_answer=inject)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        result = _ask(gateway, patient.ssin)
    assert result.Status == "OK"
    assert result.Patient.LastName == "Proef"
    assert result.Insurabilities.Insurability[0].CT1 == "131"


def test_an_answer_about_another_patient_is_refused(tmp_path, pki, platform):
    _, url, _ = platform
    other = next(p for p in TEST_PATIENTS if p.scenario == "deceased")
    saved: list[bytes] = []

    def replay_first(answer: bytes) -> bytes:
        saved.append(answer)
        return saved[0]

    with serving(tampering_proxy(url, change_answer=replay_first)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        assert _ask(gateway, patient("insured").ssin).Status == "OK"
        _refused(_ask(gateway, other.ssin), "UM-ANSWER-MISMATCH")


def test_a_replayed_signed_request_is_refused(tmp_path, pki, platform):
    simulator, url, _ = platform
    captured: list[bytes] = []

    def keep(body: bytes) -> bytes:
        captured.append(body)
        return body

    with serving(tampering_proxy(url, keep)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        assert consult(gateway).Status == "OK"
    again = requests.post(url + GENINS, data=captured[-1], headers={"Content-Type": "text/xml"}, timeout=10)
    assert again.status_code == 500 and b"SIM-SEC-21" in again.content
    assert simulator.counters["security.refused.SIM-SEC-21"] == 1


def test_a_timestamp_valid_for_years_is_refused(pki):
    from unified_messaging.mycarenet.wsse import RefusalCode, SecurityRefusal, sign_envelope, verify_envelope
    from unified_messaging.simulator.sts import SimulatedSts

    lab = pki.load("lab").authentication
    sts = SimulatedSts(pki.ca_certificate(), pki.load("sts").authentication)
    request = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/>'
               b'<soapenv:Body><x:Q xmlns:x="urn:x"/></soapenv:Body></soapenv:Envelope>')
    signed = sign_envelope(etree.fromstring(request), assertion_xml=sts.issue_assertion(lab.certificate),
                           key=lab.private_key, certificate=lab.certificate, ttl_seconds=10 * 365 * 86400)
    try:
        verify_envelope(etree.tostring(signed), trusted_ca=pki.ca_certificate())
    except SecurityRefusal as refusal:
        assert refusal.code is RefusalCode.TIMESTAMP_TOO_LONG
    else:
        raise AssertionError("a ten-year Timestamp was accepted")


def test_a_refused_token_is_renewed_once_after_an_sts_key_rollover(tmp_path, pki, platform):
    simulator, url, _ = platform
    with gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=url + GENINS) as gateway:
        assert consult(gateway).Status == "OK"
        # the platform rolls its STS key over: new tokens are signed with the new key, old ones refused
        new_key = pki.load("nurse").authentication
        sts = simulator._mounts[STS_PATH]
        sts._signing = new_key
        simulator.interceptors[0]._sts = new_key.certificate
        assert consult(gateway).Status == "OK"
        assert consult(gateway).Status == "OK"
    assert simulator.counters["security.refused.SIM-SEC-12"] == 1
    assert simulator.counters["sts.issued"] == 2
