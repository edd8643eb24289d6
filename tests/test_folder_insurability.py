"""The toQuery folder interface, end to end: real folders, the real gateway, its real simulator."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from lxml import etree

from unified_messaging.folders.watcher import REASON_SUFFIX
from unified_messaging.insurability.contract_xml import TNS, ContractSchema, E
from unified_messaging.insurability.folder import InsurabilityFolders
from unified_messaging.domain.errors import UpstreamUnavailable
from unified_messaging.simulator.population import TEST_PATIENTS

NS = {"t": TNS}
LAB = ("81234530000", "labo")
TODAY = dt.date.today()
# the period and contact type that show each scenario (see README's test patients)
SCENARIO_QUESTION = {
    "deceased": (dt.date(2025, 3, 1), dt.date(2025, 3, 31), None),
    "change_of_mutuality": (dt.date(2024, 6, 1), dt.date(2024, 8, 31), None),
    "hospitalized": (TODAY, None, "HospitalizedElsewhere"),
}


def request_xml(patient=None, *, start=TODAY, end=None, contact=None, reference=None,
                nihii=LAB[0], quality=LAB[1]) -> etree._Element:
    children = [E.CareProvider(E.Nihii(nihii), E.Quality(quality))]
    if patient is not None:
        children += [E.Ssin(patient.ssin)] if patient.ssin else [
            E.Mutuality(patient.mutuality), E.RegistrationNumber(patient.registration_number)]
    children.append(E.PeriodStart(start.isoformat()))
    if end:
        children.append(E.PeriodEnd(end.isoformat()))
    if contact:
        children.append(E.ContactType(contact))
    if reference:
        children.append(E.Reference(reference))
    return E.InsurabilityRequest(*children)


def requests_file(*requests: etree._Element) -> bytes:
    return etree.tostring(E.InsurabilityRequests(*requests), xml_declaration=True, encoding="UTF-8")


def drop_and_wait(root: Path, name: str, data: bytes, *, timeout: float = 20) -> Path | None:
    """Drop a request file and its marker; the answer file once its .ok is there (None if it went to error/)."""
    (root / "toQuery" / name).write_bytes(data)
    (root / "toQuery" / (name + ".ok")).write_bytes(b"")
    answer = root / "queried" / (name.removesuffix(".xml") + ".answer.xml")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answer.with_name(answer.name + ".ok").exists():
            return answer
        if (root / "error" / (name + REASON_SUFFIX)).exists():
            return None
        time.sleep(0.02)
    pytest.fail(f"{name} was neither answered nor refused in {timeout} s")


def responses(answer: Path) -> list[etree._Element]:
    root = etree.fromstring(answer.read_bytes())
    assert root.tag == f"{{{TNS}}}InsurabilityResponses"
    schema = ContractSchema()
    for response in root:
        # every answer has the contract's InsurabilityResponse type
        wrapper = E.GetInsurabilityResponse(E.GetInsurabilityResult(*[etree.fromstring(etree.tostring(c))
                                                                      for c in response]))
        assert schema.first_error(wrapper) is None, etree.tostring(response)
    return list(root)


def text(element: etree._Element, path: str) -> str | None:
    return element.findtext(path, namespaces=NS)


def codes(response: etree._Element) -> list[str]:
    return [c.text for c in response.iterfind("t:Messages/t:Message/t:Code", NS)]


@pytest.fixture(scope="module")
def root(gateway) -> Path:
    return gateway.config.insurability_root


def test_the_folders_are_created_at_start_up(root):
    assert all((root / name).is_dir() for name in ("toQuery", "queried", "error"))


def test_every_simulator_scenario_in_one_file(gateway, root):
    questions = []
    for i, p in enumerate(TEST_PATIENTS, 1):
        start, end, contact = SCENARIO_QUESTION.get(p.scenario, (TODAY, None, None))
        questions.append(request_xml(p, start=start, end=end, contact=contact, reference=f"REQ-{i:02d}"))
    before = gateway.simulator.counters["genericinsurability.getInsurability"]
    answer = drop_and_wait(root, "scenarios.xml", requests_file(*questions))
    assert answer is not None
    answers = responses(answer)
    assert [text(a, "t:Reference") for a in answers] == [f"REQ-{i:02d}" for i in range(1, len(TEST_PATIENTS) + 1)]
    upstream_calls = 0
    for p, a in zip(TEST_PATIENTS, answers):
        status, first = text(a, "t:Status"), (codes(a) or [None])[0]
        if p.scenario not in ("bad_check_digit", "bad_ssin_format"):
            upstream_calls += 1
            assert text(a, "t:AuditReference"), p.scenario
        if p.scenario in ("insured", "preferential_rate", "third_party_payment", "medical_house",
                          "hospitalized", "deceased", "change_of_mutuality"):
            assert status == "OK", (p.scenario, etree.tostring(a))
            assert text(a, "t:Patient/t:LastName") == p.last_name
        items = a.findall("t:Insurabilities/t:Insurability", NS)
        if p.scenario == "insured":
            assert [(text(i, "t:Mutuality"), text(i, "t:CT1"), text(i, "t:CT2")) for i in items] == \
                [(p.mutuality, "110", "110")]
        elif p.scenario == "preferential_rate":
            assert int(text(items[0], "t:CT1")) % 2 == 1 and int(text(items[0], "t:CT2")) % 2 == 1
        elif p.scenario == "third_party_payment":
            assert text(items[0], "t:PaymentByIo") == "true"
            assert [y.text for y in a.iterfind("t:MaxInvoicedYears/t:Year", NS)] == ["2024", "2025"]
        elif p.scenario == "medical_house":
            assert text(a, "t:MedicalHouse/t:PeriodStart") == "2021-03-01"
        elif p.scenario == "hospitalized":
            assert text(a, "t:Hospitalized/t:AdmissionDate") == "2025-09-15"
        elif p.scenario == "deceased":
            assert text(a, "t:Patient/t:DeceasedDate") == "2025-03-15"
        elif p.scenario == "change_of_mutuality":
            assert text(a, "t:GeneralSituation/t:Event") == "changeDuring"
            assert sorted(text(i, "t:Mutuality") for i in items) == ["131", "226"]
        elif p.scenario == "several_insurers":
            assert (status, first) == ("ERROR", "MULTIIO_ERROR")
        elif p.scenario == "unknown":
            assert (status, first) == ("ERROR", "NO_IO_ERROR")
        elif p.scenario == "unknown_mutuality":
            assert (status, first) == ("ERROR", "INPUT_ERROR") and "21" in codes(a)
        elif p.scenario in ("bad_check_digit", "bad_ssin_format"):
            assert status == "ERROR" and codes(a) == ["UM-SSIN"]
            assert text(a, "t:AuditReference") is None
        else:
            pytest.fail(f"scenario {p.scenario} has no assertion here")
    assert gateway.simulator.counters["genericinsurability.getInsurability"] - before == upstream_calls
    assert (root / "queried" / "scenarios.xml").exists()
    assert not (root / "toQuery" / "scenarios.xml").exists()
    rows = gateway.journal.consultations(limit=len(TEST_PATIENTS))
    assert {r["interface"] for r in rows} == {"folder"}


def test_a_single_request_root_and_an_invalid_request_among_good_ones(root):
    good = request_xml(TEST_PATIENTS[0], reference="GOOD")
    bad = E.InsurabilityRequest(E.CareProvider(E.Nihii(LAB[0])), E.PeriodStart("2025-10-01"), E.Reference("BAD"))
    wrong_date = request_xml(TEST_PATIENTS[0], reference="DATE")
    wrong_date.find("t:PeriodStart", NS).text = "2025-13-45"
    answers = responses(drop_and_wait(root, "mixed.xml", requests_file(good, bad, wrong_date)))
    assert [text(a, "t:Status") for a in answers] == ["OK", "ERROR", "ERROR"]
    assert codes(answers[1]) == ["UM-CONTRACT"] and text(answers[1], "t:Reference") == "BAD"
    assert "Quality" in text(answers[1], "t:Messages/t:Message/t:Text")
    assert text(answers[1], "t:Messages/t:Message/t:Location") == "InsurabilityRequest[2]"
    assert "PeriodStart" in text(answers[2], "t:Messages/t:Message/t:Text")
    single = etree.tostring(request_xml(TEST_PATIENTS[1], reference="ONE"))
    (one,) = responses(drop_and_wait(root, "single.xml", single))
    assert text(one, "t:Reference") == "ONE" and text(one, "t:Status") == "OK"


@pytest.mark.parametrize("name, data, words", [
    ("broken.xml", b"<InsurabilityRequests xmlns='" + TNS.encode() + b"'><Insura", ["not well-formed"]),
    ("doctype.xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', ["DOCTYPE"]),
    ("root.xml", b"<Requests><InsurabilityRequest/></Requests>", ["Requests (no namespace)", "InsurabilityRequests"]),
    ("empty.xml", b"<InsurabilityRequests xmlns='" + TNS.encode() + b"'/>", ["no InsurabilityRequest"]),
    ("latin1.xml", b"<?xml version='1.0' encoding='UTF-8'?><InsurabilityRequests xmlns='" + TNS.encode()
     + b"'><InsurabilityRequest><Reference>\xe9</Reference></InsurabilityRequest></InsurabilityRequests>",
     ["not well-formed"]),
])
def test_a_file_that_cannot_be_read_goes_to_error_with_its_reason(root, name, data, words):
    assert drop_and_wait(root, name, data) is None
    assert (root / "error" / name).read_bytes() == data  # nothing lost
    reason = (root / "error" / (name + REASON_SUFFIX)).read_text()
    for word in words:
        assert word in reason
    assert not (root / "queried" / name).exists()


class FlakyService:
    """The gateway's service, unreachable for the first ``failures`` calls."""

    def __init__(self, service, failures: int) -> None:
        self.service = service
        self.failures = failures
        self.calls = 0

    def consult(self, query, *, interface):
        self.calls += 1
        if self.calls <= self.failures:
            raise UpstreamUnavailable("http://mycarenet.example", "connection refused")
        return self.service.consult(query, interface=interface)


