"""GetInsurability answered without Spyne (``soap.consult.SoapEndpoint``): the same bytes, status and
headers as Spyne's for every shape of answer, and Spyne for everything else.

The core service is the real one with a real journal; only the platform's answer is fixed, so that
the same answer can be written by both paths: the usual request (an XML declaration, no Header) takes
the fast path, the same envelope without its declaration goes to Spyne (a body without declaration
may need the Content-Type's charset, which only Spyne's path reads).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging

import pytest

from unified_messaging.domain.errors import UpstreamUnavailable
from unified_messaging.domain.insurability import (
    BusinessFault, CareProvider, FaultDetail, GeneralSituation, Hospitalized, InsurabilityAnswer, InsurabilityPeriod,
    InsurabilityQuery, MedicalHouse, Patient, Transfer)
from unified_messaging.journal import Journal
from unified_messaging.insurability.service import InsurabilityService
from unified_messaging.soap.consult import build_soap_apps
from unified_messaging.soap.contract import TNS, Contract

D = dt.date(2026, 12, 7)
QUERY = InsurabilityQuery(CareProvider("81234530000", "labo"), D, D, ssin="85073003328")
PERIOD = InsurabilityPeriod("131", "13100001001", D, D, "110", "110", insurability_date=D)

ANSWERS = {
    "insured": InsurabilityAnswer(QUERY, audit_reference="26120700000001",
                                  patient=Patient("85073003328", "Voorbeeld", "Lucas", dt.date(1985, 7, 30), "male"),
                                  insurabilities=(PERIOD,), payment_by_io=False),
    "texts to escape": InsurabilityAnswer(
        QUERY, audit_reference="a&b<c>d\"e'f\rg\th\ni",
        patient=Patient(last_name="Émile & <Fils>", first_name="Zoë\u4e2d\U0001f600")),
    "everything": InsurabilityAnswer(
        QUERY, audit_reference="1", patient=Patient("85073003328", deceased_date=D),
        insurabilities=(PERIOD, dataclasses.replace(PERIOD, payment_by_io=True, period_end=None)),
        general_situation=GeneralSituation("changeDuring", (Transfer("toOtherIo", "226", D), Transfer("fromOtherIo"))),
        payment_by_io=True, max_invoiced_years=(2024, 2025), medical_house=MedicalHouse(D, None, True, False, True),
        hospitalized=Hospitalized("710000000001", D, "200")),
    "empty groups": InsurabilityAnswer(QUERY, general_situation=GeneralSituation(""),
                                       medical_house=MedicalHouse(None)),  # type: ignore[arg-type]
    "business fault": InsurabilityAnswer(QUERY, fault=BusinessFault(
        "MULTIIO_ERROR", "MyCareNet", "Several insurers", (FaultDetail("12", "Inss", "bad"), FaultDetail("", None, "")),
        multi_io=("100", "300"))),
    "empty fault texts": InsurabilityAnswer(QUERY, fault=BusinessFault("", "", "")),
}


class FixedPlatform:
    """MyCareNet's side, answering what the test set (an answer, or an exception to raise)."""

    def __init__(self) -> None:
        self.outcome: object = None
        self.calls = 0

    def get_insurability(self, query, *, acting=None):  # noqa: ANN001, ANN201 - UpstreamInsurability
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return dataclasses.replace(self.outcome, query=query)


@pytest.fixture()
def front(tmp_path):
    platform = FixedPlatform()
    journal = Journal(tmp_path / "journal.sqlite")
    apps = build_soap_apps(InsurabilityService(platform, journal), Contract(), max_content_length=1 << 20)
    spyne_calls = []
    for endpoint in apps.values():
        spyne = endpoint.spyne
        endpoint.spyne = lambda environ, start, spyne=spyne: spyne_calls.append(1) or spyne(environ, start)
    yield apps, platform, spyne_calls
    journal.close()


ENVELOPES = {"1.1": ("http://schemas.xmlsoap.org/soap/envelope/", "text/xml; charset=utf-8"),
             "1.2": ("http://www.w3.org/2003/05/soap-envelope", "application/soap+xml; charset=utf-8")}


