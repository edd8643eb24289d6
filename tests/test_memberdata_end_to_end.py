"""MemberData end to end (#12 points 5-7): the gateway with ``insurability_service = "memberdata"``,
its real simulator over sockets (security checks, encrypted answers, MemberData's own faults), the
SOAP front seen with zeep, and the journal naming the service that answered."""
from __future__ import annotations

import datetime as dt

import pytest
import zeep

from tests.conftest import make_config
from tests.support import LAB, patient

TODAY = dt.date.today()


@pytest.fixture(scope="module")
def memberdata_gateway(tmp_path_factory):
    from unified_messaging.gateway import Gateway

    config = make_config(tmp_path_factory.mktemp("memberdata"),
                         upstream={"insurability_service": "memberdata"}, invoicing={"enabled": False})
    gateway = Gateway(config).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def memberdata_soap(memberdata_gateway):
    return zeep.Client(f"{memberdata_gateway.services_url}/ConsultMyCareNetSoap?wsdl").service


def test_memberdata_soap_answers_like_genericinsurability(memberdata_gateway, memberdata_soap):
    insured = patient("insured")
    result = memberdata_soap.GetInsurability(request={"CareProvider": LAB, "Ssin": insured.ssin,
                                                      "PeriodStart": TODAY, "Reference": "MDA-1"})
    assert result.Status == "OK", result.Messages
    assert result.Reference == "MDA-1" and result.AuditReference
    assert result.Patient.LastName == insured.last_name
    assert result.Insurabilities.Insurability[0].Mutuality
    counters = memberdata_gateway.simulator.counters
    assert counters["memberdata.consult"] >= 1 and counters["genericinsurability.getInsurability"] == 0
    [row] = [r for r in memberdata_gateway.journal.consultations(limit=5) if r["reference"] == "MDA-1"]
    assert (row["outcome"], row["upstream_service"]) == ("OK", "memberdata")


def test_memberdata_soap_by_mutuality_and_registration_number(memberdata_soap):
    insured = patient("insured")
    result = memberdata_soap.GetInsurability(request={
        "CareProvider": LAB, "Mutuality": insured.mutuality, "RegistrationNumber": insured.registration_number,
        "PeriodStart": TODAY, "PeriodEnd": TODAY})
    assert result.Status == "OK", result.Messages
    assert result.Patient.Ssin == insured.ssin


@pytest.mark.parametrize("scenario, detail", [("unknown", "UNKNOWN_IO"), ("several_insurers", "MULTIPLE_IO")])
def test_memberdata_refusal_comes_back_with_memberdata_codes(memberdata_gateway, memberdata_soap, scenario, detail):
    reference = f"MDA-{scenario}"
    result = memberdata_soap.GetInsurability(request={"CareProvider": LAB, "Ssin": patient(scenario).ssin,
                                                      "PeriodStart": TODAY, "Reference": reference})
    assert result.Status != "OK"
    assert detail in str(result.Messages), result.Messages
    [row] = [r for r in memberdata_gateway.journal.consultations(limit=10) if r["reference"] == reference]
    assert (row["outcome"], row["code"], row["upstream_service"]) == ("ERROR", "INPUT_ERROR", "memberdata")


def test_memberdata_unreachable_is_unavailable_for_the_caller_and_the_journal(memberdata_gateway, memberdata_soap):
    memberdata_gateway.simulator.faults.set("memberdata", "html-503", count=1)
    with pytest.raises(zeep.exceptions.Fault):
        memberdata_soap.GetInsurability(request={"CareProvider": LAB, "Ssin": patient("insured").ssin,
                                                 "PeriodStart": TODAY, "Reference": "MDA-DOWN"})
    [row] = [r for r in memberdata_gateway.journal.consultations(limit=5) if r["reference"] == "MDA-DOWN"]
    assert (row["outcome"], row["upstream_service"]) == ("UNAVAILABLE", "memberdata")
