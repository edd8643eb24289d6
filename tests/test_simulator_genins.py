"""The simulator's GenericInsurability service, spoken to with hand-written XML over HTTP.

These tests do not use the gateway's client: they check the simulator against the protocol
itself (official schemas and error table from ``../shared/reference``, skipped when absent).
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Iterator

import pytest
import requests
import zeep
from lxml import etree

from unified_messaging.identifiers import make_ssin, ssin_problem
from unified_messaging.simulator.app import MAX_REQUEST_BYTES, Simulator
from unified_messaging.simulator.population import BENEFICIARIES, POPULATION, TEST_PATIENTS
from unified_messaging.simulator.references import NipReferences
from unified_messaging.simulator.soap import SoapFault, SoapRequest
from unified_messaging.serving import serving

from tests.conftest import SHARED_REFERENCE as REFERENCE
OFFICIAL_DIR = REFERENCE / "schemas" / "genericinsurability"
ERROR_TABLE = REFERENCE / "errors" / "GenInsErrors.json"

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CORE = "urn:be:fgov:ehealth:genericinsurability:core:v1"
NS = {"s": SOAP_ENV, "gc": CORE, "p": "urn:be:fgov:ehealth:genericinsurability:protocol:v1",
      "err": "urn:be:fgov:ehealth:errors:soa:v1"}
TODAY = date.today()

REQUIRED_SCENARIOS = {
    "insured", "preferential_rate", "third_party_payment", "medical_house", "hospitalized", "deceased",
    "change_of_mutuality", "unknown", "several_insurers", "bad_check_digit", "bad_ssin_format", "unknown_mutuality",
}


def patient(scenario: str, index: int = 0):
    return [p for p in TEST_PATIENTS if p.scenario == scenario][index]


def request_xml(
    receiver: str, start: date | None = TODAY, end: date | None = TODAY, contact: str = "ambulatory_care",
    extra_provider: str = "", header_attributes: str = "",
) -> bytes:
    """A GetInsurabilityRequest written by hand, the way another client would."""
    period = "".join([
        f"<gc:PeriodStart>{start.isoformat()}</gc:PeriodStart>" if start else "",
        f"<gc:PeriodEnd>{end.isoformat()}</gc:PeriodEnd>" if end else "",
    ])
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:p="urn:be:fgov:ehealth:genericinsurability:protocol:v1"
    xmlns:gc="{CORE}">
  <soapenv:Header/>
  <soapenv:Body>
    <p:GetInsurabilityRequest>
      <p:CommonInput>
        <gc:Request><gc:IsTest>true</gc:IsTest></gc:Request>
        <gc:Origin>
          <gc:Package>
            <gc:License><gc:Username>lab-software</gc:Username><gc:Password>pw</gc:Password></gc:License>
          </gc:Package>
          <gc:CareProvider>
            <gc:Nihii><gc:Quality>labo</gc:Quality><gc:Value>81234530998</gc:Value></gc:Nihii>{extra_provider}
          </gc:CareProvider>
        </gc:Origin>
        <gc:InputReference>CI-42</gc:InputReference>
      </p:CommonInput>
      <p:RecordCommonInput><gc:InputReference>4242</gc:InputReference></p:RecordCommonInput>
      <p:Request{header_attributes}>
        <gc:CareReceiverId>{receiver}</gc:CareReceiverId>
        <gc:InsurabilityRequestDetail>
          <gc:InsurabilityRequestType>information</gc:InsurabilityRequestType>
          <gc:Period>{period}</gc:Period>
          <gc:InsurabilityContactType>{contact}</gc:InsurabilityContactType>
        </gc:InsurabilityRequestDetail>
      </p:Request>
    </p:GetInsurabilityRequest>
  </soapenv:Body>
</soapenv:Envelope>""".encode("utf-8")


def inss(ssin: str) -> str:
    return f"<gc:Inss>{ssin}</gc:Inss>"


@pytest.fixture(scope="module")
def genins_simulator() -> Simulator:
    return Simulator()


@pytest.fixture(scope="module")
def genins_base(genins_simulator: Simulator) -> Iterator[str]:
    with serving(genins_simulator) as base:
        yield base


@pytest.fixture(scope="module")
def genins_endpoint(genins_base: str) -> str:
    return genins_base + Simulator.GENERICINSURABILITY_PATH


