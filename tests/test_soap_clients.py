"""Real SOAP clients against the real running gateway and simulator."""
from __future__ import annotations

import datetime as dt
import logging

import pytest
import requests
import zeep
from lxml import etree

from tests.support import ACTION, LAB, TNS, insurability_body, patient, soap_envelope

TODAY = dt.date.today()


@pytest.fixture(scope="module")
def zeep_client(gateway):
    return zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl")


@pytest.mark.parametrize("port", ["ConsultMyCareNetSoap", "ConsultMyCareNetSoap12"])
def test_zeep_echo_and_get_insurability_over_soap11_and_soap12(zeep_client, port):
    service = zeep_client.bind("ConsultMyCareNet", port)
    assert service.Echo(message="hello é") == "hello é"
    insured = patient("insured")
    result = service.GetInsurability(request={
        "CareProvider": LAB, "Ssin": insured.ssin, "PeriodStart": TODAY, "Reference": "ZEEP-1",
    })
    assert result.Status == "OK"
    assert result.Reference == "ZEEP-1"
    assert result.AuditReference
    assert result.Patient.LastName == insured.last_name
    assert result.Insurabilities.Insurability[0].Mutuality


def test_zeep_by_mutuality_and_registration_number(zeep_client):
    service = zeep_client.bind("ConsultMyCareNet", "ConsultMyCareNetSoap")
    insured = patient("insured")
    result = service.GetInsurability(request={
        "CareProvider": LAB, "Mutuality": insured.mutuality, "RegistrationNumber": insured.registration_number,
        "PeriodStart": TODAY, "PeriodEnd": TODAY,
    })
    assert result.Status == "OK", result.Messages
    assert result.Patient.Ssin == insured.ssin


@pytest.mark.parametrize("port", ["ConsultMyCareNetSoap", "ConsultMyCareNetSoap12"])
def test_suds_client(gateway, port):
    """suds-community writes SOAP 1.1 envelopes on either port; each endpoint accepts both versions."""
    from suds.client import Client

    client = Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl", cache=None)
    client.set_options(port=port)
    assert client.service.Echo("suds") == "suds"
    request = client.factory.create("InsurabilityRequest")
    request.CareProvider.Nihii = LAB["Nihii"]
    request.CareProvider.Quality = LAB["Quality"]
    request.Ssin = patient("insured").ssin
    request.PeriodStart = TODAY.isoformat()
    for name in ("Mutuality", "RegistrationNumber", "PeriodEnd", "ContactType", "RequestType", "Reference"):
        setattr(request, name, None)
    result = client.service.GetInsurability(request)
    assert result.Status == "OK"
    assert result.Patient.LastName == patient("insured").last_name
    chosen = next(p for p in client.wsdl.services[0].ports if p.name == port)
    assert chosen.location == f"{gateway.services_url}/{port}"


def _post(gateway, data: bytes, content_type: str = "text/xml; charset=utf-8", soap_action=None,
          endpoint: str = "ConsultMyCareNetSoap") -> requests.Response:
    headers = {"Content-Type": content_type}
    if soap_action is not None:
        headers["SOAPAction"] = soap_action
    return requests.post(f"{gateway.services_url}/{endpoint}", data=data, headers=headers, timeout=30)


def _result(response: requests.Response) -> etree._Element:
    doc = etree.fromstring(response.content)
    found = doc.find(f".//{{{TNS}}}GetInsurabilityResult")
    assert found is not None, response.text
    return found


@pytest.mark.parametrize("soap_action", [f'"{ACTION}"', ACTION, None, '""'])
@pytest.mark.parametrize("prefixes", [("soap", "tns"), ("SOAP-ENV", "ns1"), ("s", "um")])
def test_raw_soap11_prefixes_and_soapaction_variants(gateway, soap_action, prefixes):
    env_prefix, tns_prefix = prefixes
    body = soap_envelope(insurability_body(patient("insured").ssin, tns_prefix), env_prefix, tns_prefix)
    response = _post(gateway, body.encode(), soap_action=soap_action)
    assert response.status_code == 200, response.text
    assert _result(response).findtext(f"{{{TNS}}}Status") == "OK"


def test_raw_default_namespace_without_prefix(gateway):
    ssin = patient("insured").ssin
    body = (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            f'<GetInsurability xmlns="{TNS}"><request><CareProvider><Nihii>{LAB["Nihii"]}</Nihii>'
            f"<Quality>labo</Quality></CareProvider><Ssin>{ssin}</Ssin><PeriodStart>{TODAY}</PeriodStart>"
            "</request></GetInsurability></s:Body></s:Envelope>")
    assert _result(_post(gateway, body.encode())).findtext(f"{{{TNS}}}Status") == "OK"


def test_raw_soap12_with_action_parameter(gateway):
    body = soap_envelope(insurability_body(patient("insured").ssin), version="1.2")
    response = _post(gateway, body.encode(), f'application/soap+xml; charset=utf-8; action="{ACTION}"',
                     endpoint="ConsultMyCareNetSoap12")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/soap+xml")
    assert _result(response).findtext(f"{{{TNS}}}Status") == "OK"


