"""Every simulator patient scenario, through the real gateway, the upstream client and the simulator."""
from __future__ import annotations

import datetime as dt

import pytest
import zeep

from tests.conftest import bytes_read_elsewhere
from tests.support import LAB
from unified_messaging.simulator.population import TEST_PATIENTS

TODAY = dt.date.today()
COUNTER = "genericinsurability.getInsurability"


def patients(scenario: str):
    found = [p for p in TEST_PATIENTS if p.scenario == scenario]
    assert found, scenario
    return found


@pytest.fixture(scope="module")
def consult(gateway):
    service = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl").service

    def call(p=None, **request):
        body = {"CareProvider": LAB, "PeriodStart": TODAY}
        if p is not None:
            body.update({"Ssin": p.ssin} if p.ssin else
                        {"Mutuality": p.mutuality, "RegistrationNumber": p.registration_number})
        body.update(request)
        return service.GetInsurability(request=body)

    return call


def _messages(result) -> list:
    return result.Messages.Message if result.Messages else []


@pytest.mark.parametrize("p", patients("insured"), ids=lambda p: p.last_name)
def test_insured_ambulatory(consult, p):
    result = consult(p, Reference="DESK-7")
    assert result.Status == "OK"
    assert result.Reference == "DESK-7"
    assert result.AuditReference
    assert result.Patient.Ssin == p.ssin
    assert (result.Patient.LastName, result.Patient.FirstName) == (p.last_name, p.first_name)
    assert result.Patient.BirthDate is not None and result.Patient.Sex in ("male", "female")
    (item,) = result.Insurabilities.Insurability
    assert (item.Mutuality, item.RegistrationNumber) == (p.mutuality, p.registration_number)
    assert (item.CT1, item.CT2) == ("110", "110")
    assert item.PaymentByIo is False
    assert result.MedicalHouse is None and result.Hospitalized is None and result.Messages is None


def test_insured_by_mutuality_and_registration_number(consult):
    p = patients("insured")[0]
    result = consult(Mutuality=p.mutuality, RegistrationNumber=p.registration_number)
    assert result.Status == "OK"
    assert result.Patient.Ssin == p.ssin


@pytest.mark.parametrize("p", patients("preferential_rate"), ids=lambda p: p.last_name)
def test_preferential_rate_has_odd_ct1_and_ct2(consult, p):
    item = consult(p).Insurabilities.Insurability[0]
    assert int(item.CT1) % 2 == 1 and int(item.CT2) % 2 == 1


def test_third_party_payment(consult):
    result = consult(patients("third_party_payment")[0])
    assert result.Insurabilities.Insurability[0].PaymentByIo is True
    assert result.MaxInvoicedYears.Year == [2024, 2025]


def test_medical_house(consult):
    house = consult(patients("medical_house")[0]).MedicalHouse
    assert house.PeriodStart == dt.date(2021, 3, 1)
    assert (house.Medical, house.Kine, house.Nurse) == (True, True, False)


def test_hospitalized_elsewhere(consult):
    p = patients("hospitalized")[0]
    result = consult(p, ContactType="HospitalizedElsewhere")
    assert result.Status == "OK"
    assert len(result.Hospitalized.Hospital) == 12
    assert result.Hospitalized.AdmissionDate == dt.date(2025, 9, 15)
    assert result.Hospitalized.AdmissionService == "200"
    assert consult(p).Hospitalized is None  # only answered for a hospitalized_elsewhere question


def test_deceased(consult):
    result = consult(patients("deceased")[0], PeriodStart=dt.date(2025, 3, 1), PeriodEnd=dt.date(2025, 3, 31))
    assert result.Patient.DeceasedDate == dt.date(2025, 3, 15)


def test_change_of_mutuality_during_the_period(consult):
    result = consult(patients("change_of_mutuality")[0],
                     PeriodStart=dt.date(2024, 6, 1), PeriodEnd=dt.date(2024, 8, 31))
    assert result.GeneralSituation.Event == "changeDuring"
    assert result.GeneralSituation.Transfers.Transfer
    assert [i.Mutuality for i in result.Insurabilities.Insurability] == ["131", "226"] or \
        sorted(i.Mutuality for i in result.Insurabilities.Insurability) == ["131", "226"]


@pytest.mark.parametrize("p", patients("several_insurers"), ids=lambda p: p.last_name)
def test_several_insurers(consult, p):
    result = consult(p)
    assert result.Status == "ERROR"
    assert result.AuditReference
    codes = [m.Code for m in _messages(result)]
    assert codes[0] == "MULTIIO_ERROR"
    assert any("Insurers that know this patient" in (m.Text or "") for m in _messages(result))