def post(url: str, body: bytes) -> tuple[int, etree._Element]:
    response = requests.post(url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=5)
    assert response.headers["Content-Type"].startswith("text/xml")
    return response.status_code, etree.fromstring(response.content)


def payload_of(envelope: etree._Element) -> etree._Element:
    return envelope.find("s:Body", NS)[0]


def official_schema(name: str) -> etree.XMLSchema:
    path = OFFICIAL_DIR / name
    if not path.is_file():
        pytest.skip(f"official reference schemas not found at {OFFICIAL_DIR}")
    return etree.XMLSchema(etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False)))


@pytest.fixture(scope="module")
def genins_official() -> etree.XMLSchema:
    return official_schema("gen_ins_services_protocol-1_0.xsd")


@pytest.fixture(scope="module")
def genins_official_errors() -> etree.XMLSchema:
    return official_schema("ehealth-errors-schema-soa-1_0.xsd")


@pytest.fixture(scope="module")
def genins_error_table() -> list[dict]:
    if not ERROR_TABLE.is_file():
        pytest.skip(f"official error table not found at {ERROR_TABLE}")
    return json.loads(ERROR_TABLE.read_text(encoding="utf-8"))


def assert_valid(schema: etree.XMLSchema, element: etree._Element) -> None:
    assert schema.validate(element), "\n".join(str(e) for e in schema.error_log)


# --------------------------------------------------------------------------- population


def test_population_has_every_scenario_and_valid_identifiers() -> None:
    assert REQUIRED_SCENARIOS <= {p.scenario for p in TEST_PATIENTS}
    for person in BENEFICIARIES:
        assert ssin_problem(person.ssin) is None, person
    assert len({b.ssin for b in BENEFICIARIES}) == len(BENEFICIARIES)
    assert POPULATION.by_ssin(patient("unknown").ssin) is None and ssin_problem(patient("unknown").ssin) is None
    assert ssin_problem(patient("bad_check_digit").ssin) and ssin_problem(patient("bad_ssin_format").ssin)
    for row in TEST_PATIENTS:
        assert row.description.endswith(".") and row.description.count(". ") == 0, row.description
    insured = patient("insured")
    assert POPULATION.by_registration(insured.mutuality, insured.registration_number).ssin == insured.ssin


def test_population_is_deterministic() -> None:
    assert BENEFICIARIES[0].ssin == make_ssin(date(1985, 7, 30), 33) == "85073003328"
    assert [p.ssin for p in TEST_PATIENTS][:3] == ["85073003328", "04022900231", "48110504121"]


def test_nip_references_are_unique_and_platform_shaped() -> None:
    references = NipReferences()
    with ThreadPoolExecutor(max_workers=16) as pool:
        issued = list(pool.map(lambda _: references.next(), range(2000)))
    assert len(set(issued)) == 2000
    assert all(len(r) == 14 and r.isdigit() and r.startswith(f"{TODAY:%y%m%d}") for r in issued)


# --------------------------------------------------------------------------- routing and contract


def test_routing(genins_base: str, genins_endpoint: str) -> None:
    assert requests.get(genins_base + "/", timeout=5).status_code == 404
    assert requests.post(genins_base + "/GenericInsurability/v2", data=b"x", timeout=5).status_code == 404
    assert requests.put(genins_endpoint, data=b"x", timeout=5).status_code == 405
    assert requests.get(genins_endpoint, timeout=5).status_code == 404
    assert requests.get(genins_endpoint + "?xsd=../../../etc/passwd.xsd", timeout=5).status_code == 404
    assert requests.get(genins_endpoint + "?xsd=genins-core-v1.xsd", timeout=5).status_code == 200


@pytest.mark.parametrize("query", ["?wsdl", "?WSDL"])
def test_wsdl_is_served_with_the_callers_address(genins_endpoint: str, query: str) -> None:
    response = requests.get(genins_endpoint + query, timeout=5)
    assert response.status_code == 200
    wsdl = etree.fromstring(response.content)
    address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == genins_endpoint
    imports = wsdl.findall(".//{http://www.w3.org/2001/XMLSchema}import")
    assert {i.get("schemaLocation") for i in imports} == {
        genins_endpoint + "?xsd=genins-protocol-v1.xsd", genins_endpoint + "?xsd=ehealth-errors-soa-v1.xsd"}


