"""The contract is served verbatim (addresses rewritten) and the CXF-style services page."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import requests
from lxml import etree

from tests.conftest import ROOT

WSDL = (ROOT / "wsdl" / "ConsultMyCareNet.wsdl").read_text(encoding="utf-8")
XSD = (ROOT / "wsdl" / "ConsultMyCareNet.xsd").read_text(encoding="utf-8")
TNS = "http://unified-messaging.be/ConsultMyCareNet/"


def _strip_addresses(text: str) -> str:
    text = re.sub(r'(<soap(?:12)?:address location=")[^"]*"', r'\1X"', text)
    return re.sub(r'schemaLocation="[^"]*"', 'schemaLocation="X"', text)


@pytest.mark.parametrize("query", ["wsdl", "WSDL", "Wsdl", "wsdl=ConsultMyCareNet.wsdl"])
def test_served_wsdl_equals_the_file_except_addresses(gateway, query):
    url = f"{gateway.services_url}/ConsultMyCareNetSoap?{query}"
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert _strip_addresses(response.text) == _strip_addresses(WSDL)
    doc = etree.fromstring(response.content)
    ns = {"w": "http://schemas.xmlsoap.org/wsdl/", "s": "http://schemas.xmlsoap.org/wsdl/soap/",
          "s12": "http://schemas.xmlsoap.org/wsdl/soap12/", "x": "http://www.w3.org/2001/XMLSchema"}
    assert doc.xpath("//w:port[@name='ConsultMyCareNetSoap']/s:address/@location", namespaces=ns) == [
        f"{gateway.services_url}/ConsultMyCareNetSoap"]
    assert doc.xpath("//w:port[@name='ConsultMyCareNetSoap12']/s12:address/@location", namespaces=ns) == [
        f"{gateway.services_url}/ConsultMyCareNetSoap12"]
    (location,) = doc.xpath("//x:import/@schemaLocation", namespaces=ns)
    assert location == f"{gateway.services_url}/ConsultMyCareNetSoap?xsd=ConsultMyCareNet.xsd"
    xsd = requests.get(location, timeout=10)
    assert xsd.status_code == 200 and xsd.text == XSD


def test_addresses_follow_the_address_the_client_used(gateway):
    url = f"http://localhost:{gateway.port}/unifed-messaging/services/ConsultMyCareNetSoap12?wsdl"
    text = requests.get(url, timeout=10).text
    assert f'location="http://localhost:{gateway.port}/unifed-messaging/services/ConsultMyCareNetSoap12"' in text
    assert f'location="http://localhost:{gateway.port}/unifed-messaging/services/ConsultMyCareNetSoap"' in text


def test_public_base_url_is_used_behind_a_proxy(tmp_path):
    from tests.conftest import make_config
    from unified_messaging.gateway import Gateway

    config = make_config(tmp_path, server={"public_base_url": "https://um.example.be"})
    with Gateway(config) as gw:
        text = requests.get(f"{gw.services_url}/ConsultMyCareNetSoap?wsdl", timeout=10).text
    assert 'location="https://um.example.be/unified-messaging/services/ConsultMyCareNetSoap"' in text


class _ServicesPage(HTMLParser):
    """Collects the CXF service list: per row the porttype, operations and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.headings: list[str] = []
        self.rows: list[dict] = []
        self._stack: list[tuple[str, dict]] = []
        self._field = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._stack.append((tag, attrs))
        if tag == "tr":
            self.rows.append({"operations": [], "links": []})
        if tag == "a" and self.rows:
            self.rows[-1]["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        while self._stack and self._stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if not self._stack or not data.strip():
            return
        tag, attrs = self._stack[-1]
        cls = attrs.get("class")
        data = data.strip()
        if tag == "title":
            self.title = data
        elif cls == "heading":
            self.headings.append(data)
        elif cls == "porttypename":
            self.rows[-1]["porttype"] = data
        elif tag == "li":
            self.rows[-1]["operations"].append(data)
        elif cls == "field":
            self._field = data
        elif cls == "value" or tag == "a":
            self.rows[-1][self._field] = data


@pytest.mark.parametrize("prefix", ["/unified-messaging/services", "/unifed-messaging/services"])
def test_services_page_lists_each_endpoint(gateway, prefix):
    base = f"{gateway.url}{prefix}"
    page = requests.get(base, timeout=10)
    assert page.status_code == 200
    parsed = _ServicesPage()
    parsed.feed(page.text)
    assert parsed.title == "CXF - Service list"
    assert parsed.headings[0] == "Available SOAP services:"
    assert "Available RESTful services:" in parsed.headings
    rows = [r for r in parsed.rows if "porttype" in r]
    assert len(rows) == 2
    assert "(SOAP 1.1, port type ConsultMyCareNetSoap)" in page.text
    assert "(SOAP 1.2, port type ConsultMyCareNetSoap)" in page.text
    for row, name in zip(rows, ["ConsultMyCareNetSoap", "ConsultMyCareNetSoap12"]):
        assert row["porttype"] == name  # each port under its own name: the SOAP 1.2 one is ...Soap12
        assert row["operations"] == ["Echo", "GetInsurability"]
        assert row["Endpoint address:"] == f"{base}/{name}"
        assert row["links"] == [f"{base}/{name}?wsdl"]
        assert row["WSDL :"] == "{%s}ConsultMyCareNet" % TNS
        assert row["Target namespace:"] == TNS
        assert requests.get(row["links"][0], timeout=10).status_code == 200


def test_plain_text_service_list(gateway):
    text = requests.get(f"{gateway.services_url}?formatted=false", timeout=10)
    assert text.headers["Content-Type"].startswith("text/plain")
    assert text.text.split() == [f"{gateway.services_url}/ConsultMyCareNetSoap",
                                 f"{gateway.services_url}/ConsultMyCareNetSoap12"]
    listed = requests.get(f"{gateway.services_url}?formatted=false&wsdlList=true", timeout=10).text.split()
    assert all(line.endswith("?wsdl") for line in listed)


@pytest.mark.parametrize("path", [
    "/unified-messaging/services/NoSuchService",
    "/unified-messaging/services/NoSuchService?wsdl",
    "/unified-messaging/services/ConsultMyCareNetSoap?xsd=other.xsd",
    "/unified-messaging/services/ConsultMyCareNetSoap?wsdl=other.wsdl",
    "/unified-messaging/other",
    "/elsewhere",
])
def test_unknown_services_are_404(gateway, path):
    assert requests.get(gateway.url + path, timeout=10).status_code == 404


def test_post_to_unknown_service_is_404(gateway):
    response = requests.post(f"{gateway.services_url}/Nope", data=b"<x/>",
                             headers={"Content-Type": "text/xml"}, timeout=10)
    assert response.status_code == 404


def test_a_forged_host_header_does_not_reach_the_wsdl(gateway):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.putrequest("GET", "/unified-messaging/services/ConsultMyCareNetSoap?wsdl", skip_host=True)
    connection.putheader("Host", 'evil.example"/><injected attr="x')
    connection.endheaders()
    text = connection.getresponse().read().decode()
    assert "evil.example" not in text and "<injected" not in text
    etree.fromstring(text.encode())  # still well-formed
