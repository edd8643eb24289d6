"""MyCareNet unreachable: a SOAP Server fault that says what to do, and the journal says so too."""
from __future__ import annotations

import logging
import socket

import requests
from lxml import etree

from tests.conftest import make_config
from tests.support import ACTION, insurability_body, soap_envelope
from unified_messaging.gateway import Gateway
from unified_messaging.simulator.population import TEST_PATIENTS


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_upstream_is_a_server_fault_that_says_what_to_do(tmp_path, pki, caplog):
    caplog.set_level(logging.DEBUG)
    base = f"http://127.0.0.1:{_closed_port()}"
    config = make_config(tmp_path, upstream={"mode": "remote", "timeout_seconds": 2.0,
                                             "sts_url": base + "/IAM/SecurityTokenService/v1",
                                             "genericinsurability_url": base + "/GenericInsurability/v1"},
                         invoicing={"enabled": False},
        identity={"keystore": str(pki.lab.path), "keystore_password": pki.password})
    ssin = TEST_PATIENTS[0].ssin
    with Gateway(config) as gw:
        assert gw.simulator is None
        for content_type, endpoint, version in (("text/xml; charset=utf-8", "ConsultMyCareNetSoap", "1.1"),
                                                ("application/soap+xml; charset=utf-8", "ConsultMyCareNetSoap12", "1.2")):
            response = requests.post(f"{gw.services_url}/{endpoint}", timeout=30,
                                     data=soap_envelope(insurability_body(ssin), version=version).encode(),
                                     headers={"Content-Type": content_type, "SOAPAction": ACTION})
            assert response.status_code == 500
            doc = etree.fromstring(response.content)
            text = " ".join(doc.itertext())
            assert "Server" in text or "Receiver" in text
            assert "MyCareNet cannot be reached" in text and "[upstream]" in text
            assert ssin not in response.text
        row = gw.journal.consultations(limit=1)[0]
        assert row["outcome"] == "UNAVAILABLE"
        # one line per call in the log, no traceback (Spyne would log one for every Fault raised)
        assert not [r for r in caplog.records if r.exc_info or r.exc_text]
        faults = [r for r in caplog.records if r.getMessage().startswith("consultation answered with a Server fault")]
        assert len(faults) == 2 and all(r.levelno == logging.WARNING for r in faults)
        # Echo still answers: the gateway itself is healthy
        echo = soap_envelope("<tns:Echo><tns:message>up</tns:message></tns:Echo>")
        assert b"up" in requests.post(f"{gw.services_url}/ConsultMyCareNetSoap", data=echo.encode(),
                                      headers={"Content-Type": "text/xml"}, timeout=10).content