def test_a_client_generated_from_the_served_wsdl_works(genins_endpoint: str) -> None:
    client = zeep.Client(genins_endpoint + "?wsdl", settings=zeep.Settings(raw_response=True))
    response = client.service.getInsurability(
        CommonInput={"Request": {"IsTest": True},
                     "Origin": {"Package": {"License": {"Username": "u", "Password": "p"}}}},
        RecordCommonInput={"InputReference": 1},
        Request={"CareReceiverId": {"Inss": patient("insured").ssin},
                 "InsurabilityRequestDetail": {"InsurabilityRequestType": "information",
                                               "Period": {"PeriodStart": TODAY, "PeriodEnd": TODAY},
                                               "InsurabilityContactType": "ambulatory_care"}},
    )
    assert response.status_code == 200
    assert etree.fromstring(response.content).findtext(".//gc:LastName", namespaces=NS) == "Voorbeeld"


# --------------------------------------------------------------------------- answers


FULL_SHAPE_REQUEST = request_xml(
    inss(patient("insured").ssin),
    extra_provider="<gc:PhysicalPerson><gc:Name>Lab Test</gc:Name><gc:Ssin>85073003328</gc:Ssin></gc:PhysicalPerson>",
    header_attributes=' MessageName="M801000" Version="01" TestFlag="true" SenderReference="12345"',
)


def test_hand_written_request_in_the_full_official_shape(genins_endpoint: str) -> None:
    status, envelope = post(genins_endpoint, FULL_SHAPE_REQUEST)
    answer = payload_of(envelope)
    assert status == 200
    assert answer.findtext("p:CommonOutput/gc:InputReference", namespaces=NS) == "CI-42"
    assert answer.findtext("p:RecordCommonOutput/gc:InputReference", namespaces=NS) == "4242"
    assert answer.findtext("Status/Code") == "200"
    assert answer.findtext(".//gc:CT1", namespaces=NS) == "110"


def _error_details(url: str, body: bytes) -> list[tuple[str, str, str]]:
    status, envelope = post(url, body)
    assert status == 200
    fault = payload_of(envelope).find("p:Response/gc:MessageFault", NS)
    return [(fault.findtext("gc:FaultCode", namespaces=NS), d.findtext("gc:DetailCode", namespaces=NS),
             d.findtext("gc:Location", namespaces=NS)) for d in fault.iterfind("gc:Details/gc:Detail", NS)]


FAULT_REQUESTS = {
    "check-digit": request_xml(inss(patient("bad_check_digit").ssin)),
    "ssin-format": request_xml(inss(patient("bad_ssin_format").ssin)),
    "no-patient": request_xml(""),
    "no-mutuality": request_xml("<gc:RegNrWithMut>13100001001</gc:RegNrWithMut>"),
    "no-registration": request_xml("<gc:Mutuality>131</gc:Mutuality>"),
    "unknown-mutuality": request_xml("<gc:RegNrWithMut>19900001001</gc:RegNrWithMut><gc:Mutuality>199</gc:Mutuality>"),
    "no-start": request_xml(inss(patient("insured").ssin), start=None),
    "no-end": request_xml(inss(patient("insured").ssin), end=None),
    "future": request_xml(inss(patient("insured").ssin), TODAY + timedelta(days=1), TODAY + timedelta(days=2)),
    "end-before-start": request_xml(inss(patient("insured").ssin), end=TODAY - timedelta(days=1)),
    "not-in-hospital": request_xml(inss(patient("insured").ssin), contact="hospitalized_elsewhere"),
    "unknown": request_xml(inss(patient("unknown").ssin)),
    "no-cover": request_xml(inss(patient("insured").ssin), start=date(2019, 1, 1), end=date(2019, 1, 31)),
    "unknown-registration": request_xml("<gc:RegNrWithMut>999</gc:RegNrWithMut><gc:Mutuality>131</gc:Mutuality>"),
    "several": request_xml(inss(patient("several_insurers").ssin)),
}


@pytest.mark.reference
def test_answers_are_valid_against_the_official_schema(genins_endpoint: str, genins_official: etree.XMLSchema) -> None:
    assert_valid(genins_official, payload_of(etree.fromstring(FULL_SHAPE_REQUEST)))
    for name, body in {"full-shape": FULL_SHAPE_REQUEST, **FAULT_REQUESTS}.items():
        status, envelope = post(genins_endpoint, body)
        assert status == 200, name
        assert_valid(genins_official, payload_of(envelope))


