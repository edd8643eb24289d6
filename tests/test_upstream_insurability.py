"""The GenericInsurability client against the simulator, over real sockets.

Every scenario of the simulated population goes through ``GenericInsurabilityClient``; the exact
bytes exchanged are captured and validated against the OFFICIAL schema from ``../shared/reference``
(those checks are skipped when the reference folder is absent).
"""
from __future__ import annotations

import io
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import pytest
from lxml import etree
from zeep import Plugin

from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable
from unified_messaging.mycarenet.insurability import GenericInsurabilityClient, insurability_reference
from unified_messaging.domain.insurability import (
    CareProvider,
    ContactType,
    InsurabilityAnswer,
    InsurabilityQuery,
    RequestType,
)
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.population import TEST_PATIENTS
from unified_messaging.serving import serving

from tests.conftest import SHARED_REFERENCE as REFERENCE
OFFICIAL_GENINS = REFERENCE / "schemas" / "genericinsurability" / "gen_ins_services_protocol-1_0.xsd"
OFFICIAL_SOA_ERRORS = REFERENCE / "schemas" / "genericinsurability" / "ehealth-errors-schema-soa-1_0.xsd"

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
LICENCE_PASSWORD = "s3cret-licence-Pw"
LAB = CareProvider("81234530998", "labo")
TODAY = date.today()


def patient(scenario: str, index: int = 0):
    return [p for p in TEST_PATIENTS if p.scenario == scenario][index]


def ask(ssin: str | None = None, start: date = TODAY, end: date | None = None, **changes) -> InsurabilityQuery:
    query = InsurabilityQuery(LAB, start, end or start, ssin=ssin)
    return replace(query, **changes) if changes else query


# --------------------------------------------------------------------------- plumbing