def test_upstream_unreachable_keeps_the_file_and_answers_it_later(gateway, tmp_path):
    service = FlakyService(gateway.insurability, failures=1)
    folders = InsurabilityFolders(service, tmp_path / "ins", first_backoff_seconds=0.2, rescan_seconds=3600)
    folders.start()
    try:
        data = requests_file(request_xml(TEST_PATIENTS[0], reference="R1"), request_xml(TEST_PATIENTS[1]))
        answer = drop_and_wait(tmp_path / "ins", "later.xml", data)
    finally:
        folders.stop()
    assert service.calls >= 3  # the whole file was asked again
    assert [text(a, "t:Status") for a in responses(answer)] == ["OK", "OK"]
    assert list((tmp_path / "ins" / "working").iterdir()) == []
    assert list((tmp_path / "ins" / "error").iterdir()) == []


def test_too_large_a_file_is_refused(gateway, tmp_path):
    folders = InsurabilityFolders(gateway.insurability, tmp_path / "ins", max_request_file_bytes=100)
    folders.layout.create()
    data = requests_file(request_xml(TEST_PATIENTS[0]))
    (folders.layout.to_query / "big.xml").write_bytes(data)
    (folders.layout.to_query / "big.xml.ok").write_bytes(b"")
    folders.watcher.scan_once()
    assert "max_request_file_bytes" in (folders.layout.error / ("big.xml" + REASON_SUFFIX)).read_text()


