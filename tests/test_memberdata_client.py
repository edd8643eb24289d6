"""The MemberData client (#12 points 2 and 3): the request as sent against the official schemas,
the real (decrypted) sample answer mapped, and XML Encryption for the keystore's encryption key."""
from __future__ import annotations

import base64
from datetime import date, datetime, timezone

import pytest
from lxml import etree

from tests.conftest import official_schema, reference_path
from unified_messaging.domain.insurability import CareProvider, ContactType, InsurabilityQuery, RequestType
from unified_messaging.mycarenet.memberdata import COMMONS_PROTOCOL_NS, MemberDataClient, decrypt_assertions
from unified_messaging.mycarenet.memberdata_saml import SAML_NS, SAMLP_NS, ResponseReader, assertion_kinds
from unified_messaging.mycarenet.xmlenc import DecryptionError, encrypt_element
from unified_messaging.xmlsafe import parse_xml

NOW = datetime(2026, 1, 7, 8, 24, tzinfo=timezone.utc)
NURSE = CareProvider("40000109003", "nurse")


def sample_query(**changes) -> InsurabilityQuery:
    values = dict(care_provider=NURSE, period_start=date(2025, 12, 31), period_end=date(2026, 1, 6),
                  ssin="00011317652", contact_type=ContactType.OTHER)
    values.update(changes)
    return InsurabilityQuery(**values)


def client(**options) -> MemberDataClient:
    return MemberDataClient("http://127.0.0.1:9/MyCareNet/MemberData/v1", decryption_keys=lambda: (),
                            licence_source=lambda: ("demo", "secret"), now=lambda: NOW, **options)


def sample_response() -> etree._Element:
    return parse_xml(reference_path("samples", "mda", "response_mda.xml").read_bytes())


def saml_schema() -> etree.XMLSchema:
    return official_schema(reference_path("schemas", "memberdata-saml", "Extensions.xsd"))


def test_memberdata_sample_answer_maps_onto_the_legacy_answer():
    answer = ResponseReader(sample_query()).read(sample_response(), "NIP-123")
    assert answer.ok and answer.audit_reference == "NIP-123"
    patient = answer.patient
    assert (patient.ssin, patient.last_name, patient.first_name, patient.birth_date, patient.sex) == (
        "00011317652", "OUDERITS", "GITTE", date(2000, 1, 13), "female")
    [period] = answer.insurabilities
    assert (period.mutuality, period.registration_number, period.ct1, period.ct2) == ("120", "000113 044M86",
                                                                                      "110", "110")
    assert (period.period_start, period.period_end) == (date(2025, 12, 31), date(2026, 1, 6))
    assert period.insurability_date == date(2026, 1, 7) and not period.preferential_rate
    assert answer.payment_by_io is True and period.payment_by_io is True
    assert answer.medical_house is None and answer.hospitalized is None
    assert answer.extra["global_medical_file"] == "10000007004"
    assert answer.extra["memberdata_response"] == "_e98811a5-6757-4bf9-a6d2-3976373c018a"


@pytest.mark.parametrize("query", [
    sample_query(),
    sample_query(ssin=None, mutuality="120", registration_number="000113044M86",
                 contact_type=ContactType.HOSPITALIZED_ELSEWHERE, request_type=RequestType.INVOICING),
], ids=["ssin", "registration-number"])
def test_memberdata_request_as_sent_follows_the_official_schemas(query):
    protocol = official_schema(reference_path("schemas", "memberdata", "mycarenet-memberdata-protocol-1_0.xsd"))
    payload, headers = client().create_message(query, 1767774244000)
    assert headers["SOAPAction"] == '"urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1:MemberDataConsultation"'
    envelope = parse_xml(payload)
    request = envelope[1][0]
    protocol.assertValid(request)
    detail = request.find(f"{{{COMMONS_PROTOCOL_NS}}}Detail")
    assert (detail.get("ContentType"), detail.get("ContentEncoding")) == ("text/xml", "none")
    question = parse_xml(base64.b64decode(detail.text))
    saml_schema().assertValid(question)
    assert question.get("ID") == request.get("Id")
    assert question.findtext(f"{{{SAML_NS}}}Issuer") == NURSE.nihii
    name_id = question.find(f"{{{SAML_NS}}}Subject/{{{SAML_NS}}}NameID")
    data = question.find(f".//{{{SAML_NS}}}SubjectConfirmationData")
    assert (data.get("NotBefore"), data.get("NotOnOrAfter")) == ("2025-12-31T00:00:00", "2026-01-07T00:00:00")
    dimensions = {d.get("id"): d.text for d in question.iter("Dimension")}
    if query.ssin:
        assert (name_id.get("Format"), name_id.text) == ("urn:be:fgov:person:ssin", "00011317652")
        assert dimensions == {"requestType": "information", "contactType": "other"}
    else:
        assert (name_id.get("Format"), name_id.text) == ("urn:be:cin:nippin:careReceiver:registrationNumber@mut",
                                                         "000113044M86@120")
        assert dimensions == {"requestType": "invoicing", "contactType": "hospitalized"}


def encrypted_sample(certificate) -> etree._Element:
    response = sample_response()
    for assertion in list(response.iterfind(f"{{{SAML_NS}}}Assertion")):
        wrapper = etree.Element(f"{{{SAML_NS}}}EncryptedAssertion")
        wrapper.append(encrypt_element(assertion, certificate))
        response.replace(assertion, wrapper)
    return response


def test_memberdata_answer_encrypted_for_the_encryption_key_is_decrypted(pki):
    keystore = pki.load("nurse")
    [encryption] = keystore.encryption_entries
    assert encryption.alias != keystore.authentication.alias  # the second key of the multi-key .p12
    response = encrypted_sample(encryption.certificate)
    saml_schema().assertValid(response)
    assert not list(response.iterfind(f"{{{SAML_NS}}}Assertion"))
    decrypted = decrypt_assertions(parse_xml(etree.tostring(response)), keystore.encryption_entries)
    assert list(assertion_kinds(decrypted)) == list(assertion_kinds(sample_response()))
    answer = ResponseReader(sample_query()).read(decrypted, None)
    assert answer.patient.last_name == "OUDERITS" and answer.insurabilities[0].ct1 == "110"
    blob = base64.b64encode(etree.tostring(response)).decode()
    nurse_client = MemberDataClient("http://127.0.0.1:9/", decryption_keys=lambda: keystore.encryption_entries,
                                    licence_source=lambda: ("demo", "secret"))
    assert nurse_client.decrypted_response(blob).tag == f"{{{SAMLP_NS}}}Response"


def test_memberdata_answer_for_another_key_is_refused_plainly(pki):
    response = encrypted_sample(pki.load("lab").encryption_entries[0].certificate)
    with pytest.raises(DecryptionError, match="another encryption certificate"):
        decrypt_assertions(response, pki.load("nurse").encryption_entries)
    with pytest.raises(DecryptionError, match="no encryption key"):
        decrypt_assertions(response, ())