def request(version: str, *, declaration: bool, header: str = "", request_text: str | None = None) -> tuple[bytes, str]:
    namespace, content_type = ENVELOPES[version]
    inner = request_text if request_text is not None else (
        "<t:request><t:CareProvider><t:Nihii>81234530000</t:Nihii><t:Quality>labo</t:Quality></t:CareProvider>"
        "<t:Ssin>85073003328</t:Ssin><t:PeriodStart>2026-12-07</t:PeriodStart></t:request>")
    text = (f'<e:Envelope xmlns:e="{namespace}" xmlns:t="{TNS}">{header}<e:Body><t:GetInsurability>{inner}'
            "</t:GetInsurability></e:Body></e:Envelope>")
    if declaration:
        text = "<?xml version='1.0' encoding='utf-8'?>\n" + text
    return text.encode("utf-8"), content_type


def call(app, body: bytes, content_type: str) -> tuple[str, list, bytes]:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/unified-messaging/services/ConsultMyCareNetSoap",
               "QUERY_STRING": "", "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "8080", "HTTP_HOST": "127.0.0.1:8080", "REMOTE_ADDR": "192.0.2.7"}
    started = []
    payload = b"".join(app(environ, lambda status, headers, exc_info=None: started.append((status, headers))))
    return started[0][0], started[0][1], payload


def both_paths(front, version: str, **options) -> tuple[tuple, tuple]:
    apps, platform, spyne_calls = front
    fast = call(apps[version], *request(version, declaration=True, **options))
    fast_used_spyne = len(spyne_calls)
    slow = call(apps[version], *request(version, declaration=False, **options))
    assert len(spyne_calls) == fast_used_spyne + 1
    return (fast, fast_used_spyne), slow


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("shape", sorted(ANSWERS))
def test_the_fast_path_writes_spynes_bytes(front, version, shape):
    _, platform, _ = front
    platform.outcome = ANSWERS[shape]
    (fast, spyne_used), slow = both_paths(front, version)
    assert spyne_used == 0, "the usual request must not go through Spyne"
    assert fast == slow
    assert fast[0] == "200 OK" and b"GetInsurabilityResult" in fast[2]
    assert platform.calls == 2  # one consultation per call, journaled once each


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_fault_after_the_consultation_is_spynes_without_asking_twice(front, version, caplog):
    _, platform, _ = front
    platform.outcome = UpstreamUnavailable("http://platform.example/GenericInsurability", "connection refused")
    with caplog.at_level(logging.WARNING, logger="unified_messaging.soap.consult"):
        (fast, spyne_used), slow = both_paths(front, version)
    assert spyne_used == 1 and platform.calls == 2
    assert fast == slow and fast[0].startswith("500") and b"connection refused" in fast[2]
    assert len([r for r in caplog.records if "Server fault" in r.getMessage()]) == 2


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_text_only_lxml_can_judge_goes_to_spyne(front, version):
    _, platform, _ = front
    platform.outcome = dataclasses.replace(ANSWERS["insured"], audit_reference="bad \x01 control character")
    (fast, spyne_used), slow = both_paths(front, version)
    assert spyne_used == 1 and platform.calls == 2
    assert fast == slow and fast[0].startswith("500")


def test_requests_that_are_not_the_usual_one_go_to_spyne(front):
    apps, platform, spyne_calls = front
    platform.outcome = ANSWERS["insured"]
    bad_request = "<t:request><t:Ssin>1</t:Ssin></t:request>"
    invalid = call(apps["1.1"], *request("1.1", declaration=True, request_text=bad_request))
    assert invalid[0].startswith("500") and b"Client.SchemaValidation" in invalid[2]
    header = call(apps["1.1"], *request("1.1", declaration=True, header="<e:Header/>"))
    assert header[0] == "200 OK"
    wrong_version = call(apps["1.2"], *request("1.1", declaration=True))
    assert wrong_version[0].startswith("500") and b"Envelope" in wrong_version[2]
    assert len(spyne_calls) == 3 and platform.calls == 1