def test_crash_leftovers_are_completed_without_a_second_answer(gateway, tmp_path):
    folders = InsurabilityFolders(gateway.insurability, tmp_path / "ins", rescan_seconds=3600)
    layout = folders.layout
    layout.create()
    # 1. died after moving the request, before the answer's .ok: start-up writes the .ok
    (layout.queried / "a.xml").write_bytes(b"request")
    (layout.queried / "a.answer.xml").write_bytes(b"answer")
    # 2. died after writing the answer, before moving the request: the file is answered again,
    #    its answer replaced under the same name
    data = requests_file(request_xml(TEST_PATIENTS[0], reference="AGAIN"))
    (layout.working / "b.xml").write_bytes(data)
    (layout.queried / "b.answer.xml").write_bytes(b"half-done answer")
    # 3. an earlier, answered file of the same name is kept
    (layout.queried / "c.xml").write_bytes(b"old")
    (layout.queried / "c.answer.xml").write_bytes(b"old answer")
    (layout.queried / "c.answer.xml.ok").write_bytes(b"")
    (layout.working / "c.xml").write_bytes(data)
    folders.start()
    try:
        deadline = time.monotonic() + 20
        while list(layout.working.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        folders.stop()
    assert (layout.queried / "a.answer.xml.ok").exists()
    assert text(responses(layout.queried / "b.answer.xml")[0], "t:Reference") == "AGAIN"
    assert (layout.queried / "b.answer.xml.ok").exists()
    assert (layout.queried / "c.answer.xml").read_bytes() == b"old answer"
    assert text(responses(layout.queried / "c.2.answer.xml")[0], "t:Reference") == "AGAIN"
    assert (layout.queried / "c.2.xml").exists() and (layout.queried / "c.2.answer.xml.ok").exists()