def test_iso_8859_1_body_and_reference(gateway):
    body = soap_envelope(insurability_body(patient("insured").ssin,
                                            extra="<tns:Reference>CAFÉ-1</tns:Reference>"))
    data = ('<?xml version="1.0" encoding="ISO-8859-1"?>' + body).encode("iso-8859-1")
    response = _post(gateway, data, "text/xml; charset=ISO-8859-1", soap_action=ACTION)
    assert response.status_code == 200, response.text
    assert _result(response).findtext(f"{{{TNS}}}Reference") == "CAFÉ-1"


def test_iso_8859_1_charset_only_in_the_http_header(gateway):
    body = soap_envelope(insurability_body(patient("insured").ssin,
                                            extra="<tns:Reference>CAFÉ-2</tns:Reference>"))
    response = _post(gateway, body.encode("iso-8859-1"), "text/xml; charset=ISO-8859-1")
    assert _result(response).findtext(f"{{{TNS}}}Reference") == "CAFÉ-2"


def test_utf8_body_with_bom(gateway):
    body = soap_envelope(insurability_body(patient("insured").ssin,
                                            extra="<tns:Reference>BOM-Ü</tns:Reference>"))
    data = b"\xef\xbb\xbf" + ('<?xml version="1.0" encoding="utf-8"?>' + body).encode("utf-8")
    response = _post(gateway, data)
    assert response.status_code == 200, response.text
    assert _result(response).findtext(f"{{{TNS}}}Reference") == "BOM-Ü"


# --- bad input -----------------------------------------------------------------------------------

def _fault(response: requests.Response) -> tuple[str, str]:
    doc = etree.fromstring(response.content)
    code = doc.findtext(".//faultcode") or doc.findtext(".//{http://www.w3.org/2003/05/soap-envelope}Value")
    text = doc.findtext(".//faultstring") or doc.findtext(".//{http://www.w3.org/2003/05/soap-envelope}Text")
    return code, text


def test_malformed_xml_is_a_client_fault(gateway):
    response = _post(gateway, b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>")
    assert response.status_code == 500
    code, text = _fault(response)
    assert code.endswith("Client.XMLSyntaxError")
    assert "not well-formed" in text


def test_unknown_operation_is_a_client_fault(gateway):
    response = _post(gateway, soap_envelope("<tns:Launch><tns:rocket>1</tns:rocket></tns:Launch>").encode())
    code, text = _fault(response)
    assert "Client" in code
    assert "Launch" in text


def test_schema_invalid_request_is_a_client_fault(gateway):
    bad_date = soap_envelope(insurability_body(patient("insured").ssin).replace(TODAY.isoformat(), "2024-13-45"))
    code, text = _fault(_post(gateway, bad_date.encode()))
    assert code.endswith("Client.SchemaValidation")
    assert "PeriodStart" in text and "contract" in text


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE x [<!ENTITY big "AAAAAAAAAA"><!ENTITY bigger "&big;&big;&big;&big;">]>',
    '<!DOCTYPE x [<!ENTITY file SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE x [<!ENTITY net SYSTEM "http://127.0.0.1:9/evil">]>',
])
def test_entity_declarations_are_refused_without_expansion(gateway, doctype):
    body = soap_envelope(insurability_body(patient("insured").ssin,
                                            extra="<tns:Reference>&bigger;&file;&net;</tns:Reference>"))
    response = _post(gateway, (doctype + body).encode())
    code, text = _fault(response)
    assert "Client" in code
    assert "root:" not in response.text and "AAAAAAAAAA" not in response.text
    assert "DOCTYPE" in text or "not well-formed" in text


def test_oversized_body_is_refused_and_server_keeps_serving(gateway):
    filler = "<!--" + "x" * (gateway.config.server.max_request_bytes + 10) + "-->"
    response = _post(gateway, soap_envelope(filler + "<tns:Echo/>").encode())
    assert response.status_code == 413
    code, text = _fault(response)
    assert code.endswith("Client") and "max_request_bytes" in text
    echo = soap_envelope("<tns:Echo><tns:message>still here</tns:message></tns:Echo>")
    assert b"still here" in _post(gateway, echo.encode()).content


def test_get_on_an_endpoint_explains_itself(gateway):
    response = requests.get(f"{gateway.services_url}/ConsultMyCareNetSoap", timeout=10)
    assert response.status_code == 200 and "?wsdl" in response.text


def test_spyne_never_logs_request_bodies(gateway, caplog):
    ssin = patient("insured").ssin
    with caplog.at_level(logging.DEBUG):
        _post(gateway, ("<broken>" + ssin).encode())
        _post(gateway, soap_envelope(insurability_body(ssin)).encode())
    assert ssin not in caplog.text


def test_an_unknown_charset_is_a_client_fault(gateway):
    body = soap_envelope("<tns:Echo><tns:message>x</tns:message></tns:Echo>").encode()
    response = _post(gateway, body, "text/xml; charset=klingon-8")
    code, text = _fault(response)
    assert code.endswith("Client.UnknownCharset") and "klingon-8" in text
