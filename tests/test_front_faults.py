"""What the SOAP front answers at its edges, through the real server and real sockets: a body of any size
over the limit, UTF-16 requests, and headers the gateway must understand but does not."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests
from lxml import etree

from tests.support import ACTION, insurability_body, soap_envelope
from unified_messaging.simulator.population import TEST_PATIENTS

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
MIB = 1024 * 1024


def fault_of(body: bytes) -> tuple[str, str]:
    doc = etree.fromstring(body)
    code = doc.findtext(".//faultcode") or doc.findtext(f".//{{{SOAP12}}}Value")
    text = doc.findtext(".//faultstring") or doc.findtext(f".//{{{SOAP12}}}Text")
    return code, text


def raw_exchange(gateway, head: bytes, body_chunks=(), read_timeout: float = 20.0) -> bytes:
    """Send ``head`` then the chunks on a real socket (stopping if the server already answered and closed);
    return everything the server sent."""
    url = urlsplit(gateway.services_url)
    with socket.create_connection((url.hostname, url.port), timeout=read_timeout) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    return answer


@pytest.mark.parametrize("size_mib", [9, 64])
@pytest.mark.parametrize("version, content_type, endpoint", [
    ("1.1", "text/xml; charset=utf-8", "ConsultMyCareNetSoap"),
    ("1.2", "application/soap+xml; charset=utf-8", "ConsultMyCareNetSoap12"),
])
def test_a_body_of_any_size_over_the_limit_gets_the_soap_client_fault(gateway, size_mib, version, content_type,
                                                                       endpoint):
    path = urlsplit(gateway.services_url).path + "/" + endpoint
    size = size_mib * MIB
    head = (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    chunk = b"<!--" + b"x" * (MIB - 4)
    answer = raw_exchange(gateway, head, (chunk for _ in range(size_mib)))
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert (b"application/soap+xml" if version == "1.2" else b"text/xml") in headers.lower()
    code, text = fault_of(body)
    assert code.endswith("Client") or code.endswith("Sender")
    assert "max_request_bytes" in text and "send a smaller request" in text
    echo = soap_envelope("<tns:Echo><tns:message>still here</tns:message></tns:Echo>")
    assert b"still here" in requests.post(gateway.services_url + "/ConsultMyCareNetSoap", data=echo.encode(),
                                          headers={"Content-Type": "text/xml"}, timeout=10).content


def test_a_large_body_announced_by_its_content_length_is_answered_before_it_is_sent(gateway):
    path = urlsplit(gateway.services_url).path + "/ConsultMyCareNetSoap"
    head = (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {1024 * MIB}\r\n\r\n").encode()
    answer = raw_exchange(gateway, head)
    assert answer.startswith(b"HTTP/1.1 413")
    assert "max_request_bytes" in fault_of(answer.partition(b"\r\n\r\n")[2])[1]


@pytest.mark.parametrize("codec, charset", [("utf-16", "utf-16"), ("utf-16-le", "utf-16"), ("utf-16-be", "utf-16"),
                                            ("utf-16-le", "utf-16le"), ("utf-16-be", "UTF-16BE")])
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_utf16_request_that_says_so_in_its_declaration_and_content_type_is_answered(gateway, codec, charset,
                                                                                        version):
    patient = TEST_PATIENTS[0]
    document = ('<?xml version="1.0" encoding="UTF-16"?>\n'
                + soap_envelope(insurability_body(patient.ssin), version=version))
    content_type = ("application/soap+xml" if version == "1.2" else "text/xml") + f"; charset={charset}"
    endpoint = "ConsultMyCareNetSoap12" if version == "1.2" else "ConsultMyCareNetSoap"
    answer = requests.post(f"{gateway.services_url}/{endpoint}", data=document.encode(codec), timeout=30,
                           headers={"Content-Type": content_type, "SOAPAction": ACTION})
    assert answer.status_code == 200, answer.text[:400]
    result = etree.fromstring(answer.content)
    assert [e.text for e in result.iter() if etree.QName(e).localname == "Status"] == ["OK"]
    assert patient.last_name in answer.text


def _with_header(version: str, header: str) -> bytes:
    env = SOAP12 if version == "1.2" else SOAP11
    body = insurability_body(TEST_PATIENTS[0].ssin)
    return (f'<soap:Envelope xmlns:soap="{env}" xmlns:tns="http://unified-messaging.be/ConsultMyCareNet/">'
            f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>").encode()


@pytest.mark.parametrize("version, flag", [("1.1", "1"), ("1.2", "true"), ("1.2", "1")])
def test_an_unknown_header_marked_must_understand_gets_the_must_understand_fault(gateway, version, flag):
    header = (f'<x:Priority xmlns:x="urn:example:priority" soap:mustUnderstand="{flag}">high</x:Priority>')
    content_type = "application/soap+xml; charset=utf-8" if version == "1.2" else "text/xml; charset=utf-8"
    endpoint = "ConsultMyCareNetSoap12" if version == "1.2" else "ConsultMyCareNetSoap"
    answer = requests.post(f"{gateway.services_url}/{endpoint}", data=_with_header(version, header), timeout=30,
                           headers={"Content-Type": content_type, "SOAPAction": ACTION})
    assert answer.status_code == 500
    code, text = fault_of(answer.content)
    assert code.split(":")[-1] == "MustUnderstand", answer.text
    assert "Priority" in text and "urn:example:priority" in text


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_header_not_marked_must_understand_is_ignored(gateway, version):
    header = '<x:Priority xmlns:x="urn:example:priority" soap:mustUnderstand="0">high</x:Priority>'
    content_type = "application/soap+xml; charset=utf-8" if version == "1.2" else "text/xml; charset=utf-8"
    endpoint = "ConsultMyCareNetSoap12" if version == "1.2" else "ConsultMyCareNetSoap"
    answer = requests.post(f"{gateway.services_url}/{endpoint}", data=_with_header(version, header), timeout=30,
                           headers={"Content-Type": content_type, "SOAPAction": ACTION})
    assert answer.status_code == 200 and "<Status>OK</Status>" in answer.text.replace("tns:", "")