@pytest.mark.reference
def test_detail_codes_and_locations_exist_in_the_official_error_table(
    genins_endpoint: str, genins_error_table: list[dict]
) -> None:
    known = {(entry["code"], entry["path"]) for entry in genins_error_table}
    seen: set[tuple[str, str, str]] = set()
    for name, body in FAULT_REQUESTS.items():
        details = _error_details(genins_endpoint, body)
        assert details, name
        seen.update(details)
    for fault_code, code, location in seen:
        # Locations are relative to the Location element: ../../../../ is the Response, which
        # echoes the request's CareReceiverId and InsurabilityRequestDetail.
        assert location.startswith("../../../../") and location.endswith("/text()")
        path = "/GetInsurabilityAsXmlOrFlatRequestType/Request/" + location[12:-len("text()")] + "#text"
        assert (code, path) in known, (fault_code, code, location)
    assert {c for _, c, _ in seen} == {"10", "11", "12", "21", "23", "30", "31", "42", "43", "44"}
    assert {f for f, _, _ in seen} == {"INPUT_ERROR", "NO_IO_ERROR", "MULTIIO_ERROR"}


def test_detail_locations_resolve_inside_the_answer(genins_endpoint: str) -> None:
    status, envelope = post(genins_endpoint, request_xml(inss(patient("bad_check_digit").ssin),
                                                          end=TODAY - timedelta(days=1)))
    for location in payload_of(envelope).iterfind(".//gc:Detail/gc:Location", NS):
        steps = location.text.split("/")
        xpath = "/".join(s if s in ("..", "text()") else f"*[local-name()='{s}']" for s in steps)
        assert location.xpath(xpath), location.text


def test_today_can_be_injected() -> None:
    simulator = Simulator(today=lambda: date(2025, 1, 10))
    with serving(simulator) as base:
        url = base + Simulator.GENERICINSURABILITY_PATH
        details = _error_details(url, request_xml(inss(patient("insured").ssin), date(2025, 2, 1), date(2025, 2, 1)))
        status, envelope = post(url, request_xml(inss(patient("insured").ssin), date(2025, 1, 10), date(2025, 1, 10)))
    assert [c for _, c, _ in details] == ["30"]
    assert payload_of(envelope).findtext(".//gc:InsurabilityDate", namespaces=NS) == "2025-01-10"


# --------------------------------------------------------------------------- SOAP faults


def _soap(body: str) -> bytes:
    envelope = f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>'
    return envelope.encode()


