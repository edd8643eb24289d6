"""Real Perl SOAP::Lite clients against the real gateway and simulator, in the two idioms legacy
Perl code uses (``tests/perl/``): ``proxy`` + ``default_ns`` with autotype on, which annotates every
value with ``xsi:type`` (``xsd:long`` for an SSIN), and the stub ``SOAP::Lite->service(wsdl)``
generates, which sends the children of the operation element unqualified; SOAP 1.1 and 1.2.
"""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
import zeep

from tests.support import INSURED, LAB, patient

SCRIPTS = Path(__file__).parent / "perl"
TODAY = dt.date.today().isoformat()
IDIOMS = ("default_ns", "service")
VERSIONS = ("1.1", "1.2")


@pytest.fixture(scope="module")
def perl() -> str:
    """The perl executable, once it is known that SOAP::Lite loads (Debian: libsoap-lite-perl)."""
    executable = shutil.which("perl")
    if executable is None:
        pytest.skip("perl is not installed: the Perl SOAP::Lite client tests need it (apt-get install perl)")
    probe = subprocess.run([executable, "-MSOAP::Lite", "-e", "print $SOAP::Lite::VERSION"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no output"])[0]
        pytest.skip(f"Perl SOAP::Lite is not installed (apt-get install libsoap-lite-perl): {reason}")
    return executable


@pytest.fixture()
def soap_lite(perl, gateway):
    """Run one Perl client idiom; the answer as {path: value} (faultcode, faultstring for a fault)."""

    def call(idiom: str, version: str, operation: str, **fields: str) -> dict[str, str]:
        if idiom == "service":
            address = f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl"
        else:
            port = "ConsultMyCareNetSoap12" if version == "1.2" else "ConsultMyCareNetSoap"
            address = f"{gateway.services_url}/{port}"
        args = [f"{name}={value}" for name, value in fields.items()]
        run = subprocess.run([perl, str(SCRIPTS / f"{idiom}.pl"), address, version, operation, *args],
                             capture_output=True, timeout=120)
        stdout, stderr = run.stdout.decode("utf-8"), run.stderr.decode("utf-8", "replace")
        assert run.returncode == 0, stderr
        return dict(line.split("\t", 1) for line in stdout.splitlines() if "\t" in line)

    return call


def _consultation(**fields: str) -> dict[str, str]:
    return {"Nihii": LAB["Nihii"], "Quality": LAB["Quality"], "PeriodStart": TODAY, **fields}


both = pytest.mark.parametrize("idiom,version", [(i, v) for i in IDIOMS for v in VERSIONS])


@both
def test_echo(soap_lite, idiom, version):
    answer = soap_lite(idiom, version, "Echo", message=f"hello from Perl {idiom} {version}")
    assert answer == {"EchoResult": f"hello from Perl {idiom} {version}"}


@both
def test_text_that_is_not_ascii_comes_through(soap_lite, idiom, version):
    """SOAP::Lite sends any text that is not ASCII as xsd:base64Binary ("hé" as "aMOp"): UM reads the text."""
    assert soap_lite(idiom, version, "Echo", message="Réf. hôpital Ñ") == {"EchoResult": "Réf. hôpital Ñ"}
    answer = soap_lite(idiom, version, "GetInsurability",
                       **_consultation(Ssin=patient("insured").ssin, Reference="Réf-é"))
    assert (answer.get("Status"), answer.get("Reference")) == ("OK", "Réf-é"), answer


@both
def test_insured_patient_by_ssin(soap_lite, idiom, version):
    insured = patient("insured")
    answer = soap_lite(idiom, version, "GetInsurability",
                       **_consultation(Ssin=insured.ssin, Reference=f"PERL-{idiom}-{version}"))
    assert answer.get("Status") == "OK", answer
    assert answer["Reference"] == f"PERL-{idiom}-{version}"
    assert answer["AuditReference"]
    assert (answer["Patient/Ssin"], answer["Patient/LastName"]) == (insured.ssin, insured.last_name)
    assert answer["Insurabilities/Insurability/Mutuality"] == insured.mutuality


@pytest.mark.parametrize("idiom", IDIOMS)
def test_ssin_with_a_leading_zero_keeps_it(soap_lite, idiom):
    """SOAP::Lite calls 04022900231 an xsd:long, but sends its text unchanged: so does UM."""
    other = next(p for p in INSURED if p.ssin.startswith("0"))
    answer = soap_lite(idiom, "1.1", "GetInsurability", **_consultation(Ssin=other.ssin))
    assert answer.get("Status") == "OK", answer
    assert (answer["Patient/Ssin"], answer["Patient/LastName"]) == (other.ssin, other.last_name)


@pytest.mark.parametrize("idiom,version", [("default_ns", "1.2"), ("service", "1.1")])
def test_by_mutuality_and_registration_number(soap_lite, idiom, version):
    insured = patient("insured")  # Mutuality goes out as xsd:int, RegistrationNumber as xsd:long
    answer = soap_lite(idiom, version, "GetInsurability", **_consultation(
        Mutuality=insured.mutuality, RegistrationNumber=insured.registration_number, PeriodEnd=TODAY))
    assert answer.get("Status") == "OK", answer
    assert answer["Patient/Ssin"] == insured.ssin


@pytest.mark.parametrize("idiom", IDIOMS)
def test_unknown_patient_gets_the_platform_answer(soap_lite, idiom):
    answer = soap_lite(idiom, "1.1", "GetInsurability", **_consultation(Ssin=patient("unknown").ssin))
    assert answer["Status"] == "ERROR"
    assert answer["Messages/Message/Code"] == "NO_IO_ERROR"
    assert answer["AuditReference"]


@both
def test_ssin_with_letters_gets_the_same_answer_as_a_strict_client(gateway, soap_lite, idiom, version):
    """Lenient about xsi:type, not about values: the SSIN check answers as it answers zeep."""
    strict = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl").service.GetInsurability(
        request={"CareProvider": LAB, "Ssin": "8507300332A", "PeriodStart": dt.date.today()})
    answer = soap_lite(idiom, version, "GetInsurability", **_consultation(Ssin="8507300332A"))
    assert strict.Status == answer["Status"] == "ERROR"
    assert answer["Messages/Message/Code"] == strict.Messages.Message[0].Code == "UM-SSIN"
    assert answer["Messages/Message/Text"] == strict.Messages.Message[0].Text
    assert "AuditReference" not in answer


@both
def test_a_value_invalid_for_its_element_is_still_a_schema_fault(soap_lite, idiom, version):
    answer = soap_lite(idiom, version, "GetInsurability",
                       **_consultation(Ssin=patient("insured").ssin, PeriodStart="2024-13-45"))
    assert answer["faultcode"].endswith("Client.SchemaValidation" if version == "1.1" else "Sender")
    assert "PeriodStart" in answer["faultstring"] and "2024-13-45" in answer["faultstring"]
    assert "xsi:type" not in answer["faultstring"]


@both
def test_an_undef_optional_value_is_read_as_absent(soap_lite, idiom, version):
    """SOAP::Lite sends a Perl undef as an empty element marked xsi:nil="true": the old services read it
    as absent, so does UM where the contract makes the element optional."""
    insured = patient("insured")
    answer = soap_lite(idiom, version, "GetInsurability", **_consultation(
        Ssin=insured.ssin, PeriodEnd="~undef", Reference="~undef", ContactType="~undef"))
    assert answer.get("Status") == "OK", answer
    assert answer["Patient/Ssin"] == insured.ssin
    assert "Reference" not in answer


@pytest.mark.parametrize("idiom", IDIOMS)
def test_an_undef_required_value_is_refused_naming_it(soap_lite, idiom):
    answer = soap_lite(idiom, "1.1", "GetInsurability", **_consultation(Ssin=patient("insured").ssin,
                                                                          PeriodStart="~undef"))
    assert answer["faultcode"].endswith("Client.SchemaValidation"), answer
    assert "PeriodStart" in answer["faultstring"], answer


def test_a_too_long_ssin_is_still_refused(soap_lite):
    answer = soap_lite("default_ns", "1.1", "GetInsurability", **_consultation(Ssin="1" * 41))
    assert answer["faultcode"].endswith("Client.SchemaValidation")
    assert "Ssin" in answer["faultstring"] and "maxLength" in answer["faultstring"]

