"""What legacy clients write in a Body, as raw requests to the real gateway: accepted (``xsi:type`` on a
value, unqualified content of the operation element), still refused (everything else the contract
forbids), and faults that name namespaces when an element is in the wrong one."""
from __future__ import annotations

import datetime as dt

import pytest
import requests
from lxml import etree

from tests.support import LAB, TNS, insurability_body, patient, soap_envelope
from unified_messaging.insurability.contract_xml import ContractSchema

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def _post(gateway, body: str, version: str = "1.1") -> tuple[int, etree._Element]:
    content_type = "application/soap+xml; charset=utf-8" if version == "1.2" else "text/xml; charset=utf-8"
    envelope = soap_envelope(body, version=version).replace("<soap:Envelope ", f"<soap:Envelope {XSI} ", 1)
    response = requests.post(f"{gateway.services_url}/ConsultMyCareNetSoap", data=envelope.encode(),
                             headers={"Content-Type": content_type}, timeout=30)
    return response.status_code, etree.fromstring(response.content)


def _fault(doc: etree._Element) -> tuple[str, str]:
    code = doc.findtext(".//faultcode") or doc.findtext(".//{http://www.w3.org/2003/05/soap-envelope}Value")
    text = doc.findtext(".//faultstring") or doc.findtext(".//{http://www.w3.org/2003/05/soap-envelope}Text")
    assert code and text, etree.tostring(doc)
    return code, text


def _unqualified(ssin: str, extra: str = "") -> str:
    """GetInsurability the way SOAP::Lite's service() stub writes it: only the operation element qualified."""
    return insurability_body(ssin, extra=extra).replace("<tns:", "<").replace("</tns:", "</") \
        .replace("<GetInsurability>", "<tns:GetInsurability>").replace("</GetInsurability>", "</tns:GetInsurability>")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_xsi_types_on_values_are_ignored_even_with_an_undeclared_prefix(gateway, version):
    insured = patient("insured")
    body = insurability_body(insured.ssin).replace("<tns:Ssin>", '<tns:Ssin xsi:type="xsd:long">') \
        .replace("<tns:Nihii>", '<tns:Nihii xsi:type="undeclared:long">')
    status, doc = _post(gateway, body, version)
    assert status == 200, etree.tostring(doc)
    assert doc.findtext(f".//{{{TNS}}}Patient/{{{TNS}}}LastName") == insured.last_name


def test_unqualified_content_of_the_operation_element_is_the_contract_s(gateway):
    insured = patient("insured")
    status, doc = _post(gateway, _unqualified(insured.ssin, extra="<Reference>UNQ-1</Reference>"))
    assert status == 200, etree.tostring(doc)
    assert doc.findtext(f".//{{{TNS}}}Reference") == "UNQ-1"
    assert doc.findtext(f".//{{{TNS}}}Patient/{{{TNS}}}Ssin") == insured.ssin


@pytest.mark.parametrize("content", ["not base64!", "/w=="], ids=["not base64", "not UTF-8"])
def test_base64_that_is_no_text_is_refused(gateway, content):
    message = f'<tns:message xsi:type="xsd:base64Binary">{content}</tns:message>'
    status, doc = _post(gateway, f"<tns:Echo>{message}</tns:Echo>")
    code, text = _fault(doc)
    assert status == 500 and code.endswith("Client.SchemaValidation")
    assert "message is typed xsd:base64Binary" in text and "SOAP::Data->type('string')" in text


def test_xmlns_reset_on_one_child_only(gateway):
    status, doc = _post(gateway, '<tns:Echo><message xmlns="">reset</message></tns:Echo>')
    assert status == 200 and doc.findtext(f".//{{{TNS}}}EchoResult") == "reset"


SSIN = patient("insured").ssin
XSD_STRING = 'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xsi:type="xsd:string"'


@pytest.mark.parametrize("body, named", [
    (_unqualified(SSIN, extra="<Launch>1</Launch>"), "Launch"),
    (_unqualified(SSIN).replace("</Quality>", f"</Quality><Ssin>{SSIN}</Ssin>"), "Ssin"),
    (_unqualified(SSIN).replace("<Ssin>", '<Ssin xsi:type="xsd:long">' + "1" * 40), "maxLength"),
    (insurability_body(SSIN).replace("<tns:request>", f"<tns:request {XSD_STRING}>"), "xsi:type"),
], ids=["unknown element", "wrong nesting", "too long whatever its type", "xsi:type on content"])
def test_everything_else_is_still_refused(gateway, body, named):
    status, doc = _post(gateway, body)
    code, text = _fault(doc)
    assert status == 500 and code.endswith("Client.SchemaValidation")
    assert named in text and SSIN not in text


