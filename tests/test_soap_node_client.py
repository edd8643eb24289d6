"""The Node ``soap`` client (npm) against the real gateway and simulator, SOAP 1.1 and 1.2.

The package is installed from the npm registry once, into pytest's cache folder; without node,
npm or the registry the tests are skipped and say why.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import LAB, patient

SOAP_PACKAGE = "soap@1.13.0"
SCRIPT = Path(__file__).parent / "node" / "consult.js"
TODAY = dt.date.today().isoformat()
NODE, NPM = shutil.which("node"), shutil.which("npm")
PORTS = [("ConsultMyCareNetSoap", "1.1"), ("ConsultMyCareNetSoap12", "1.2")]


@pytest.fixture(scope="module")
def node_modules(request) -> Path:
    if NODE is None or NPM is None:
        pytest.skip("node and npm are needed for the Node soap client tests (apt-get install nodejs npm)")
    folder = request.config.cache.mkdir("node-soap")
    if not (folder / "node_modules" / "soap" / "package.json").is_file():
        try:
            install = subprocess.run([NPM, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                                      "--loglevel=error", SOAP_PACKAGE], capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install {SOAP_PACKAGE} took over 300 s: is the npm registry reachable?")
        if install.returncode != 0:
            pytest.skip(f"npm install {SOAP_PACKAGE} failed (is the npm registry reachable?): "
                        + (install.stderr.strip().splitlines() or ["no output"])[0])
    return folder / "node_modules"


@pytest.fixture()
def node_soap(node_modules, gateway):
    def call(port: str, version: str, operation: str, arguments: dict) -> dict:
        run = subprocess.run(
            [NODE, str(SCRIPT), f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl", port, version, operation,
             json.dumps(arguments)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "NODE_PATH": str(node_modules)})
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    return call


@pytest.mark.parametrize("port,version", PORTS)
def test_node_soap_echo_and_insurability(node_soap, port, version):
    echo = node_soap(port, version, "Echo", {"message": f"hello from node {version}"})
    assert echo["result"] == {"EchoResult": f"hello from node {version}"}
    assert ("application/soap+xml" if version == "1.2" else "text/xml") in echo["headers"]["Content-Type"]
    insured = patient("insured")
    answer = node_soap(port, version, "GetInsurability", {"request": {
        "CareProvider": LAB, "Ssin": insured.ssin, "PeriodStart": TODAY, "Reference": "NODE-1"}})
    result = answer["result"]["GetInsurabilityResult"]
    assert (result["Status"], result["Reference"]) == ("OK", "NODE-1")
    assert result["AuditReference"]
    assert (result["Patient"]["Ssin"], result["Patient"]["LastName"]) == (insured.ssin, insured.last_name)
    assert result["Insurabilities"]["Insurability"][0]["Mutuality"] == insured.mutuality


def test_node_soap_gets_the_schema_fault_for_a_wrong_date(node_soap):
    answer = node_soap("ConsultMyCareNetSoap", "1.1", "GetInsurability", {"request": {
        "CareProvider": LAB, "Ssin": patient("insured").ssin, "PeriodStart": "2024-13-45"}})
    assert answer["fault"]["faultcode"].endswith("Client.SchemaValidation")
    assert "PeriodStart" in answer["fault"]["faultstring"]