class Capture:
    """WSGI middleware keeping the exact bytes of every POST exchange (request, status, response)."""

    def __init__(self, app) -> None:
        self.app = app
        self.exchanges: list[tuple[bytes, str, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        status: list[str] = []

        def remember(code, headers, exc_info=None):
            status.append(code)
            return start_response(code, headers, exc_info)

        body = b"".join(self.app(environ, remember))
        if environ["REQUEST_METHOD"] == "POST":
            with self._lock:
                self.exchanges.append((raw, status[0], body))
        return [body]


def client_for(url: str, **options) -> GenericInsurabilityClient:
    options.setdefault("licence_username", "um-test")
    options.setdefault("licence_password", LICENCE_PASSWORD)
    return GenericInsurabilityClient(url, **options)


@pytest.fixture(scope="module")
def genins_capture() -> Capture:
    return Capture(Simulator())


@pytest.fixture(scope="module")
def genins_url(genins_capture: Capture) -> Iterator[str]:
    with serving(genins_capture, threads=32) as base:
        yield base + Simulator.GENERICINSURABILITY_PATH


@pytest.fixture(scope="module")
def genins_client(genins_url: str) -> Iterator[GenericInsurabilityClient]:
    client = client_for(genins_url)
    yield client
    client.close()


def _official_schema(path: Path) -> etree.XMLSchema:
    if not path.is_file():
        pytest.skip(f"official reference schemas not found at {path.parent}")
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


@pytest.fixture(scope="module")
def genins_official_schema() -> etree.XMLSchema:
    return _official_schema(OFFICIAL_GENINS)


@pytest.fixture(scope="module")
def genins_official_errors_schema() -> etree.XMLSchema:
    return _official_schema(OFFICIAL_SOA_ERRORS)


def body_payload(message: bytes) -> etree._Element:
    envelope = etree.fromstring(message, etree.XMLParser(resolve_entities=False, no_network=True))
    assert envelope.tag == f"{{{SOAP_ENV}}}Envelope"
    return envelope.find(f"{{{SOAP_ENV}}}Body")[0]


def assert_valid(schema: etree.XMLSchema, element: etree._Element) -> None:
    assert schema.validate(element), "\n".join(str(e) for e in schema.error_log)


# --------------------------------------------------------------------------- scenarios


def test_insured_patient_by_ssin(genins_client: GenericInsurabilityClient) -> None:
    who = patient("insured")
    answer = genins_client.get_insurability(ask(who.ssin))
    assert answer.ok
    person = answer.patient
    assert (person.ssin, person.last_name, person.first_name) == (who.ssin, "Voorbeeld", "Lucas")
    assert answer.patient.birth_date == date(1985, 7, 30) and answer.patient.sex == "male"
    assert answer.patient.deceased_date is None
    [item] = answer.insurabilities
    assert (item.mutuality, item.registration_number) == ("131", who.registration_number)
    assert (item.ct1, item.ct2) == ("110", "110")
    assert (item.period_start, item.period_end) == (TODAY, TODAY)
    assert item.insurability_date == TODAY
    assert not item.preferential_rate
    assert answer.payment_by_io is False and item.payment_by_io is False
    assert answer.general_situation is None and answer.medical_house is None and answer.hospitalized is None
    assert answer.max_invoiced_years == ()
    assert answer.audit_reference and len(answer.audit_reference) == 14 and answer.audit_reference.isdigit()


def test_insured_patient_born_after_2000(genins_client: GenericInsurabilityClient) -> None:
    who = patient("insured", 1)
    answer = genins_client.get_insurability(ask(who.ssin, TODAY - timedelta(days=30), TODAY))
    assert answer.patient.first_name == "Amélie" and answer.patient.sex == "female"
    assert answer.patient.birth_date == date(2004, 2, 29)
    assert answer.insurabilities[0].mutuality == "319"


def test_lookup_by_mutuality_and_registration_number(genins_client: GenericInsurabilityClient) -> None:
    who = patient("insured")
    answer = genins_client.get_insurability(ask(mutuality=who.mutuality, registration_number=who.registration_number))
    assert answer.ok and answer.patient.ssin == who.ssin and answer.patient.last_name == "Voorbeeld"


@pytest.mark.parametrize("index, codes", [(0, ("131", "131")), (1, ("121", "121"))])
def test_preferential_rate(genins_client: GenericInsurabilityClient, index: int, codes: tuple[str, str]) -> None:
    answer = genins_client.get_insurability(ask(patient("preferential_rate", index).ssin))
    [item] = answer.insurabilities
    assert (item.ct1, item.ct2) == codes
    assert item.preferential_rate


def test_third_party_payment(genins_client: GenericInsurabilityClient) -> None:
    answer = genins_client.get_insurability(ask(patient("third_party_payment").ssin))
    assert answer.payment_by_io is True
    assert all(item.payment_by_io for item in answer.insurabilities)
    assert answer.max_invoiced_years == (2024, 2025)
    assert not answer.insurabilities[0].preferential_rate


def test_medical_house(genins_client: GenericInsurabilityClient) -> None:
    answer = genins_client.get_insurability(ask(patient("medical_house").ssin))
    house = answer.medical_house
    assert (house.period_start, house.period_end) == (date(2021, 3, 1), None)
    assert (house.medical, house.kine, house.nurse) == (True, True, False)


def test_hospitalized_elsewhere(genins_client: GenericInsurabilityClient) -> None:
    who = patient("hospitalized")
    answer = genins_client.get_insurability(ask(who.ssin, contact_type=ContactType.HOSPITALIZED_ELSEWHERE))
    assert answer.ok
    assert answer.hospitalized.hospital == "071001228000"
    assert answer.hospitalized.admission_date == date(2025, 9, 15)
    assert answer.hospitalized.admission_service == "200"
    ambulatory = genins_client.get_insurability(ask(who.ssin))
    assert ambulatory.ok and ambulatory.hospitalized is None


def test_hospitalized_elsewhere_asked_for_a_patient_at_home(genins_client: GenericInsurabilityClient) -> None:
    query = ask(patient("insured").ssin, contact_type=ContactType.HOSPITALIZED_ELSEWHERE)
    answer = genins_client.get_insurability(query)
    assert answer.fault.code == "INPUT_ERROR"
    assert [(d.code, d.location) for d in answer.fault.details] == [
        ("42", "../../../../InsurabilityRequestDetail/InsurabilityContactType/text()")]


def test_deceased_inside_the_period(genins_client: GenericInsurabilityClient) -> None:
    who = patient("deceased")
    answer = genins_client.get_insurability(ask(who.ssin, date(2025, 3, 1), date(2025, 3, 31)))
    assert answer.patient.deceased_date == date(2025, 3, 15)
    [item] = answer.insurabilities
    assert (item.period_start, item.period_end) == (date(2025, 3, 1), date(2025, 3, 15))
    assert answer.general_situation.event == "closedBefore"
    later = genins_client.get_insurability(ask(who.ssin))
    assert later.fault.code == "NO_IO_ERROR" and later.fault.details[0].code == "43"


def test_change_of_mutuality_during_the_period(genins_client: GenericInsurabilityClient) -> None:
    who = patient("change_of_mutuality")
    answer = genins_client.get_insurability(ask(who.ssin, date(2024, 6, 1), date(2024, 7, 31)))
    assert answer.general_situation.event == "changeDuring"
    assert [(t.direction, t.insurance_org, t.transfer_date) for t in answer.general_situation.transfers] == [
        ("toOtherIo", "200", date(2024, 7, 1)), ("fromOtherIo", "100", date(2024, 7, 1))]
    assert [(i.mutuality, i.period_start, i.period_end) for i in answer.insurabilities] == [
        ("131", date(2024, 6, 1), date(2024, 6, 30)), ("226", date(2024, 7, 1), date(2024, 7, 31))]
    today = genins_client.get_insurability(ask(who.ssin))
    assert today.general_situation is None and [i.mutuality for i in today.insurabilities] == ["226"]


def test_unknown_patient(genins_client: GenericInsurabilityClient) -> None:
    answer = genins_client.get_insurability(ask(patient("unknown").ssin))
    assert not answer.ok
    assert answer.fault.code == "NO_IO_ERROR" and answer.fault.source and answer.fault.message
    assert [(d.code, d.location) for d in answer.fault.details] == [("23", "../../../../CareReceiverId/Inss/text()")]
    assert answer.audit_reference


@pytest.mark.parametrize("index, ios", [(0, ("1", "3")), (1, ("2", "5", "9"))])
def test_several_insurers(genins_client: GenericInsurabilityClient, index: int, ios: tuple[str, ...]) -> None:
    answer = genins_client.get_insurability(ask(patient("several_insurers", index).ssin))
    assert answer.fault.code == "MULTIIO_ERROR"
    assert answer.fault.multi_io == ios
    assert answer.fault.details[0].code == "44"


@pytest.mark.parametrize("query, expected", [
    (ask(patient("bad_check_digit").ssin), [("12", "CareReceiverId/Inss/text()")]),
    (ask(patient("bad_ssin_format").ssin), [("11", "CareReceiverId/Inss/text()")]),
    (ask(mutuality="199", registration_number="19900001001"), [("21", "CareReceiverId/Mutuality/text()")]),
    (ask(mutuality="131"), [("10", "CareReceiverId/RegNrWithMut/text()")]),
    (ask(), [("10", "CareReceiverId/Inss/text()")]),
    (ask(patient("insured").ssin, TODAY, TODAY - timedelta(days=1)),
     [("31", "InsurabilityRequestDetail/Period/PeriodEnd/text()")]),
    (ask(patient("insured").ssin, TODAY + timedelta(days=3)),
     [("30", "InsurabilityRequestDetail/Period/PeriodStart/text()")]),
    (ask(patient("bad_check_digit").ssin, TODAY, TODAY - timedelta(days=1)),
     [("12", "CareReceiverId/Inss/text()"), ("31", "InsurabilityRequestDetail/Period/PeriodEnd/text()")]),
], ids=["check-digit", "ssin-format", "unknown-mutuality", "no-registration-number", "no-patient",
        "end-before-start", "start-in-future", "two-problems"])
def test_bad_input(genins_client: GenericInsurabilityClient, query: InsurabilityQuery, expected) -> None:
    answer = genins_client.get_insurability(query)
    assert answer.fault.code == "INPUT_ERROR"
    assert [(d.code, d.location) for d in answer.fault.details] == [(c, "../../../../" + p) for c, p in expected]
    assert all(d.message for d in answer.fault.details)


def test_audit_references_are_unique(genins_client: GenericInsurabilityClient) -> None:
    references = {genins_client.get_insurability(ask(patient("insured").ssin)).audit_reference for _ in range(20)}
    assert len(references) == 20


def test_invoicing_request_and_reference_are_sent(genins_client, genins_capture: Capture) -> None:
    query = ask(patient("insured").ssin, request_type=RequestType.INVOICING, reference="lab/2024-ünïcode ref")
    answer = genins_client.get_insurability(query)
    assert answer.ok
    sent = body_payload(genins_capture.exchanges[-1][0])
    ns = {"gc": "urn:be:fgov:ehealth:genericinsurability:core:v1"}
    assert sent.findtext(".//gc:InsurabilityRequestType", namespaces=ns) == "invoicing"
    assert sent.findtext(".//gc:InsurabilityReference", namespaces=ns) == "LAB/2024-ÜN CODE REF"


def test_reference_is_reduced_to_the_protocol_alphabet() -> None:
    assert insurability_reference("abc-123") == "ABC-123"
    assert insurability_reference("x" * 40) == "X" * 25
    assert insurability_reference("é") is None
    assert insurability_reference(None) is None


# --------------------------------------------------------------------------- official schema


ALL_QUERIES = [
    ask(patient("insured").ssin),
    ask(mutuality=patient("insured").mutuality, registration_number=patient("insured").registration_number),
    ask(patient("preferential_rate").ssin, reference="REF 1"),
    ask(patient("third_party_payment").ssin, request_type=RequestType.INVOICING),
    ask(patient("medical_house").ssin, contact_type=ContactType.OTHER),
    ask(patient("hospitalized").ssin, contact_type=ContactType.HOSPITALIZED_ELSEWHERE),
    ask(patient("hospitalized").ssin, contact_type=ContactType.HOSPITALIZED_FOR_DAY),
    ask(patient("deceased").ssin, date(2025, 3, 1), date(2025, 3, 31)),
    ask(patient("change_of_mutuality").ssin, date(2024, 6, 1), date(2024, 7, 31)),
    ask(patient("unknown").ssin),
    ask(patient("several_insurers").ssin),
    ask(patient("several_insurers", 1).ssin),
    ask(patient("bad_check_digit").ssin, TODAY, TODAY - timedelta(days=1)),
    ask(mutuality="199", registration_number="19900001001"),
    ask(),
]


@pytest.mark.reference
def test_exchanged_bytes_are_valid_against_the_official_schema(
    genins_url: str, genins_official_schema: etree.XMLSchema
) -> None:
    capture = Capture(Simulator())
    with serving(capture) as base:
        client = client_for(base + Simulator.GENERICINSURABILITY_PATH)
        answers = [client.get_insurability(query) for query in ALL_QUERIES]
        client.close()
    assert len(capture.exchanges) == len(ALL_QUERIES)
    assert {a.fault.code for a in answers if a.fault} == {"INPUT_ERROR", "NO_IO_ERROR", "MULTIIO_ERROR"}
    for request, status, response in capture.exchanges:
        assert status.startswith("200")
        assert_valid(genins_official_schema, body_payload(request))
        assert_valid(genins_official_schema, body_payload(response))


# --------------------------------------------------------------------------- SOAP faults and transport errors


def _raw_hook(payload: bytes):
    return lambda envelope, headers: (payload, headers)


@pytest.mark.parametrize("payload, code", [
    (b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>", "SOA-03002"),
    (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'boom'>]>"
     b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>&e;</soap:Body>"
     b"</soap:Envelope>", "SOA-03004"),
], ids=["malformed", "doctype"])
def test_unacceptable_xml_is_a_soap_fault(genins_url: str, genins_capture: Capture, payload: bytes, code: str) -> None:
    client = client_for(genins_url, message_hook=_raw_hook(payload))
    with pytest.raises(UpstreamFault) as caught:
        client.get_insurability(ask(patient("insured").ssin))
    client.close()
    assert caught.value.code == code
    assert caught.value.advice and caught.value.details[0].startswith("eHealth ticket SIM-")
    _, status, response = genins_capture.exchanges[-1]
    assert status.startswith("500")
    fault = body_payload(response)
    assert fault.findtext("faultcode") == "soapenv:Client"
    assert b"boom" not in response


@pytest.mark.reference
def test_soap_fault_detail_is_valid_against_the_official_schema(
    genins_url: str, genins_capture: Capture, genins_official_errors_schema: etree.XMLSchema
) -> None:
    client = client_for(genins_url, message_hook=_raw_hook(b"<not-closed>"))
    with pytest.raises(UpstreamFault):
        client.get_insurability(ask(patient("insured").ssin))
    client.close()
    assert_valid(genins_official_errors_schema, body_payload(genins_capture.exchanges[-1][2]).find("detail")[0])


class DropCareReceiver(Plugin):
    """A zeep plugin that breaks the request after zeep built it (schema-invalid on purpose)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def egress(self, envelope, http_headers, operation, binding_options):
        self.seen.append(binding_options["address"])
        node = envelope.find(".//{urn:be:fgov:ehealth:genericinsurability:core:v1}CareReceiverId")
        node.getparent().remove(node)
        return envelope, http_headers


def test_schema_invalid_request_is_a_soap_fault(genins_url: str) -> None:
    plugin = DropCareReceiver()
    client = client_for(genins_url, plugins=[plugin])
    with pytest.raises(UpstreamFault) as caught:
        client.get_insurability(ask(patient("insured").ssin))
    client.close()
    assert plugin.seen == [genins_url]
    assert caught.value.code == "SOA-03006"
    assert "CareReceiverId" in caught.value.message or "InsurabilityRequestDetail" in caught.value.message
    assert "gateway's administrator" in caught.value.advice


def test_plugins_see_egress_and_ingress(genins_url: str, genins_capture: Capture) -> None:
    class Stamp(Plugin):
        received: list[str] = []

        def egress(self, envelope, http_headers, operation, binding_options):
            header = envelope.find(f"{{{SOAP_ENV}}}Header")
            if header is None:
                header = etree.Element(f"{{{SOAP_ENV}}}Header")
                envelope.insert(0, header)
            etree.SubElement(header, "{urn:test}Stamp").text = "signed-later"
            return envelope, http_headers

        def ingress(self, envelope, http_headers, operation):
            self.received.append(etree.QName(envelope.find(f"{{{SOAP_ENV}}}Body")[0]).localname)
            return envelope, http_headers

    stamp = Stamp()
    client = client_for(genins_url, plugins=[stamp])
    assert client.get_insurability(ask(patient("insured").ssin)).ok
    client.close()
    assert b"signed-later" in genins_capture.exchanges[-1][0]
    assert stamp.received == ["GetInsurabilityResponse"]


def _fault_only_app(environ, start_response):
    body = (b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><s:Fault>"
            b"<faultcode>s:Server</faultcode><faultstring>Backend down</faultstring></s:Fault></s:Body></s:Envelope>")
    start_response("500 Internal Server Error", [("Content-Type", "text/xml")])
    return [body]


def _html_app(environ, start_response):
    start_response("502 Bad Gateway", [("Content-Type", "text/html")])
    return [b"<!DOCTYPE html><html><body>Proxy error</body></html>"]


def test_plain_soap_fault_without_ehealth_detail() -> None:
    with serving(_fault_only_app) as base:
        client = client_for(base + "/x")
        with pytest.raises(UpstreamFault) as caught:
            client.get_insurability(ask(patient("insured").ssin))
        client.close()
    assert (caught.value.code, caught.value.message) == ("Server", "Backend down")
    assert "try again later" in caught.value.advice


def test_http_error_page_is_unavailable() -> None:
    with serving(_html_app) as base:
        client = client_for(base + "/x")
        with pytest.raises(UpstreamUnavailable) as caught:
            client.get_insurability(ask(patient("insured").ssin))
        client.close()
    assert "HTTP 502" in caught.value.reason


def test_wrong_path_is_unavailable(genins_url: str) -> None:
    client = client_for(genins_url.replace("/v1", "/v9"))
    with pytest.raises(UpstreamUnavailable) as caught:
        client.get_insurability(ask(patient("insured").ssin))
    client.close()
    assert "HTTP 404" in caught.value.reason


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_closed_port_is_unavailable_and_says_what_to_do() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}/GenericInsurability/v1"
    client = client_for(endpoint, timeout=2)
    with pytest.raises(UpstreamUnavailable) as caught:
        client.get_insurability(ask(patient("insured").ssin))
    assert caught.value.endpoint == endpoint
    assert "connection refused" in caught.value.reason
    assert "Check the network connection and the [upstream] settings" in str(caught.value)
    assert LICENCE_PASSWORD not in str(caught.value)


def test_unknown_host_is_unavailable() -> None:
    client = client_for("http://no-such-host.invalid/GenericInsurability/v1", timeout=2)
    with pytest.raises(UpstreamUnavailable) as caught:
        client.get_insurability(ask(patient("insured").ssin))
    assert "DNS" in caught.value.reason or "connection" in caught.value.reason


def test_timeout_is_unavailable() -> None:
    with serving(Simulator(latency_ms=600)) as base:
        client = client_for(base + Simulator.GENERICINSURABILITY_PATH, timeout=0.2)
        with pytest.raises(UpstreamUnavailable) as caught:
            client.get_insurability(ask(patient("insured").ssin))
        client.close()
    assert "no answer within 0.2 s" in caught.value.reason


# --------------------------------------------------------------------------- concurrency and logs


def test_32_concurrent_calls_through_one_client(genins_url: str, genins_capture: Capture) -> None:
    client = client_for(genins_url)
    simulator: Simulator = genins_capture.app
    before = simulator.counters["genericinsurability.getInsurability"]
    people = [p for p in TEST_PATIENTS if p.scenario in ("insured", "preferential_rate", "medical_house",
                                                         "third_party_payment", "hospitalized")]
    work = [people[i % len(people)] for i in range(32)]
    barrier = threading.Barrier(32)

    def call(who) -> InsurabilityAnswer:
        barrier.wait(timeout=10)
        return client.get_insurability(ask(who.ssin))

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(call, work))
    client.close()
    assert [(a.patient.ssin, a.patient.last_name) for a in answers] == [(p.ssin, p.last_name) for p in work]
    assert all(a.ok for a in answers)
    assert len({a.audit_reference for a in answers}) == 32
    assert simulator.counters["genericinsurability.getInsurability"] - before == 32


def test_logs_hold_no_ssin_and_no_password(genins_url: str, caplog: pytest.LogCaptureFixture) -> None:
    who = patient("insured")
    with caplog.at_level(logging.DEBUG):
        client = client_for(genins_url)
        client.get_insurability(ask(who.ssin))
        client.get_insurability(ask(patient("bad_check_digit").ssin))
        client.close()
    assert who.ssin not in caplog.text
    assert patient("bad_check_digit").ssin not in caplog.text
    assert LICENCE_PASSWORD not in caplog.text
    assert "850730*****" in caplog.text