FAULTS = {
    "malformed": (b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>",
                  "SOA-03002"),
    "empty": (b"", "SOA-03002"),
    "not-soap": (b"<GetInsurabilityRequest/>", "SOA-03002"),
    "soap-1.2": (b"<e:Envelope xmlns:e='http://www.w3.org/2003/05/soap-envelope'><e:Body/></e:Envelope>", "SOA-03002"),
    "doctype": (b"<?xml version='1.0'?><!DOCTYPE e [<!ENTITY secret SYSTEM 'file:///etc/passwd'>]>"
                b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
                b"<soapenv:Body><x>&secret;</x></soapenv:Body></soapenv:Envelope>", "SOA-03004"),
    "empty-body": (_soap(""), "SOA-03003"),
    "two-elements": (_soap("<a/><b/>"), "SOA-03004"),
    "unknown-operation": (_soap('<p:GetInsurabilityAsFlatRequest xmlns:p="urn:be:fgov:ehealth:genericinsurability:'
                                'protocol:v1"/>'), "SOA-03005"),
    "schema-invalid": (request_xml(inss("12345")), "SOA-03006"),
    "unusable-date": (request_xml(inss(patient("insured").ssin)).replace(
        f"<gc:PeriodStart>{TODAY}".encode(), b"<gc:PeriodStart>-2024-01-01"), "SOA-03001"),
    "bad-enumeration": (request_xml(inss(patient("insured").ssin), contact="day_clinic"), "SOA-03006"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_refused_messages_get_a_platform_style_soap_fault(genins_endpoint: str, name: str) -> None:
    body, code = FAULTS[name]
    status, envelope = post(genins_endpoint, body)
    fault = payload_of(envelope)
    assert status == 500
    assert fault.tag == f"{{{SOAP_ENV}}}Fault"
    assert fault.findtext("faultcode") == "soapenv:Client"
    error = fault.find("detail/err:SystemError", NS)
    assert (error.findtext("Origin"), error.findtext("Code")) == ("Client", code)
    assert error.findtext("Message") and code in fault.findtext("faultstring")
    assert b"root:" not in etree.tostring(envelope)


@pytest.mark.reference
def test_fault_details_are_valid_against_the_official_schema(
    genins_endpoint: str, genins_official_errors: etree.XMLSchema
) -> None:
    for body, _ in FAULTS.values():
        _, envelope = post(genins_endpoint, body)
        assert_valid(genins_official_errors, payload_of(envelope).find("detail/err:SystemError", NS))


def test_schema_fault_says_what_is_wrong(genins_endpoint: str) -> None:
    _, envelope = post(genins_endpoint, request_xml(inss("12345")))
    message = payload_of(envelope).findtext("detail/err:SystemError/Message", namespaces=NS)
    assert "Inss" in message and "does not conform to the XSD" in message


def test_oversized_request_is_refused(genins_endpoint: str) -> None:
    status, envelope = post(genins_endpoint, b" " * (MAX_REQUEST_BYTES + 1))
    assert status == 500
    assert payload_of(envelope).findtext("detail/err:SystemError/Code", namespaces=NS) == "SOA-03001"


@pytest.mark.reference
def test_fault_codes_exist_in_the_official_error_table(genins_error_table: list[dict]) -> None:
    known = {entry["code"] for entry in genins_error_table}
    assert {code for _, code in FAULTS.values()} | {"SOA-03001", "SOA-00001"} <= known


# --------------------------------------------------------------------------- counters, latency, interceptors


def test_counters(genins_simulator: Simulator, genins_endpoint: str) -> None:
    calls = genins_simulator.counters["genericinsurability.getInsurability"]
    faults = genins_simulator.counters["genericinsurability.soapFault"]
    post(genins_endpoint, request_xml(inss(patient("insured").ssin)))
    post(genins_endpoint, b"<broken")
    assert genins_simulator.counters["genericinsurability.getInsurability"] == calls + 1
    assert genins_simulator.counters["genericinsurability.soapFault"] == faults + 1
    assert dict(genins_simulator.counters).keys() >= {"genericinsurability.getInsurability"}


def test_latency_is_simulated() -> None:
    with serving(Simulator(latency_ms=150)) as base:
        started = time.perf_counter()
        status, _ = post(base + Simulator.GENERICINSURABILITY_PATH, request_xml(inss(patient("insured").ssin)))
        elapsed = time.perf_counter() - started
    assert status == 200 and elapsed >= 0.15


def test_interceptors_run_before_dispatch() -> None:
    simulator = Simulator()
    seen: list[str] = []

    def refuse_without_security(request: SoapRequest) -> None:
        seen.append(request.operation.localname)
        if request.header is None or len(request.header) == 0:
            raise SoapFault.client("SOA-01001", "No WS-Security header: the consumer is not authenticated.")

    simulator.interceptors.append(refuse_without_security)
    with serving(simulator) as base:
        status, envelope = post(base + Simulator.GENERICINSURABILITY_PATH, request_xml(inss(patient("insured").ssin)))
    assert status == 500 and seen == ["GetInsurabilityRequest"]
    assert payload_of(envelope).findtext("detail/err:SystemError/Code", namespaces=NS) == "SOA-01001"
    assert simulator.counters["genericinsurability.getInsurability"] == 0


def test_unexpected_errors_are_server_faults_without_internals() -> None:
    simulator = Simulator()

    def broken(request: SoapRequest) -> None:
        raise RuntimeError("internal detail /srv/secret")

    simulator.interceptors.append(broken)
    with serving(simulator) as base:
        status, envelope = post(base + Simulator.GENERICINSURABILITY_PATH, request_xml(inss(patient("insured").ssin)))
    fault = payload_of(envelope)
    assert status == 500 and fault.findtext("faultcode") == "soapenv:Server"
    assert fault.findtext("detail/err:SystemError/Code", namespaces=NS) == "SOA-00001"
    assert b"secret" not in etree.tostring(envelope)