def test_unknown_patient(consult):
    result = consult(patients("unknown")[0])
    assert result.Status == "ERROR"
    assert _messages(result)[0].Code == "NO_IO_ERROR"
    assert result.AuditReference


def test_unknown_mutuality_is_an_upstream_input_error_with_its_detail(consult):
    result = consult(patients("unknown_mutuality")[0])
    assert result.Status == "ERROR"
    messages = _messages(result)
    assert messages[0].Code == "INPUT_ERROR"
    assert any(m.Code == "21" for m in messages[1:])


@pytest.mark.parametrize("scenario", ["bad_check_digit", "bad_ssin_format"])
def test_bad_ssin_is_answered_locally_without_calling_upstream(gateway, consult, scenario):
    before = gateway.simulator.counters[COUNTER]
    result = consult(patients(scenario)[0])
    assert gateway.simulator.counters[COUNTER] == before
    assert result.Status == "ERROR"
    assert result.AuditReference is None
    assert [m.Code for m in _messages(result)] == ["UM-SSIN"]
    assert _messages(result)[0].Location == "Ssin"
    assert _messages(result)[0].Text.startswith("The request was not sent to MyCareNet: ")


def test_bad_nihii_and_period_are_answered_locally(gateway, consult):
    before = gateway.simulator.counters[COUNTER]
    result = consult(patients("insured")[0], CareProvider={"Nihii": "81234599000", "Quality": "labo"},
                     PeriodEnd=TODAY - dt.timedelta(days=1))
    assert gateway.simulator.counters[COUNTER] == before
    assert {m.Code for m in _messages(result)} >= {"UM-NIHII", "UM-PERIOD"}


def test_every_consultation_is_in_the_journal(gateway, consult):
    p = patients("insured")[0]
    result = consult(p, Reference="JOURNAL-1")
    row = gateway.journal.consultations(limit=1)[0]
    assert row["reference"] == "JOURNAL-1"
    assert row["interface"] == "soap"
    assert row["patient"] == p.ssin[:6] + "*****"
    assert row["outcome"] == "OK"
    assert row["audit_reference"] == result.AuditReference
    assert row["care_provider"] == LAB["Nihii"]
    assert row["duration_ms"] > 0
    consult(patients("unknown")[0])
    row = gateway.journal.consultations(limit=1)[0]
    assert (row["outcome"], row["code"]) == ("ERROR", "NO_IO_ERROR")
    consult(patients("bad_check_digit")[0])
    row = gateway.journal.consultations(limit=1)[0]
    assert (row["outcome"], row["code"], row["audit_reference"]) == ("REJECTED", "UM-SSIN", None)
    # the journal file itself never holds a full SSIN
    raw = bytes_read_elsewhere(gateway.config.journal_path)
    for patient in TEST_PATIENTS:
        if patient.ssin:
            assert patient.ssin.encode() not in raw


def test_an_ssin_typed_in_the_wrong_field_is_masked_everywhere(gateway, consult, caplog):
    import logging

    ssin = patients("insured")[0].ssin
    with caplog.at_level(logging.DEBUG):
        wrong_nihii = consult(patients("insured")[0], CareProvider={"Nihii": ssin, "Quality": ssin})
        in_reference = consult(patients("insured")[0], Reference=f"P{ssin}")
        by_mutuality = consult(Mutuality="131", RegistrationNumber=ssin)
    assert wrong_nihii.Status == "ERROR" and in_reference.Status == "OK" and by_mutuality
    rows = gateway.journal.consultations(limit=3)
    assert ssin not in str(rows)
    assert ssin not in " ".join(m.Text or "" for m in _messages(wrong_nihii))
    assert all(ssin not in r.getMessage() for r in caplog.records if r.name.startswith("unified_messaging"))
    assert ssin.encode() not in bytes_read_elsewhere(gateway.config.journal_path)


def test_schema_errors_do_not_echo_an_ssin(gateway):
    import requests

    ssin = patients("insured")[0].ssin
    body = (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            f'<GetInsurability xmlns="http://unified-messaging.be/ConsultMyCareNet/"><request><CareProvider>'
            f'<Nihii>81234530000</Nihii><Quality>labo</Quality></CareProvider><Ssin>{ssin}</Ssin>'
            f'<PeriodStart>{ssin}</PeriodStart></request></GetInsurability></s:Body></s:Envelope>')
    response = requests.post(f"{gateway.services_url}/ConsultMyCareNetSoap", data=body.encode(),
                             headers={"Content-Type": "text/xml"}, timeout=10)
    assert response.status_code == 500 and b"SchemaValidation" in response.content
    assert ssin.encode() not in response.content