def test_an_invalid_value_gets_the_same_fault_with_or_without_xsi_type(gateway):
    bad = insurability_body(patient("insured").ssin).replace(dt.date.today().isoformat(), "2024-13-45")
    typed = bad.replace("<tns:PeriodStart>", '<tns:PeriodStart xsi:type="xsd:string">')
    plain_fault, typed_fault = _fault(_post(gateway, bad)[1]), _fault(_post(gateway, typed)[1])
    assert plain_fault == typed_fault
    assert "PeriodStart" in typed_fault[1] and "2024-13-45" in typed_fault[1]


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_child_in_another_namespace_is_named_with_both_namespaces(gateway, version):
    status, doc = _post(gateway, '<tns:Echo><x:message xmlns:x="urn:wrong">hi</x:message></tns:Echo>', version)
    code, text = _fault(doc)
    assert status == 500 and ("Client" in code or "Sender" in code)
    assert text == ("The request does not match the ConsultMyCareNet contract: Element {urn:wrong}message is in "
                    f"namespace 'urn:wrong'; expected {{{TNS}}}message: put it in the namespace '{TNS}'.")


def test_a_deep_element_in_another_namespace_names_the_one_expected(gateway):
    body = insurability_body(patient("insured").ssin).replace(
        "<tns:Ssin>", '<x:Ssin xmlns:x="urn:old-contract">').replace("</tns:Ssin>", "</x:Ssin>")
    code, text = _fault(_post(gateway, body)[1])
    assert code.endswith("Client.SchemaValidation")
    assert f"Element {{urn:old-contract}}Ssin is in namespace 'urn:old-contract'; expected {{{TNS}}}Ssin" in text
    assert SSIN not in text


@pytest.mark.parametrize("operation, namespace", [
    ('<x:Echo xmlns:x="urn:wrong"><x:message>hi</x:message></x:Echo>', "is in namespace 'urn:wrong'"),
    ("<Echo><message>hi</message></Echo>", "has no namespace"),
])
def test_an_operation_element_outside_the_contract_namespace_says_which_one(gateway, operation, namespace):
    code, text = _fault(_post(gateway, operation)[1])
    assert code.endswith("Client.WrongNamespace")
    assert namespace in text and f"expected {{{TNS}}}Echo" in text and f'xmlns="{TNS}"' in text


def test_the_folder_interface_names_namespaces_too():
    """toQuery folders validate with the same schema: an unqualified element there says so."""
    request = etree.fromstring(
        f'<InsurabilityRequest xmlns="{TNS}"><CareProvider><Nihii>{LAB["Nihii"]}</Nihii>'
        f'<Quality xmlns="">labo</Quality></CareProvider><PeriodStart>2024-01-01</PeriodStart></InsurabilityRequest>')
    assert ContractSchema().request_error(request) == (
        f"Element Quality has no namespace; expected {{{TNS}}}Quality: put it in the namespace '{TNS}'.")


@pytest.mark.parametrize("nil", ['xsi:nil="true"/>', 'xsi:nil="1"></tns:PeriodEnd>'])
def test_an_empty_nil_optional_value_is_absent(gateway, nil):
    """Axis, .NET and SOAP::Lite (for undef) send a null optional field as an empty xsi:nil element."""
    insured = patient("insured")
    status, doc = _post(gateway, insurability_body(insured.ssin, extra=f"<tns:PeriodEnd {nil}"))
    assert status == 200, etree.tostring(doc)
    assert doc.findtext(f".//{{{TNS}}}Patient/{{{TNS}}}LastName") == insured.last_name


def test_a_nil_value_with_content_or_a_nil_required_value_is_still_refused(gateway):
    insured = patient("insured")
    status, doc = _post(gateway, insurability_body(insured.ssin, extra='<tns:Reference xsi:nil="true">R</tns:Reference>'))
    assert status == 500 and "Reference" in _fault(doc)[1]
    today = f"<tns:PeriodStart>{dt.date.today().isoformat()}</tns:PeriodStart>"
    status, doc = _post(gateway, insurability_body(insured.ssin).replace(today, '<tns:PeriodStart xsi:nil="true"/>'))
    code, text = _fault(doc)
    assert status == 500 and code.endswith("Client.SchemaValidation") and "PeriodStart" in text, text
